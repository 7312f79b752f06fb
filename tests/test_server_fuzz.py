"""Fuzz every widget of every node of the pack, and the pack's HTTP routes, through the real server.

Each node's inputs come from ``/object_info``; sockets are fed by small valid upstream nodes,
widgets get random and adversarial values (NaN, limits and one past them, huge and empty text,
names that leave their folder, unknown choices). Every prompt must end in one of three ways:
ComfyUI's own validation refuses it, a node raises a ``ReCaptureInputError`` (a message naming
the input), or it runs. Anything else (a raw exception, a hang) is a failure, and the server must
answer other requests throughout. Fixed seed and a small budget in CI (``RECAPTURE_FUZZ_PROMPTS``
per node, default 4); each prompt keeps every widget valid and cheap but one to three; widgets that set how much work there is (steps, frames) stay small so a
prompt's time bounds its outcome.

The routes of the camera editor get random JSON and random bytes (``RECAPTURE_FUZZ_ROUTE_REQUESTS`` per route,
default 40, within ROUTE_BUDGET_S): every answer must be a 2xx, or a 4xx with a JSON ``error``, never a 5xx,
and the server must answer other requests after each.
"""
from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from comfy_host import PromptFailed, PromptRejected

pytestmark = pytest.mark.server
SEED = int(os.environ.get("RECAPTURE_FUZZ_SEED", "20261129"))
PROMPTS_PER_NODE = int(os.environ.get("RECAPTURE_FUZZ_PROMPTS", "4"))
PROMPT_TIMEOUT_S = 120.0
FRAMES, SIDE = 4, 32
#: Widgets that set the amount of work: fuzzed only within these bounds (their edge cases are tested elsewhere).
WORK_LIMITS = {"steps": (0, 3), "num_frames": (0, 6), "orbit_frames": (0, 4), "resolution": (0, 64),
               "frames_per_step": (0, 4), "batch_size": (0, 8), "width": (0, 512), "height": (0, 512)}
STRINGS = ["", " ", ".", "..", "../escape", "a/./b", "sub/", "/etc/passwd", "C:\\x", "name\nwith newline", "tab\there",
           "x" * 5000, " " * 16000, "ü☃ unicode", "0:\n2: orbit_left=3, dolly_in=0.1", "3: zoom=0", "nan", "1e999",
           "0: orbit_left=1, orbit_left=2", "(" * 2000, "recapture_fuzz/ok_name"]


@pytest.fixture(scope="module")
def fuzz_images(comfy_server):
    """fuzz_frame.png and its depth map fuzz_depth.png in the server's input folder (the IMAGE and DEPTH providers)."""
    rng = np.random.default_rng(SEED)
    Image.fromarray((rng.random((SIDE, SIDE, 3)) * 255).astype(np.uint8)).save(comfy_server.base_dir / "input" / "fuzz_frame.png")
    depth = np.full((SIDE, SIDE), 200, np.uint8)
    depth[8:24, 8:24] = 60
    Image.fromarray(depth).convert("RGB").save(comfy_server.base_dir / "input" / "fuzz_depth.png")


@pytest.fixture(scope="module")
def fuzz_inputs(comfy_server, fuzz_images):
    # A spatial LoRA of the tiny SVD, for sockets of type RECAPTURE_LORA.
    graph = {**PROVIDERS["IMAGE"], **PROVIDERS["RECAPTURE_BACKBONE"],
             "lt": {"class_type": "ReCaptureSpatialLoRATrain",
                    "inputs": {"backbone": ["bb", 0], "frames": ["img", 0], "steps": 1, "learning_rate": 1e-3, "rank": 4,
                               "alpha": 4.0, "seed": 0, "gradient_checkpointing": True, "mixed_precision": "auto",
                               "frames_per_step": 1}},
             "ls": {"class_type": "ReCaptureLoRASave", "inputs": {"lora": ["lt", 0], "filename_prefix": "fuzz/base",
                                                                 "export_comfyui": False}}}
    path = comfy_server.run(graph)["outputs"]["ls"]["text"][0]
    return "recapture/" + path.split("/recapture/", 1)[1]


