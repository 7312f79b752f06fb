"""Write workflows/*.json from scripts/workflow_defs.py, saved by ComfyUI's own frontend, with thumbnails.

    .venv/bin/python scripts/build_workflows.py [NAME ...]   (only the named workflows, e.g. 8_recapture_wan)

Starts ComfyUI with the pack, opens its frontend in headless Chromium, loads each API graph
(``app.loadApiJson``, which lays the nodes out), adds the notes, and writes what
``app.graph.serialize()`` returns: the same file a user gets from "Save" in the menu. Then it fits
the whole graph into the view and saves a screenshot as ``workflows/<name>.jpg``, the thumbnail
ComfyUI's template browser shows beside a pack's workflow of the same name.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from browser import frontend  # noqa: E402
from comfy_host import ComfyServer, copy_assets, host_paths, make_base_directory  # noqa: E402
from workflow_defs import all_workflows, numbered  # noqa: E402

LOAD_AND_SAVE = """
async ([api, notes, title]) => {
    await app.loadApiJson(api, title);
    // Columns by execution order, once the media previews have loaded and grown their nodes
    // (loadApiJson lays out before that, so previews overlap the nodes below).
    // The first load of a session lands in a tab the frontend is still opening: wait for all nodes.
    const ready = () => app.graph._nodes.length === Object.keys(api).length
        && app.graph._nodes.every(n => [...n.size, ...n.pos].every(Number.isFinite));
    await new Promise(resolve => setTimeout(resolve, 2000));
    for (let waited = 0; !ready() && waited < 10000; waited += 250) await new Promise(r => setTimeout(r, 250));
    const finite = () => app.graph._nodes.every(n => [...n.size, ...n.pos].every(Number.isFinite));
    app.graph.arrange(80);
    if (!ready()) throw new Error("the graph did not load whole, or a node has no finite size after layout");
    const nodes = app.graph._nodes;
    // Seeds stay put: a sample workflow reproduces its result, and trainers reuse cached LoRAs.
    for (const node of nodes) for (const w of node.widgets || []) if (w.name === "control_after_generate") w.value = "fixed";
    const left = Math.min(...nodes.map(n => n.pos[0]));
    const top = Math.min(...nodes.map(n => n.pos[1]));
    // Notes in a row above the graph, each tall enough for its text, placed by their real widths: a title
    // wider than the size asked for widens the node when the file is loaded (computeSize counts the title).
    let x = left;
    const sizes = notes.map(text => [480, 50 + 15 * (Math.ceil(text.length / 68) + text.split(String.fromCharCode(10)).length - 1)]);
    const tallest = Math.max(...sizes.map(size => size[1]));
    notes.forEach((text, i) => {
        const note = LiteGraph.createNode("Note");
        note.title = i === 0 ? title : "Note";
        note.widgets[0].value = text;
        app.graph.add(note);
        note.size = [Math.max(sizes[i][0], note.computeSize()[0]), sizes[i][1]];
        note.pos = [x, top - tallest - 60];
        x += note.size[0] + 30;
    });
    // Open with the notes in view: they sit above the graph, at negative y.
    const offset = [80 - left, tallest + 240 - top];  // clear of the menu bars that overlay the canvas
    app.canvas.ds.offset = offset;
    app.canvas.ds.scale = 1;
    app.graph.extra.ds = {scale: 1, offset};
    // Through JSON.stringify, as the frontend's own Save does: properties left undefined disappear
    // (handed over as objects they would arrive as nulls, which the frontend's schema rejects on load).
    return JSON.stringify(app.graph.serialize());
}
"""


FIT_GRAPH = """
async () => {
    const nodes = app.graph._nodes;
    const title = LiteGraph.NODE_TITLE_HEIGHT || 30;
    const left = Math.min(...nodes.map(n => n.pos[0])), right = Math.max(...nodes.map(n => n.pos[0] + n.size[0]));
    const top = Math.min(...nodes.map(n => n.pos[1] - title)), bottom = Math.max(...nodes.map(n => n.pos[1] + n.size[1]));
    const canvas = app.canvas.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.width / ratio, height = canvas.height / ratio, margin = 30;
    const scale = Math.min((width - 2 * margin) / (right - left), (height - 2 * margin) / (bottom - top));
    app.canvas.ds.scale = scale;
    app.canvas.ds.offset = [margin / scale - left, margin / scale - top];
    app.canvas.show_info = false;  // no render statistics in the corner
    app.canvas.min_font_size_for_lod = 0;  // node titles and widgets even when zoomed out (no level of detail)
    app.canvas.setDirty(true, true);
    app.canvas.draw(true, true);
    await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    // The canvas bitmap itself (dialogs and banners the frontend lays over it are not in it), cropped to the graph.
    const crop = [0, 0, Math.ceil((right - left) * scale + 2 * margin), Math.ceil((bottom - top) * scale + 2 * margin)];
    return [canvas.toDataURL("image/png"), crop.map(v => v * ratio)];
}
"""
THUMBNAIL_WIDTH = 800


def save_thumbnail(page, out) -> None:
    """The graph canvas as JPEG, THUMBNAIL_WIDTH px wide (the whole graph fitted into the view first)."""
    import io

    from PIL import Image

    import base64

    data_url, crop = page.evaluate(FIT_GRAPH)
    shot = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")
    shot = shot.crop(tuple(min(int(v), limit) for v, limit in zip(crop, (shot.width, shot.height) * 2)))
    height = round(shot.height * THUMBNAIL_WIDTH / shot.width)
    shot.resize((THUMBNAIL_WIDTH, height), Image.LANCZOS).save(out, "JPEG", quality=85)


def main(names: list[str]) -> int:
    workflows = [w for w in all_workflows() if not names or w.name in names]
    unknown = set(names) - {w.name for w in workflows}
    if unknown:
        print("no such workflow:", *sorted(unknown), file=sys.stderr)
        return 2
    paths = host_paths()
    with tempfile.TemporaryDirectory() as tmp:
        base = make_base_directory(Path(tmp))
        copy_assets(base)
        with ComfyServer(comfy_dir=Path(paths["COMFYUI_DIR"]), base_dir=base, python=paths["RECAPTURE_PYTHON"]) as server:
            with frontend(server.url) as page:
                for workflow in workflows:
                    saved = json.loads(page.evaluate(LOAD_AND_SAVE, [numbered(workflow.graph), workflow.notes, workflow.title]))
                    saved.setdefault("extra", {})["recapture"] = {"needs_models": workflow.needs_models}
                    out = REPO / "workflows" / f"{workflow.name}.json"
                    out.write_text(json.dumps(saved, indent=1) + "\n")
                    save_thumbnail(page, out.with_suffix(".jpg"))
                    print(f"wrote {out.relative_to(REPO)} ({len(saved['nodes'])} nodes) and its thumbnail")
                if page.page_errors:
                    print("frontend errors:", *page.page_errors, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
