"""The camera editor's routes (/recapture/camera_path, /recapture/anchor_preview, /recapture/point_cloud) against
hostile and unlucky requests, through the real server.

Work that grows with frames or pixels runs off the event loop in a bounded pool (the test-only route probe of
tests/comfy_support/recapture_test_nodes/route_probe.py records the thread that does it and can hold it, so these
tests need no timing); every bad request gets a 4xx naming the field; a node id that now names another node is
refused rather than answered with the old clip.
"""
from __future__ import annotations

import importlib
import json
import random
import threading
import time
import urllib.error
import urllib.request

import pytest

from test_server_anchor import WARP_WIDGETS, input_images, trajectory, video  # noqa: F401  (fixture)

pytestmark = pytest.mark.server
PATH, PREVIEW, CLOUD = "/recapture/camera_path", "/recapture/anchor_preview", "/recapture/point_cloud"
PROBE = "/recapture_test/route_probe"
WARP_ID = "hostile_warp"
#: Bounds every wait of these tests: a server that never answers fails them instead of hanging them.
WAIT_S = 60.0


def post(server, route: str, body=None, raw: bytes | None = None, content_type: str = "application/json",
         timeout_s: float = WAIT_S) -> tuple[int, dict, dict]:
    """(status, JSON reply, headers) of a POST with ``body`` as JSON, or ``raw`` bytes as they are."""
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + route, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            return reply.status, json.loads(reply.read()), dict(reply.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), dict(err.headers)


def with_literal(body: dict, field: str, literal: str) -> bytes:
    """``body`` as JSON with ``field`` set to a literal JSON text json.dumps would not write (1e400, 400 digits)."""
    return json.dumps({**body, field: "@@"}).replace('"@@"', literal).encode()


def warp_graph(frame: str, depth: str, node_id: str = WARP_ID) -> dict:
    """A 4-frame PointCloudWarp at ``node_id`` (its anchor previewed, so the graph has an output)."""
    return {**video("1", frame, 4), **video("2", depth, 4), "camera": trajectory(4),
            node_id: {"class_type": "ReCapturePointCloudWarp",
                      "inputs": {"frames": ["1", 0], "trajectory": ["camera", 0], "depth_image": ["2", 0],
                                 "reading": "depth, bright = far", **WARP_WIDGETS}},
            "show": {"class_type": "PreviewImage", "inputs": {"images": [node_id, 0]}}}


def trajectory_graph(node_id: str) -> dict:
    """A Camera Trajectory at ``node_id``, drawn (so the graph has an output)."""
    return {node_id: trajectory(4), "look": {"class_type": "ReCaptureCameraPreview",
                                             "inputs": {"trajectory": [node_id, 0], "width": 256, "height": 128}},
            "show": {"class_type": "PreviewImage", "inputs": {"images": ["look", 0]}}}


@pytest.fixture
def warped(comfy_server, input_images):  # noqa: F811
    """The id of a PointCloudWarp in the graph queued last (re-queued per test; ComfyUI answers it from its cache)."""
    comfy_server.run(warp_graph(*input_images))
    return WARP_ID


class Probe:
    def __init__(self, server):
        self.server = server

    def set(self, wrap: list[str], hold: bool) -> None:
        status, reply, _ = post(self.server, PROBE, {"wrap": wrap, "hold": hold}, timeout_s=10)
        assert status == 200 and reply["wrapped"] == sorted(wrap), reply

    def release(self) -> None:
        post(self.server, PROBE, {"release": True}, timeout_s=10)

    def look(self) -> dict:
        return self.server.get_json(PROBE, timeout_s=10)

    def wait_for(self, condition, what: str) -> dict:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                seen = self.look()
            except OSError:  # not answered: the event loop is busy
                seen = None
            if seen is not None and condition(seen):
                return seen
            time.sleep(0.05)
        raise AssertionError(f"the server never got to: {what}")


@pytest.fixture
def probe(comfy_server):
    probe = Probe(comfy_server)
    yield probe
    probe.release()
    probe.set([], hold=False)