PROVIDERS = {  # socket type -> nodes giving a small valid value on output 0 of the node named in SOURCE
    "IMAGE": {"img0": {"class_type": "LoadImage", "inputs": {"image": "fuzz_frame.png"}},
              "img": {"class_type": "RepeatImageBatch", "inputs": {"image": ["img0", 0], "amount": FRAMES}}},
    "MASK": {"msk": {"class_type": "ImageToMask", "inputs": {"image": ["img", 0], "channel": "red"}}},
    "DEPTH": {"dimg0": {"class_type": "LoadImage", "inputs": {"image": "fuzz_depth.png"}},
              "dimg": {"class_type": "RepeatImageBatch", "inputs": {"image": ["dimg0", 0], "amount": FRAMES}},
              "dep": {"class_type": "ReCaptureDepthFromImage",
                      "inputs": {"depth_image": ["dimg", 0], "reading": "depth, bright = far", "near": 0.5, "far": 20.0,
                                 "temporal_consistency": False}}},
    "CAMERA_TRAJECTORY": {"trj": {"class_type": "ReCaptureCameraTrajectory",
                                  "inputs": {"preset": "truck left", "amount": 0.05, "easing": "linear", "num_frames": FRAMES,
                                             "hfov_deg": 60.0, "subject_distance": 1.0}}},
    "RECAPTURE_BACKBONE": {"bb": {"class_type": "ReCaptureSVDLoader", "inputs": {"model": "tiny-svd", "dtype": "fp32"}}},
    "RECAPTURE_LORA": {"lora": {"class_type": "ReCaptureLoRALoad", "inputs": {"lora_name": None}}},  # filled per run
    "MODEL": {"ckpt": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": "tiny_stable_zero123.safetensors"}}},
    "CLIP_VISION": {"cv": {"class_type": "ReCaptureTestTinyCLIPVisionLoader", "inputs": {"clip_name": "tiny-clip-vision.safetensors"}}},
}
PROVIDERS["MASK"] = {**PROVIDERS["IMAGE"], **PROVIDERS["MASK"]}
PROVIDERS["VAE"] = PROVIDERS["MODEL"]
SOURCE = {"IMAGE": ("img", 0), "MASK": ("msk", 0), "DEPTH": ("dep", 0), "CAMERA_TRAJECTORY": ("trj", 0),
          "RECAPTURE_BACKBONE": ("bb", 0), "RECAPTURE_LORA": ("lora", 0), "MODEL": ("ckpt", 0), "CLIP_VISION": ("cv", 0),
          "VAE": ("ckpt", 2)}
CONSUMERS = {  # how an output of each type reaches an output node
    "IMAGE": lambda ref: {"out": {"class_type": "PreviewImage", "inputs": {"images": ref}}},
    "MASK": lambda ref: {"outm": {"class_type": "MaskToImage", "inputs": {"mask": ref}},
                         "out": {"class_type": "PreviewImage", "inputs": {"images": ["outm", 0]}}},
    "CAMERA_TRAJECTORY": lambda ref: {"outc": {"class_type": "ReCaptureCameraPreview",
                                               "inputs": {"trajectory": ref, "width": 256, "height": 128}},
                                      "out": {"class_type": "PreviewImage", "inputs": {"images": ["outc", 0]}}},
    "RECAPTURE_LORA": lambda ref: {"out": {"class_type": "ReCaptureLoRASave",
                                           "inputs": {"lora": ref, "filename_prefix": "fuzz/out", "export_comfyui": True}}},
}


#: Valid, cheap values for the widgets that set the amount of work (others start at their defaults).
CHEAP = {"steps": 2, "num_frames": FRAMES, "orbit_frames": 3, "resolution": 32, "frames_per_step": 2, "batch_size": 2}


def base_value(name: str, kind, options: dict):
    """A valid, cheap value: the widget's default, or a small amount of work."""
    if isinstance(kind, list):
        return options.get("default", kind[0] if kind else None)
    if name in CHEAP and kind in ("INT", "FLOAT"):
        return max(CHEAP[name], options.get("min", CHEAP[name]))
    return options.get("default")


def adversarial_value(rng: random.Random, name: str, kind, options: dict):
    """A random or hostile value for one widget."""
    if isinstance(kind, list):
        return rng.choice(kind) if rng.random() < 0.7 and kind else "not-an-option"
    low, high = options.get("min"), options.get("max")
    if name in WORK_LIMITS and kind in ("INT", "FLOAT"):
        low, high = max(low if low is not None else 0, WORK_LIMITS[name][0]), WORK_LIMITS[name][1]
        return rng.choice([low, high, rng.randint(int(low), int(high)), low - 1])
    if kind == "INT":
        low = -(2**31) if low is None else low
        high = 2**31 if high is None else high
        return rng.choice([low, high, low - 1, high + 1, 0, -1, rng.randint(low, high)])
    if kind == "FLOAT":
        low = -1e6 if low is None else low
        high = 1e6 if high is None else high
        return rng.choice([low, high, float("nan"), float("inf"), -float("inf"), 1e308, -1e-9, 0.0,
                           rng.uniform(low, high), high * (1 + 1e-9) + 1e-9, low + (high - low) * 1e-7])
    if kind == "STRING":
        return rng.choice(STRINGS)
    if kind == "BOOLEAN":
        return rng.choice([True, False])
    return None


def node_graph(rng: random.Random, node_type: str, info: dict, lora_name: str) -> dict:
    """The node with its sockets fed, every widget valid and cheap but one to three made hostile."""
    graph, inputs, widgets = {}, {}, []
    for section in ("required", "optional"):
        for name, spec in info["input"].get(section, {}).items():
            kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
            if isinstance(kind, str) and kind in SOURCE:
                if section == "optional" and rng.random() < 0.5:
                    continue
                graph.update(PROVIDERS[kind])
                inputs[name] = list(SOURCE[kind])
            else:
                widgets.append(name)
                value = base_value(name, kind, options)
                if value is not None:
                    inputs[name] = value
    for name in rng.sample(widgets, min(len(widgets), rng.randint(1, 3))):
        spec = info["input"].get("required", {}).get(name) or info["input"]["optional"][name]
        value = adversarial_value(rng, name, spec[0], spec[1] if len(spec) > 1 else {})
        if value is not None:
            inputs[name] = value
    if "lora" in graph:
        graph["lora"] = {**graph["lora"], "inputs": {"lora_name": lora_name}}
    graph["n"] = {"class_type": node_type, "inputs": inputs}
    if not info.get("output_node"):
        for index, kind in enumerate(info["output"]):
            if kind in CONSUMERS:
                graph.update(CONSUMERS[kind](["n", index]))
                break
    return graph


def outcome(comfy_server, graph: dict) -> str:
    try:
        comfy_server.run(graph, timeout_s=PROMPT_TIMEOUT_S)
    except PromptRejected:
        return "refused by ComfyUI's validation"
    except PromptFailed as failure:
        if failure.exception_type.endswith("ReCaptureInputError") and failure.exception_message.startswith("ReCapture: input '"):
            return "ReCaptureInputError"
        return f"RAW {failure.exception_type}: {failure.exception_message[:300]}"
    return "ran"


def test_random_and_adversarial_widgets_on_every_node(comfy_server, fuzz_inputs):
    info = comfy_server.object_info()
    ours = sorted(name for name, entry in info.items() if entry.get("python_module") == "custom_nodes.recapture")
    rng = random.Random(SEED)
    seen, bad = {}, []
    for node_type in ours:
        for _ in range(PROMPTS_PER_NODE):
            graph = node_graph(rng, node_type, info[node_type], fuzz_inputs)
            started = time.perf_counter()
            result = outcome(comfy_server, graph)
            elapsed = time.perf_counter() - started
            seen[result.split(":")[0]] = seen.get(result.split(":")[0], 0) + 1
            if result.startswith("RAW") or elapsed > PROMPT_TIMEOUT_S:
                shown = {k: (v[:40] + "..." if isinstance(v, str) and len(v) > 40 else v) for k, v in graph["n"]["inputs"].items()}
                bad.append((node_type, shown, result[:300], round(elapsed, 1)))
            ping = time.perf_counter()
            comfy_server.get_json("/system_stats", timeout_s=5)
            assert time.perf_counter() - ping < 2.0, "the server stopped answering"
    print(f"fuzz outcomes over {len(ours)} nodes: {seen}")
    assert not bad, "\n".join(map(str, bad))
    assert len(ours) >= 20 and seen.get("ran", 0) > 0 and seen.get("ReCaptureInputError", 0) > 0, seen


ROUTE_REQUESTS = int(os.environ.get("RECAPTURE_FUZZ_ROUTE_REQUESTS", "40"))
ROUTE_BUDGET_S = 180.0
ROUTE_WARP = "route_warp"
#: Route -> its fields and, per field, values a client might plausibly send (valid, or just outside, and cheap:
#: a route's work grows with num_frames and size, whose edge cases are tested in test_server_routes_hostile.py).
ROUTE_BASES = {"/recapture/camera_path": {"keyframes": "0:\n3: orbit_left=5", "num_frames": 4},
               "/recapture/anchor_preview": {"node": ROUTE_WARP, "size": 32}, "/recapture/point_cloud": {"node": ROUTE_WARP}}
ROUTE_FIELDS = {
    "/recapture/camera_path": {
        "keyframes": ["0:", "0:\n6: orbit_left=10, dolly_in=0.1", "0:\n3: spin=1", "2: zoom=0", "0:\n0: orbit_left=1"],
        "interpolation": ["pose: slerp + spline", "pose: linear", "cubic"], "num_frames": [1, 2, 7, 16, 0, 4097, -1],
        "hfov_deg": [60.0, 1.0, 179.0, 0.5, 180], "subject_distance": [1.0, 1e-3, 1e6, 0, -1.0],
        "preset": ["orbit left", "dolly in", "static", "spin"], "amount": [20.0, 0, 360, 361, -1e-9],
        "easing": ["linear", "ease-in-out", "bouncy"]},
    "/recapture/anchor_preview": {
        "node": [ROUTE_WARP, ROUTE_WARP, "nope", 0, ""], "frame": [0, 3, 4, -1], "size": [16, 48, 15, 5000],
        "keyframes": ["0:\n3: orbit_left=20", "0:", "0:\n3: fly=1"], "interpolation": ["pose: slerp + spline", "nope"]},
    "/recapture/point_cloud": {"node": [ROUTE_WARP, ROUTE_WARP, "nope", 7]},
}


def random_json(rng: random.Random, depth: int = 0):
    """Any JSON value, now and then hostile: huge or non-finite numbers, long text, nesting."""
    kind = rng.choice(["int", "float", "text", "bool", "null"] + (["list", "object"] if depth < 4 else []))
    if kind == "int":
        return rng.choice([0, 1, -1, 3, 64, 2**31, 2**63, -(10 ** rng.randint(10, 39)), 10 ** rng.randint(10, 39)])
    if kind == "float":
        return rng.choice([0.5, -1e-9, 1e308, -1e308, 1e-320, rng.uniform(-1e3, 1e3), float("nan"), float("inf")])
    if kind == "text":
        return rng.choice(STRINGS)
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "null":
        return None
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["node", "frame", "x", ""]): random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def random_body(rng: random.Random, base: dict, fields: dict) -> tuple[bytes, str]:
    """A request body and its Content-Type: mostly a valid ``base`` with one to three of the route's fields changed,
    now and then bytes that are no such object."""
    if rng.random() < 0.15:
        raw = rng.choice([b"", b"{", b'{"node": ', b"[1, 2", b"\xff\xfe{}", b"NaN", b"null", b'"text"', b"[]",
                          b"[" * rng.randint(9, 30000), b'{"num_frames": ' + b"9" * rng.randint(41, 5000) + b"}",
                          b'{"frame": 1e999999}', bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))])
        return raw, rng.choice(["application/json", "text/plain;charset=UTF-8", "application/json; charset=latin-1"])
    body = dict(base)
    for name in rng.sample(sorted(fields), rng.randint(1, min(3, len(fields)))):
        body[name] = rng.choice(fields[name]) if rng.random() < 0.6 else random_json(rng)
    if rng.random() < 0.1:
        body[rng.choice(["colour", "__proto__", "x" * 100])] = random_json(rng)
    return json.dumps(body).encode(), "application/json"


