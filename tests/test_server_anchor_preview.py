"""POST /recapture/anchor_preview on the real server: one frame of a PointCloudWarp node's anchor, quickly."""
from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from test_server_anchor import WARP_WIDGETS, input_images, trajectory, video  # noqa: F401  (fixture)

pytestmark = pytest.mark.server
ROUTE = "/recapture/anchor_preview"


def post(server, body, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + ROUTE, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def png(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


@pytest.fixture(scope="module")
def warped(comfy_server, input_images):  # noqa: F811
    """A PointCloudWarp node that has run (node id "warp"), with its hole mask of every frame saved as images."""
    frame, depth = input_images
    graph = {**video("1", frame, 4), **video("2", depth, 4),
             "camera": {**trajectory(4), "inputs": {**trajectory(4)["inputs"], "preset": "orbit left", "amount": 8.0}},
             "warp": {"class_type": "ReCapturePointCloudWarp",
                      "inputs": {"frames": ["1", 0], "trajectory": ["camera", 0], "depth_image": ["2", 0],
                                 "reading": "depth, bright = far", **WARP_WIDGETS, "hole_dilation": 0}},
             "as_image": {"class_type": "MaskToImage", "inputs": {"mask": ["warp", 2]}},
             "save": {"class_type": "SaveImage", "inputs": {"images": ["as_image", 0], "filename_prefix": "preview_truth"}}}
    entry = comfy_server.run(graph)
    return [np.asarray(Image.open(path))[..., 0] for path in comfy_server.output_files(entry, "save")]


def test_at_full_size_the_preview_is_pointcloudwarps_frame(comfy_server, warped):
    for frame in (0, 3):
        status, reply = post(comfy_server, {"node": "warp", "frame": frame, "size": 96})
        assert status == 200, reply
        assert (reply["width"], reply["height"], reply["frame"]) == (96, 64, frame)
        mask = png(reply["hole_mask"])
        assert np.array_equal(mask, warped[frame])
        assert reply["hole_ratio"] == pytest.approx(float((warped[frame] > 127).mean()))
        image = png(reply["image"])
        assert image.shape == (64, 96, 3)
        holes = mask > 127
        assert holes.any() == (frame > 0)  # frame 0 is filmed from the source camera itself
        assert (image[holes] == [153, 0, 153]).all()  # black holes tinted magenta at 0.6


def test_a_keyframe_path_can_be_tried_at_reduced_size(comfy_server, warped):
    status, small = post(comfy_server, {"node": "warp", "frame": 3, "size": 48, "keyframes": "0:\n3: orbit_left=30"})
    assert status == 200, small
    assert (small["width"], small["height"]) == (48, 32)
    status, ran = post(comfy_server, {"node": "warp", "frame": 3, "size": 48})
    assert small["hole_ratio"] > ran["hole_ratio"]  # a wider orbit than the one the node ran with


@pytest.mark.parametrize("body, status, message", [
    ({"node": "nope"}, 404, "has not run since the server started"),
    ({"node": "warp", "frame": 4}, 400, "input 'frame'"),
    ({"node": "warp", "size": 5000}, 400, "input 'size'"),
    ({"node": "warp", "keyframes": "0:\n3: fly_away=2"}, 400, "input 'keyframes'"),
    ({"node": "warp", "interpolation": "cubic", "keyframes": "0:"}, 400, "input 'interpolation'"),
    ({"node": "warp", "colour": "red"}, 400, "unknown field(s) colour"),
    ([1, 2], 400, "must be a JSON object"),
    ({"node": True}, 400, "'node' must be the id"),
])
def test_bad_requests_get_a_4xx_with_the_reason(comfy_server, warped, body, status, message):
    got, reply = post(comfy_server, body)
    assert got == status and message in reply["error"], reply


def test_bodies_that_are_not_json_or_too_large_are_refused(comfy_server, warped):
    status, reply = post(comfy_server, None, raw=b"{not json")
    assert status == 400 and "not JSON" in reply["error"]
    status, reply = post(comfy_server, None, raw=json.dumps({"node": "warp", "keyframes": "#" * 70000}).encode())
    assert status == 413 and "at most" in reply["error"]
