"""The camera path editor (web/recapture_camera_editor.js) in the real frontend, and its server routes.

Debian's Chromium through Playwright, every request but the local server's blocked (scripts/browser.py).
Every editor test runs in both of the frontend's renderers: the classic canvas and Nodes 2.0
(``Comfy.VueNodes.Enabled``), where the editor is laid out inside the node's own HTML element.
With RECAPTURE_WRITE_SCREENSHOTS=1 the run also writes docs/camera_editor.png, the README's picture.
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from recapture_core.camera.keyframes import keyframe_trajectory, parse_keyframes
from test_server_anchor import WARP_WIDGETS, input_images, video  # noqa: F401  (fixture)

pytestmark = pytest.mark.server
REPO = Path(__file__).resolve().parent.parent
KEYFRAMES = "0:\n6: orbit_left=10\n12: orbit_left=20, dolly_in=0.2"
NODE_INPUTS = {"keyframes": KEYFRAMES, "interpolation": "pose: slerp + spline", "num_frames": 13, "hfov_deg": 60.0,
               "subject_distance": 1.0}


def post(server, route: str, body) -> tuple[int, dict]:
    request = urllib.request.Request(server.url + route, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_the_path_route_gives_the_nodes_own_poses(comfy_server):
    status, reply = post(comfy_server, "/recapture/camera_path", NODE_INPUTS)
    assert status == 200, reply
    truth = keyframe_trajectory(parse_keyframes(KEYFRAMES), 13, "pose: slerp + spline", 60.0, 1.0)
    assert torch.equal(torch.tensor(reply["poses"], dtype=torch.float64).reshape(13, 4, 4), truth.target_to_source)
    assert reply["keyframe_frames"] == [0, 6, 12] and reply["zoom"] == truth.zoom.tolist()


@pytest.mark.parametrize("body, message", [
    ({**NODE_INPUTS, "keyframes": "0:\n6: spin=3"}, "input 'keyframes'"),
    ({**NODE_INPUTS, "num_frames": 0}, "input 'num_frames'"),
    ({**NODE_INPUTS, "hfov_deg": "wide"}, "input 'hfov_deg'"),
    ({**NODE_INPUTS, "extra": 1}, "unknown field(s) extra"),
    ({**NODE_INPUTS, "interpolation": ["pose: linear"]}, "input 'interpolation'"),
    ({"preset": "spin", "num_frames": 5}, "input 'preset'"),
    ({"preset": "orbit left", "easing": "bouncy"}, "input 'easing'"),
    ({"preset": "orbit left", "amount": 400.0}, "input 'amount'"),
    ({"num_frames": 13}, "input 'keyframes'"),
    ("0: orbit_left=3", "must be a JSON object"),
])
def test_bad_path_requests_get_a_400_with_the_reason(comfy_server, body, message):
    status, reply = post(comfy_server, "/recapture/camera_path", body)
    assert status == 400 and message in reply["error"], reply


OPEN_EDITOR = """async ([graph, nodeType, title]) => {
    await app.loadApiJson(graph, title);
    const node = app.graph._nodes.find(n => n.comfyClass === nodeType);
    for (let waited = 0; !(node.recaptureEditor && node.recaptureEditor.path) && waited < 20000; waited += 100)
        await new Promise(r => setTimeout(r, 100));
    // The node clear of the others (Nodes 2.0 leaves an API graph's nodes piled up where they were created), at 100%
    // with its top left at (200, 150) on screen, clear of the side bar and the menus. Under Nodes 2.0 the layout
    // store places nodes: node.pos alone would be put back.
    const right = Math.max(...app.graph._nodes.filter(n => n !== node).map(n => n.pos[0] + n.size[0]));
    const newPos = {x: right + 200, y: 100};
    if (app.extensionManager.setting.get("Comfy.VueNodes.Enabled")) app.canvas.repositionNodesVueMode([{node, newPos}]);
    else node.pos = [newPos.x, newPos.y];
    app.canvas.ds.scale = 1;
    app.canvas.ds.offset = [200 - newPos.x, 150 - newPos.y];
    app.canvas.setDirty(true, true);
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    return node.id;
}"""
EDITOR = "app.graph.getNodeById({id}).recaptureEditor"
RENDERER = "Comfy.VueNodes.Enabled"  # the frontend's setting for Nodes 2.0


def type_keyframes(page, node_id, text: str) -> None:
    """Set the node's keyframe text as a user typing it would (the editor notices on its own)."""
    page.evaluate(f"(text) => {{ app.graph.getNodeById({node_id}).widgets.find(w => w.name === 'keyframes').value = text; }}",
                  text)