def post_raw(comfy_server, route: str, raw: bytes, content_type: str) -> tuple[int, bytes]:
    request = urllib.request.Request(comfy_server.url + route, data=raw, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=PROMPT_TIMEOUT_S) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_random_json_on_the_routes_gets_a_2xx_or_a_4xx_with_the_reason(comfy_server, fuzz_images):
    graph = {**PROVIDERS["IMAGE"], **PROVIDERS["DEPTH"], **PROVIDERS["CAMERA_TRAJECTORY"],
             ROUTE_WARP: {"class_type": "ReCapturePointCloudWarp",
                          "inputs": {"frames": list(SOURCE["IMAGE"]), "trajectory": list(SOURCE["CAMERA_TRAJECTORY"]),
                                     "depth": list(SOURCE["DEPTH"]), "match_subject_distance": True, "edge_threshold": 0.05,
                                     "hole_dilation": 0, "hole_fill": "black", "warn_above": 0.35}},
             **CONSUMERS["IMAGE"]([ROUTE_WARP, 0])}
    comfy_server.run(graph)  # the anchor preview and the point cloud have a node to look at
    rng = random.Random(SEED)
    deadline = time.monotonic() + ROUTE_BUDGET_S
    seen, bad = {}, []
    for _ in range(ROUTE_REQUESTS):
        for route, fields in ROUTE_FIELDS.items():
            if time.monotonic() > deadline:
                break
            raw, content_type = random_body(rng, ROUTE_BASES[route], fields)
            status, reply = post_raw(comfy_server, route, raw, content_type)
            seen[status] = seen.get(status, 0) + 1
            try:
                body = json.loads(reply)
            except ValueError:
                body = None
            if not (200 <= status < 300 or (400 <= status < 500 and isinstance(body, dict) and isinstance(body.get("error"), str))):
                bad.append((route, raw[:120], content_type, status, reply[:300]))
            comfy_server.get_json("/system_stats", timeout_s=10)  # and the server answers others
    print(f"route fuzz statuses: {seen}")
    assert not bad, "\n".join(map(str, bad))
    assert seen.get(200, 0) > 0 and seen.get(400, 0) > 0, seen