def in_background(call, *args, **kwargs) -> tuple[threading.Thread, list]:
    """``call(*args, **kwargs)`` in a thread; the list receives its result."""
    results: list = []
    thread = threading.Thread(target=lambda: results.append(call(*args, **kwargs)), daemon=True)
    thread.start()
    return thread, results


def test_a_long_path_is_computed_off_the_event_loop_which_keeps_answering(comfy_server, probe):
    probe.set(["keyframe_trajectory"], hold=True)
    body = {"keyframes": "0:\n9: orbit_left=9", "num_frames": 4096}  # 47 bytes for 4096 poses
    thread, results = in_background(post, comfy_server, PATH, body)
    probe.wait_for(lambda seen: seen["waiting"] == 1, "computing the path")
    # The path's work is held in the middle: a server computing it on its event loop could answer nothing now.
    assert "ReCapturePointCloudWarp" in comfy_server.get_json("/object_info", timeout_s=WAIT_S)
    probe.release()
    thread.join(WAIT_S)
    status, reply, _ = results[0]
    assert status == 200 and reply["num_frames"] == 4096 and len(reply["poses"]) == 4096
    calls = probe.look()["calls"]
    assert [call["function"] for call in calls] == ["keyframe_trajectory"]
    assert not calls[0]["on_event_loop"], calls


def test_previews_and_point_clouds_are_computed_off_the_event_loop(comfy_server, warped, probe):
    probe.set(["preview_frame", "point_grid"], hold=False)
    assert post(comfy_server, PREVIEW, {"node": warped, "frame": 3, "size": 48})[0] == 200
    assert post(comfy_server, CLOUD, {"node": warped})[0] == 200
    calls = probe.look()["calls"]
    assert sorted(call["function"] for call in calls) == ["point_grid", "preview_frame"]
    assert not any(call["on_event_loop"] for call in calls), calls


def test_when_the_workers_are_full_the_next_request_is_refused_at_once(comfy_server, probe):
    probe.set(["keyframe_trajectory"], hold=True)
    pool = probe.look()
    extra = 2
    requests = [in_background(post, comfy_server, PATH, PATH_BODY) for _ in range(pool["capacity"] + extra)]

    def refused():
        return [result[0] for _, result in requests if result and result[0][0] == 503]

    probe.wait_for(lambda seen: seen["waiting"] == pool["workers"] and len(refused()) == extra, "a full pool")
    for status, reply, headers in refused():
        assert "busy" in reply["error"] and headers.get("Retry-After"), (status, reply, headers)
    assert comfy_server.get_json("/system_stats", timeout_s=WAIT_S)  # full, and still answering
    probe.release()
    for thread, _ in requests:
        thread.join(WAIT_S)
    statuses = sorted(result[0][0] for _, result in requests)
    assert statuses == [200] * pool["capacity"] + [503] * extra


DEEP = "[" * 30000 + "]" * 30000  # 60,000 bytes: inside the 64 KiB limit
LONG_INTEGER = "1" + "0" * 4999
HUGE = [10**30, "1e400", "1" + "0" * 400]  # strings: JSON literals json.dumps would not write (inf, 401 digits)
PATH_BODY = {"keyframes": "0:\n3: orbit_left=5", "num_frames": 4}
PRESET_BODY = {"preset": "orbit left", "num_frames": 4}


@pytest.mark.parametrize("route, body, field, literal", [
    (PATH, PATH_BODY, "num_frames", DEEP),
    (PATH, PATH_BODY, "num_frames", LONG_INTEGER),
    (PATH, PRESET_BODY, "amount", LONG_INTEGER),
    (PREVIEW, {"node": WARP_ID}, "frame", DEEP),
    (PREVIEW, {"node": WARP_ID}, "size", LONG_INTEGER),
    (CLOUD, {}, "node", LONG_INTEGER),
] + [(PATH, PATH_BODY, field, value) for field in ("num_frames", "hfov_deg", "subject_distance") for value in HUGE]
  + [(PATH, PRESET_BODY, "amount", value) for value in HUGE]
  + [(PREVIEW, {"node": WARP_ID}, field, value) for field in ("frame", "size") for value in HUGE])