def keyframe_text(page, node_id) -> str:
    return page.evaluate(f"() => app.graph.getNodeById({node_id}).widgets.find(w => w.name === 'keyframes').value")


def wait_for(page, condition: str, timeout_s: float = 20.0):
    page.wait_for_function(condition, timeout=timeout_s * 1000)


def editor_graph(frame: str, depth: str, first: int = 0) -> dict:
    """Camera Keyframes ``first + 10`` feeding PointCloudWarp ``first + 11``, on 13 frames of a still image and its
    depth. A second graph open in the same page takes other ids: Nodes 2.0 keeps the element of a DOM widget it has
    shown for a node id when another tab's node of that id replaces it (frontend 1.32.9)."""
    frames, depths, camera, warp, preview = (str(first + i) for i in (1, 2, 10, 11, 12))
    return {**video(frames, frame, 13), **video(depths, depth, 13),
            camera: {"class_type": "ReCaptureCameraKeyframes", "inputs": dict(NODE_INPUTS)},
            warp: {"class_type": "ReCapturePointCloudWarp",
                   "inputs": {"frames": [frames, 0], "trajectory": [camera, 0], "depth_image": [depths, 0],
                              "reading": "depth, bright = far", **WARP_WIDGETS}},
            preview: {"class_type": "PreviewAny", "inputs": {"source": [warp, 3]}}}


@pytest.fixture(scope="module")
def warp_has_run(comfy_server, input_images):  # noqa: F811
    """The editor's graph, run once: PointCloudWarp "11" has run, so the editor can preview its anchor."""
    graph = editor_graph(*input_images)
    comfy_server.run(graph)
    return graph


@pytest.fixture(scope="module", params=[False, True], ids=["classic", "nodes2"])
def editor_page(request, comfy_server, warp_has_run):
    """The frontend, in the classic renderer or in Nodes 2.0, with the editor's graph open (its warp has run)."""
    from browser import frontend

    comfy_server.post_json(f"/settings/{RENDERER}", request.param)  # read by the frontend as it starts
    try:
        with frontend(comfy_server.url) as page:
            assert page.evaluate(f"() => app.extensionManager.setting.get('{RENDERER}')") is request.param
            page.nodes2 = request.param
            node_id = page.evaluate(OPEN_EDITOR, [warp_has_run, "ReCaptureCameraKeyframes", "camera editor"])
            yield page, node_id
    finally:
        comfy_server.post_json(f"/settings/{RENDERER}", False)  # the other browser tests expect the classic one


def test_the_editor_draws_the_path_on_the_keyframes_node(editor_page):
    page, node_id = editor_page
    editor = EDITOR.format(id=node_id)
    state = page.evaluate(f"() => [{editor}.path.num_frames, {editor}.path.keyframe_frames, {editor}.canvas.isConnected]")
    assert state == [13, [0, 6, 12], True]
    # The canvas shows the scene: more than the background colour.
    colours = page.evaluate(f"""() => {{
        const e = {editor}; e.draw();
        const gl = e.renderer.getContext(), w = gl.drawingBufferWidth, h = gl.drawingBufferHeight;
        const pixels = new Uint8Array(w * h * 4); gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
        const seen = new Set(); for (let i = 0; i < pixels.length; i += 4 * 7) seen.add(pixels[i] << 16 | pixels[i + 1] << 8 | pixels[i + 2]);
        return seen.size; }}""")
    assert colours > 10
    assert page.page_errors == []


