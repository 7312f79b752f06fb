"""Write workflows/*.json from scripts/workflow_defs.py, saved by ComfyUI's own frontend.

    .venv/bin/python scripts/build_workflows.py

Starts ComfyUI with the pack, opens its frontend in headless Chromium, loads each API graph
(``app.loadApiJson``, which lays the nodes out), adds the notes, and writes what
``app.graph.serialize()`` returns: the same file a user gets from "Save" in the menu.
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
    // Notes in a row above the graph, each tall enough for its text, placed by their real widths
    // (a long title widens a node beyond the size asked for).
    let x = left;
    const sizes = notes.map(text => [480, 50 + 15 * (Math.ceil(text.length / 68) + text.split(String.fromCharCode(10)).length - 1)]);
    const tallest = Math.max(...sizes.map(size => size[1]));
    notes.forEach((text, i) => {
        const note = LiteGraph.createNode("Note");
        note.title = i === 0 ? title : "Note";
        note.widgets[0].value = text;
        app.graph.add(note);
        note.size = [Math.max(sizes[i][0], note.size[0]), sizes[i][1]];
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


def main() -> int:
    paths = host_paths()
    with tempfile.TemporaryDirectory() as tmp:
        base = make_base_directory(Path(tmp))
        copy_assets(base)
        with ComfyServer(comfy_dir=Path(paths["COMFYUI_DIR"]), base_dir=base, python=paths["RECAPTURE_PYTHON"]) as server:
            with frontend(server.url) as page:
                for workflow in all_workflows():
                    saved = json.loads(page.evaluate(LOAD_AND_SAVE, [numbered(workflow.graph), workflow.notes, workflow.title]))
                    saved.setdefault("extra", {})["recapture"] = {"needs_models": workflow.needs_models}
                    out = REPO / "workflows" / f"{workflow.name}.json"
                    out.write_text(json.dumps(saved, indent=1) + "\n")
                    print(f"wrote {out.relative_to(REPO)} ({len(saved['nodes'])} nodes)")
                if page.page_errors:
                    print("frontend errors:", *page.page_errors, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
