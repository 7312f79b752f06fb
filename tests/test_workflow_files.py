"""The workflow files in workflows/: structure, widget values, and what the real frontend makes of them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import FOLDER_LISTS
from workflow_defs import all_workflows, numbered, with_tiny_models

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
DEFINITIONS = {w.name: w for w in all_workflows()}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}

pytestmark = pytest.mark.server


def test_every_definition_has_its_file_and_back():
    assert {p.stem for p in WORKFLOWS} == set(DEFINITIONS)


def widget_names(info: dict) -> list[tuple[str, dict | None]]:
    """Widget values in the order the frontend saves them: inputs in order, plus the extra values
    the frontend adds (a seed's control_after_generate, an upload button's label)."""
    names = []
    for section in ("required", "optional"):
        for name in info.get("input_order", {}).get(section, []):
            spec = info["input"][section][name]
            kind = spec[0] if isinstance(spec[0], str) else "COMBO"
            options = spec[1] if len(spec) > 1 else {}
            if kind not in WIDGET_TYPES:
                continue
            names.append((name, spec))
            if kind == "INT" and (options.get("control_after_generate") or name in ("seed", "noise_seed")):
                names.append(("control_after_generate", None))
            if options.get("image_upload") or options.get("video_upload") or options.get("upload"):
                names.append(("upload", None))
    return names


def accepted(value, spec) -> bool:
    kind = spec[0] if isinstance(spec[0], str) else "COMBO"
    options = spec[1] if len(spec) > 1 else {}
    if kind == "COMBO":
        choices = spec[0] if isinstance(spec[0], list) else options.get("options", [])
        return value in choices
    if kind == "BOOLEAN":
        return isinstance(value, bool)
    if kind == "STRING":
        return isinstance(value, str)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or (kind == "INT" and value != int(value)):
        return False
    return options.get("min", float("-inf")) <= value <= options.get("max", float("inf"))


@pytest.fixture(scope="module")
def object_info(comfy_server):
    return comfy_server.object_info()


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_structure_links_and_widget_values(path, object_info, pack):
    workflow = json.loads(path.read_text())
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for link_id, origin, origin_slot, target, target_slot, kind in workflow["links"]:
        assert link_id in (nodes[origin]["outputs"][origin_slot].get("links") or []), link_id
        assert nodes[target]["inputs"][target_slot]["link"] == link_id, link_id
        assert kind in (nodes[origin]["outputs"][origin_slot]["type"], "*")  # "*": into an any-type input
    for node in nodes.values():
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                assert any(link[0] == slot["link"] for link in workflow["links"]), (node["id"], slot["name"])

    definition = numbered(DEFINITIONS[path.stem].graph)
    folder_lists = dict(FOLDER_LISTS)
    # ComfyUI's own loaders: model files the user adds
    folder_lists.update(ImageOnlyCheckpointLoader=("ckpt_name",), UNETLoader=("unet_name",), CLIPLoader=("clip_name",),
                        VAELoader=("vae_name",))
    for node in nodes.values():
        if node["type"] == "Note":
            continue
        info = object_info[node["type"]]
        names = widget_names(info)
        values = node.get("widgets_values") or []
        assert len(values) == len(names), (node["type"], values, names)
        expected = definition[str(node["id"])]["inputs"]
        for (name, spec), value in zip(names, values):
            if spec is None or isinstance(expected.get(name), list):
                continue  # a widget fed by a link (e.g. Get Image Size -> width): the link gives the value
            assert value == expected.get(name, value), (node["type"], name, value)
            if name not in folder_lists.get(node["type"], ()):
                assert accepted(value, spec), (node["type"], name, value)


def test_the_pack_offers_its_workflows_as_templates(comfy_server):
    templates = comfy_server.get_json("/api/workflow_templates")
    assert sorted(templates.get("recapture", [])) == sorted(p.stem for p in WORKFLOWS)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_workflow_has_a_thumbnail_the_template_browser_is_served(path, comfy_server):
    """``<name>.jpg`` beside ``<name>.json`` (the template browser's thumbnail), a picture of the graph."""
    import io
    import urllib.request

    from PIL import Image, ImageStat

    with urllib.request.urlopen(f"{comfy_server.url}/api/workflow_templates/recapture/{path.stem}.jpg", timeout=30) as reply:
        served = reply.read()
    assert served == path.with_suffix(".jpg").read_bytes()
    image = Image.open(io.BytesIO(served))
    assert image.format == "JPEG" and image.width == 800 and 100 <= image.height <= 800
    assert max(ImageStat.Stat(image.convert("L")).stddev) > 10  # not one flat colour: nodes and links are drawn


@pytest.fixture(scope="module")
def frontend_results(comfy_server):
    """Every workflow file loaded into the real frontend and converted to API format; the browser is
    closed before any graph runs, so it does not compete with ComfyUI for the CPU."""
    from browser import frontend

    with frontend(comfy_server.url) as page:
        results = {path.stem: page.evaluate(LOAD_AND_CONVERT, json.loads(path.read_text())) for path in WORKFLOWS}
        results["saved before temporal_consistency"] = page.evaluate(LOAD_AND_CONVERT, saved_before_alignment_widget())
        errors = list(page.page_errors)
    return results, errors


def saved_before_alignment_widget() -> dict:
    """Workflow 4 as saved before PointCloudWarp had its last widget (temporal_consistency): one value fewer."""
    workflow = json.loads((REPO / "workflows" / "4_depth_from_another_pack.json").read_text())
    for node in workflow["nodes"]:
        if node["type"] == "ReCapturePointCloudWarp":
            node["widgets_values"] = node["widgets_values"][:-1]
            node["inputs"] = [slot for slot in node["inputs"] if slot["name"] != "temporal_consistency"]
    return workflow


def test_a_workflow_saved_before_a_new_widget_keeps_its_values(frontend_results):
    """New widgets go last, so the widget values of files saved before them stay in place and the new one
    takes its default."""
    results, errors = frontend_results
    old = results["saved before temporal_consistency"]
    new = results["4_depth_from_another_pack"]
    assert old["missing"] == [] and old["toasts"] == [] and errors == []
    warp = next(node_id for node_id, node in new["output"].items() if node["class_type"] == "ReCapturePointCloudWarp")
    assert old["output"][warp]["inputs"] == new["output"][warp]["inputs"]
    assert old["output"][warp]["inputs"]["temporal_consistency"] is True


LOAD_AND_CONVERT = """
async (workflow) => {
    await app.loadGraphData(workflow);
    await new Promise(resolve => setTimeout(resolve, 300));  // toasts render on the next ticks
    // The frontend validates a file against its schema and reports problems as toasts (an alert a
    // user sees on every load), not as page errors.
    const toasts = Array.from(document.querySelectorAll(".p-toast-message")).map(e => e.innerText);
    const missing = workflow.nodes.map(n => n.type).filter(t => !(t in LiteGraph.registered_node_types));
    // Each node as the canvas draws it (the frontend widens a node whose title does not fit the saved size):
    // its bounding rectangle, title bar included, as measured for the frame just drawn.
    app.canvas.draw(true, true);
    const drawn = app.graph._nodes.map(n => [n.id, n.getTitle(), ...n.boundingRect]);
    const prompt = await app.graphToPrompt();
    return {missing, toasts, loaded: app.graph._nodes.length, drawn, output: prompt.output};
}
"""


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_no_two_nodes_overlap_as_drawn(path, frontend_results):
    """On the canvas, as the frontend draws the file (titles included), not by the sizes saved in it."""
    results, _ = frontend_results
    drawn = results[path.stem]["drawn"]
    assert len(drawn) == len(json.loads(path.read_text())["nodes"])
    overlaps = []
    for i, (id_a, title_a, xa, ya, wa, ha) in enumerate(drawn):
        for id_b, title_b, xb, yb, wb, hb in drawn[i + 1:]:
            width, height = min(xa + wa, xb + wb) - max(xa, xb), min(ya + ha, yb + hb) - max(ya, yb)
            if width > 0 and height > 0:
                overlaps.append(f"{title_a!r} ({id_a}) and {title_b!r} ({id_b}): {width:.0f} x {height:.0f} px")
    assert not overlaps, "\n".join(overlaps)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_the_real_frontend_loads_each_workflow_and_its_graph_runs(path, frontend_results, comfy_server):
    results, errors = frontend_results
    result = results[path.stem]
    assert result["missing"] == [] and result["toasts"] == [] and errors == []
    assert result["loaded"] == len(json.loads(path.read_text())["nodes"])  # the whole file, in the active tab
    api = {node_id: {"class_type": node["class_type"], "inputs": node["inputs"]} for node_id, node in result["output"].items()}
    definition = {node_id: {"class_type": node["class_type"], "inputs": node["inputs"]}
                  for node_id, node in numbered(DEFINITIONS[path.stem].graph).items()}
    info = comfy_server.object_info()
    assert api.keys() == definition.keys()
    for node_id, node in api.items():
        expected = definition[node_id]
        assert node["class_type"] == expected["class_type"]
        declared = info[node["class_type"]]["input"]
        for name, value in node["inputs"].items():
            if name in expected["inputs"]:
                assert value == expected["inputs"][name], (node_id, name)
            elif name in declared.get("optional", {}):
                # The frontend also sends optional widgets at their defaults.
                assert value == declared["optional"][name][1].get("default"), (node_id, name, value)
            else:
                assert name not in declared.get("required", {}), (node_id, name)  # a frontend-only widget
        assert set(expected["inputs"]) <= set(node["inputs"]), node_id
    comfy_server.run(with_tiny_models(api), timeout_s=900)