def test_three_js_is_registered_once(editor_page):
    """The frontend bundles its own three.js; the pack's copy must not register a second one (three.js then
    warns "Multiple instances of Three.js being imported" on every page load)."""
    page, node_id = editor_page
    assert page.evaluate(f"() => {EDITOR.format(id=node_id)}.renderer.getContext() !== null")  # the pack's copy runs
    assert page.evaluate("() => typeof window.__THREE__") == "string"  # the frontend's copy registered itself
    assert [m for m in page.console_messages if "Three.js" in m] == []


GEOMETRY = """(id) => {
    const node = app.graph.getNodeById(id), editor = node.recaptureEditor;
    const widget = node.widgets.find(w => w.name === "camera_editor");
    const ds = app.canvas.ds, canvas = app.canvas.canvas.getBoundingClientRect();
    // The node's body on screen, from its position and size in the graph (either renderer draws it there).
    const left = canvas.left + (node.pos[0] + ds.offset[0]) * ds.scale, top = canvas.top + (node.pos[1] + ds.offset[1]) * ds.scale;
    const box = editor.container.getBoundingClientRect(), status = editor.status;
    return {node: [left, top, left + node.size[0] * ds.scale, top + node.size[1] * ds.scale],
            editor: [box.left, box.top, box.right, box.bottom], scale: ds.scale,
            minHeight: widget.computeLayoutSize(node).minHeight, computedHeight: widget.computedHeight, margin: widget.margin,
            status: {height: status.getBoundingClientRect().height, lineHeight: parseFloat(getComputedStyle(status).fontSize) * 1.5,
                     scrollWidth: status.scrollWidth, clientWidth: status.clientWidth}};
}"""


def test_the_editor_stays_inside_its_node(editor_page):
    page, node_id = editor_page
    g = page.evaluate(GEOMETRY, node_id)
    assert g["scale"] == 1
    (node_left, node_top, node_right, node_bottom), (left, top, right, bottom) = g["node"], g["editor"]
    assert node_left <= left and right <= node_right + 0.5, g  # its width follows the node's: nothing sticks out
    assert node_top <= top and bottom <= node_bottom + 0.5, g
    status = g["status"]
    assert status["scrollWidth"] <= status["clientWidth"] and status["height"] > status["lineHeight"], status  # it wraps


def test_the_editors_height_is_the_widgets(editor_page):
    """The widget's height (computeLayoutSize, from getMinHeight), less the margins the classic renderer leaves
    around a DOM widget; the classic renderer may hand the widget more (computedHeight), Nodes 2.0 lays the node's
    HTML out around the editor at that minimum."""
    page, node_id = editor_page
    g = page.evaluate(GEOMETRY, node_id)
    given = g["minHeight"] if page.nodes2 else g["computedHeight"]
    top, bottom = g["editor"][1], g["editor"][3]
    assert given >= g["minHeight"] and abs((bottom - top) - (given - 2 * g["margin"])) <= 0.5, g


def test_a_drag_on_the_empty_view_turns_the_view_and_leaves_the_node_in_place(editor_page):
    page, node_id = editor_page
    editor = EDITOR.format(id=node_id)
    x, y = page.evaluate(f"() => {{ const r = {editor}.canvas.getBoundingClientRect(); return [r.left + 8, r.top + 8]; }}")
    assert page.evaluate(f"([x, y]) => {editor}.pick({{clientX: x, clientY: y}}) === null", [x, y])  # no ball there
    node = f"app.graph.getNodeById({node_id})"
    state = f"() => [[...{node}.pos], {editor}.camera.position.toArray(), {node}.widgets.find(w => w.name === 'keyframes').value]"
    view = page.evaluate(f"() => [{editor}.camera.position.toArray(), {editor}.controls.target.toArray()]")
    before = page.evaluate(state)
    drag(page, x, y, 60, 40)
    after = page.evaluate(state)
    assert after[0] == before[0]  # the node did not move
    assert after[1] != before[1]  # the view turned
    assert after[2] == before[2]  # and no keyframe changed
    # The view as it was, for the tests that drag the keyframe cameras.
    page.evaluate(f"""([position, target]) => {{ const e = {editor};
        e.camera.position.fromArray(position); e.controls.target.fromArray(target); e.controls.update(); }}""", view)