def test_hostile_values_get_a_400_naming_the_field(comfy_server, warped, route, body, field, literal):
    raw = with_literal(body, field, literal if isinstance(literal, str) else json.dumps(literal))
    assert len(raw) <= 64 * 1024
    status, reply, _ = post(comfy_server, route, raw=raw)
    assert status == 400, reply
    assert (f"input '{field}'" if field != "node" else "'node'") in reply["error"], reply


@pytest.mark.parametrize("route", [PATH, PREVIEW, CLOUD])
def test_bodies_that_are_hostile_as_a_whole_get_a_4xx_with_the_reason(comfy_server, warped, route):
    status, reply, _ = post(comfy_server, route, raw=DEEP.encode())
    assert status == 400 and "deeper than" in reply["error"], reply
    body = json.dumps({"node": warped} if route != PATH else PATH_BODY).encode()
    status, reply, _ = post(comfy_server, route, raw=body, content_type="application/json; charset=x-unknown-charset")
    assert status == 415 and "charset" in reply["error"], reply
    status, reply, _ = post(comfy_server, route, raw=b'{"node": "\xff\xfe"}')
    assert status == 400 and "UTF-8" in reply["error"], reply
    assert post(comfy_server, route, raw=body, content_type="text/plain;charset=UTF-8")[0] == 200  # what fetch() sends


def test_an_id_that_now_names_another_node_is_refused_with_the_reason(comfy_server, input_images):  # noqa: F811
    graph = warp_graph(*input_images, node_id="stale")
    for _ in range(2):  # the second time ComfyUI answers from its cache: the node does not run again, and still is one
        comfy_server.run(graph)
        assert post(comfy_server, PREVIEW, {"node": "stale", "size": 48})[0] == 200
        assert post(comfy_server, CLOUD, {"node": "stale"})[0] == 200
    comfy_server.run(trajectory_graph("stale"))  # the id now names a camera node
    for route, body in ((PREVIEW, {"node": "stale", "size": 48}), (CLOUD, {"node": "stale"})):
        status, reply, _ = post(comfy_server, route, body)
        assert status == 404, reply
        assert "ReCaptureCameraTrajectory" in reply["error"] and "ReCapturePointCloudWarp" in reply["error"], reply
    comfy_server.run(trajectory_graph("other"))  # a graph without the id
    status, reply, _ = post(comfy_server, CLOUD, {"node": "stale"})
    assert status == 404 and "not in the graph queued last" in reply["error"], reply
    comfy_server.run(graph)
    assert post(comfy_server, CLOUD, {"node": "stale"})[0] == 200  # queued again: it is that node again


def random_nested(rng: random.Random, depth: int):
    """A JSON value nested ``depth`` levels (0: a plain value), with text full of brackets, quotes and backslashes."""
    if depth == 0:
        return rng.choice([1, -2.5, None, True, "", "[[{", '"]}"', "\\", '\\"[', "ü[☃]"])
    inner = [random_nested(rng, rng.randint(0, depth - 1)) for _ in range(rng.randint(0, 2))]
    inner.insert(rng.randint(0, len(inner)), random_nested(rng, depth - 1))
    return inner if rng.random() < 0.5 else {f"k{i}[\"{{": value for i, value in enumerate(inner)}


def test_the_depth_limit_is_found_before_parsing_exactly_as_deep_as_the_parsed_json(pack):
    routes = importlib.import_module(f"{pack.__name__}.nodes._routes")
    rng = random.Random(28)
    for _ in range(300):
        depth = rng.randint(0, 2 * routes.MAX_JSON_DEPTH)
        value = random_nested(rng, depth)
        raw = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode()
        if depth <= routes.MAX_JSON_DEPTH:
            assert routes.parse_body(raw, None) == value
        else:
            with pytest.raises(Exception, match="deeper than"):
                routes.parse_body(raw, None)