def test_dragging_a_keyframe_camera_orbits_it_in_the_text(editor_page):
    page, node_id = editor_page
    editor = EDITOR.format(id=node_id)
    x, y = page.evaluate(f"() => {editor}.screenOfKeyframe(6)")
    drag(page, x, y, 40, 0)
    text = keyframe_text(page, node_id)
    assert text == "0:\n6: orbit_left=2\n12: orbit_left=20, dolly_in=0.2"  # 10 - 40 px x 0.2 degrees
    wait_for(page, f"() => {editor}.path && {editor}.lastInputs.includes('orbit_left=2')")
    # ... and the view now draws the path of the new text.
    status, reply = post_from_page(page, text)
    wait_for(page, f"() => JSON.stringify({editor}.cameraPosition(6)) === '{json.dumps(reply['poses'][6][3::4][:3], separators=(',', ':'))}'")


def drag(page, x, y, dx, dy, modifier=None):
    if modifier:
        page.keyboard.down(modifier)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx / 2, y + dy / 2, steps=3)
    page.mouse.move(x + dx, y + dy, steps=3)
    page.mouse.up()
    if modifier:
        page.keyboard.up(modifier)


def test_shift_drag_moves_and_alt_drag_turns_a_keyframe_camera(editor_page):
    page, node_id = editor_page
    editor = EDITOR.format(id=node_id)
    type_keyframes(page, node_id, "0:\n12: orbit_left=20")
    wait_for(page, f"() => {editor}.path && {editor}.path.keyframe_frames.join() === '0,12'")
    x, y = page.evaluate(f"() => {editor}.screenOfKeyframe(12)")
    drag(page, x, y, 40, 0, "Shift")  # 40 px right: 0.2 subject distances to the right
    assert keyframe_text(page, node_id) == "0:\n12: orbit_left=20, truck_right=0.2"
    wait_for(page, f"() => {editor}.lastInputs.includes('truck_right=0.2') && {editor}.path.keyframe_frames.join() === '0,12'")
    page.wait_for_timeout(300)
    x, y = page.evaluate(f"() => {editor}.screenOfKeyframe(12)")
    drag(page, x, y, 0, -20, "Alt")  # 20 px up: tilt up 4 degrees
    assert keyframe_text(page, node_id) == "0:\n12: orbit_left=20, truck_right=0.2, tilt_up=4"


def post_path_from_page(page, inputs: dict):
    return page.evaluate("""async (body) => {
        const r = await fetch("/recapture/camera_path", {method: "POST", body}); return [r.status, await r.json()]; }""",
                         json.dumps(inputs))


def post_from_page(page, keyframes: str):
    return post_path_from_page(page, {**NODE_INPUTS, "keyframes": keyframes})


def test_typing_into_the_keyframes_moves_the_cameras_in_the_view(editor_page):
    page, node_id = editor_page
    editor = EDITOR.format(id=node_id)
    typed = "0:\n6: orbit_left=10\n12: orbit_left=-30"
    type_keyframes(page, node_id, typed)
    status, reply = post_from_page(page, typed)
    assert status == 200
    expected = json.dumps(reply["poses"][12][3::4][:3], separators=(",", ":"))
    wait_for(page, f"() => JSON.stringify({editor}.cameraPosition(12)) === '{expected}'")
    assert reply["poses"][12][3] > 0  # orbit_left = -30 is an orbit to the right: the camera moves towards +x


def test_the_editor_previews_the_anchor_of_the_warp_node_it_feeds(editor_page):
    page, node_id = editor_page
    editor = EDITOR.format(id=node_id)
    page.evaluate(f"() => {editor}.setFrame(12)")
    wait_for(page, f"() => {editor}.previewed && {editor}.previewed.frame === 12")
    preview = page.evaluate(f"() => [{editor}.previewed.hole_ratio, {editor}.preview.src.slice(0, 22)]")
    assert preview[1] == "data:image/png;base64,"
    assert 0.0 < preview[0] < 1.0
    if os.environ.get("RECAPTURE_WRITE_SCREENSHOTS") == "1" and not page.nodes2:
        time.sleep(0.5)
        box = page.evaluate(f"""() => {{ const r = {editor}.container.getBoundingClientRect();
            return {{x: Math.max(0, r.left - 20), y: Math.max(0, r.top - 260), width: r.width + 40, height: r.height + 280}}; }}""")
        (REPO / "docs").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "docs" / "camera_editor.png"), clip=box)


def test_a_saved_workflow_keeps_only_the_keyframe_text(editor_page, comfy_server):
    page, node_id = editor_page
    saved = page.evaluate("() => JSON.stringify(app.graph.serialize())")
    node = next(n for n in json.loads(saved)["nodes"] if n["id"] == node_id)
    declared = comfy_server.object_info()["ReCaptureCameraKeyframes"]["input"]["required"]
    assert len(node["widgets_values"]) == len(declared)  # no value for the editor widget
    text = node["widgets_values"][0]
    page.evaluate("async (saved) => { await app.loadGraphData(JSON.parse(saved)); }", saved)
    assert keyframe_text(page, node_id) == text
    assert page.page_errors == []


def test_the_point_cloud_route_lifts_the_first_frame_in_the_paths_units(warp_has_run, comfy_server, input_images):  # noqa: F811
    import numpy as np
    from PIL import Image

    status, reply = post(comfy_server, "/recapture/point_cloud", {"node": "11"})
    assert status == 200, reply
    points = np.array(reply["positions"], dtype=np.float64).reshape(-1, 3)
    colours = np.array(reply["colours"], dtype=np.uint8).reshape(-1, 3)
    frame = np.asarray(Image.open(comfy_server.base_dir / "input" / input_images[0]).convert("RGB"))
    assert reply["count"] == frame.shape[0] * frame.shape[1] <= 40000  # 96 x 64: every pixel
    assert np.array_equal(colours, frame.reshape(-1, 3))
    z = points[:, 2].reshape(frame.shape[:2])
    h, w = z.shape
    centre = z[h // 4: h - h // 4, w // 4: w - w // 4]
    assert abs(float(np.median(centre)) - 1.0) < 1e-3  # the node matched the subject distance of its 1.0 path
    assert post(comfy_server, "/recapture/point_cloud", {"node": "nope"})[0] == 404
    assert post(comfy_server, "/recapture/point_cloud", {"node": "11", "more": 1})[0] == 400


def test_the_view_shows_the_scene_under_the_path_once_the_warp_has_run(editor_page):
    page, node_id = editor_page
    editor = EDITOR.format(id=node_id)
    wait_for(page, f"() => {editor}.cloudPoints === 96 * 64")
    page.evaluate(f"() => {editor}.togglePlay()")
    wait_for(page, f"() => {editor}.frame !== 12")  # playing: the slider moves on its own
    page.evaluate(f"() => {editor}.togglePlay()")


def test_keyframes_are_added_and_removed_at_the_current_frame(editor_page):
    page, node_id = editor_page
    editor = EDITOR.format(id=node_id)
    type_keyframes(page, node_id, "0:\n6: orbit_left=10, zoom=2\n12: orbit_left=20")
    wait_for(page, f"() => {editor}.path && {editor}.lastInputs.includes('zoom=2')")
    page.evaluate(f"() => {{ {editor}.setFrame(3); {editor}.addKey.click(); }}")
    # Half way from frame 0 (orbit 0, zoom 1) to frame 6 (orbit 10, zoom 2): orbit 5, zoom sqrt(2).
    assert keyframe_text(page, node_id) == "0:\n3: orbit_left=5, zoom=1.414\n6: orbit_left=10, zoom=2\n12: orbit_left=20"
    wait_for(page, f"() => {editor}.path.keyframe_frames.join() === '0,3,6,12'")
    page.evaluate(f"() => {{ {editor}.setFrame(6); {editor}.removeKey.click(); }}")
    assert keyframe_text(page, node_id) == "0:\n3: orbit_left=5, zoom=1.414\n12: orbit_left=20"
    wait_for(page, f"() => {editor}.path.keyframe_frames.join() === '0,3,12'")


PREVIEW = """() => {{ const p = {editor}.preview;
    return {{src: p.src.slice(0, 18), complete: p.complete, width: p.naturalWidth, alt: p.alt, previewed: {editor}.previewed}}; }}"""


def test_before_its_warp_has_run_the_preview_is_a_drawn_placeholder(editor_page, comfy_server, input_images):  # noqa: F811
    page, _ = editor_page
    graph = editor_graph(*input_images, first=30)  # its PointCloudWarp, "41", has never run
    node_id = page.evaluate(OPEN_EDITOR, [graph, "ReCaptureCameraKeyframes", "warp not run"])
    editor = EDITOR.format(id=node_id)
    status, reply = post(comfy_server, "/recapture/anchor_preview",
                         {"node": "41", "frame": 0, "size": 192, "keyframes": KEYFRAMES, "interpolation": NODE_INPUTS["interpolation"]})
    assert 400 <= status < 500 and reply["error"]
    # The server's reason, in words, once the browser has decoded the picture that says it.
    wait_for(page, f"() => {editor}.preview.alt === {json.dumps(reply['error'])} && {editor}.preview.complete")
    # A picture the browser has drawn (a broken image is complete with no size), not the broken-image icon.
    assert page.evaluate(PREVIEW.format(editor=editor)) == {"src": "data:image/svg+xml", "complete": True, "width": 160,
                                                            "alt": reply["error"], "previewed": None}


def test_the_preset_node_shows_its_path_read_only(editor_page):
    page, _ = editor_page
    graph = {"20": {"class_type": "ReCaptureCameraTrajectory",
                    "inputs": {"preset": "orbit left", "amount": 20.0, "easing": "linear", "num_frames": 7, "hfov_deg": 60.0,
                               "subject_distance": 1.0}}}
    page.evaluate("async (graph) => { await app.loadApiJson(graph, 'preset view'); }", graph)
    node_id = page.evaluate("() => app.graph._nodes.find(n => n.comfyClass === 'ReCaptureCameraTrajectory').id")
    editor = EDITOR.format(id=node_id)
    wait_for(page, f"() => {editor} && {editor}.path")
    assert page.evaluate(f"() => [{editor}.path.num_frames, {editor}.picks.length, {editor}.readOnly, "
                         f"{editor}.container.contains({editor}.addKey)]") == [7, 0, True, False]
    status, reply = post_path_from_page(page, graph["20"]["inputs"])
    assert status == 200
    expected = json.dumps(reply["poses"][6][3::4][:3], separators=(",", ":"))
    assert page.evaluate(f"() => JSON.stringify({editor}.cameraPosition(6))") == expected
    # No PointCloudWarp to preview: a drawn panel that says so, not a broken image.
    wait_for(page, f"() => {editor}.preview.complete")
    preview = page.evaluate(PREVIEW.format(editor=editor))
    assert {**preview, "alt": None} == {"src": "data:image/svg+xml", "complete": True, "width": 160, "alt": None, "previewed": None}
    assert "PointCloudWarp" in preview["alt"]


def test_the_view_appears_on_the_preset_node_of_a_shipped_workflow(editor_page):
    page, _ = editor_page
    shipped = json.loads((REPO / "workflows" / "6_anchor_preview.json").read_text())
    page.evaluate("async (workflow) => { await app.loadGraphData(workflow); }", shipped)
    node_id = page.evaluate("() => app.graph._nodes.find(n => n.comfyClass === 'ReCaptureCameraTrajectory').id")
    editor = EDITOR.format(id=node_id)
    wait_for(page, f"() => {editor} && {editor}.path")
    camera = next(n for n in shipped["nodes"] if n["type"] == "ReCaptureCameraTrajectory")
    assert page.evaluate(f"() => {editor}.path.num_frames") == camera["widgets_values"][3]  # num_frames, as saved
