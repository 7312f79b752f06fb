"""Depth files: DEPTH saved once, loaded bit-exactly in another graph (or on another server), hostile files refused.

Core round trip and refusals in-process; Save Depth -> copy into input/ -> Load Depth through the real server.
"""
from __future__ import annotations

import os
import shutil
import struct
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from comfy_host import PromptFailed, PromptRejected
from recapture_core.depth import DepthMaps
from recapture_core.depth_files import (MAX_HEADER_BYTES, SUFFIX, depth_file_fingerprint, list_depth_files, load_depth,
                                        load_depth_file, save_depth)
from recapture_core.errors import ReCaptureInputError
from test_camera_files import MARKER, FifoWatch, outcome_within
from test_server_hostile import TRAJECTORY, clip, fails_naming, preview, warp


def depth_maps(kind="metric", frames=3, height=5, width=7, intrinsics=None, seed=0) -> DepthMaps:
    """Positive values of every magnitude float32 holds (no round numbers: a lossy path would show)."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.exp(torch.randn(frames, height, width, generator=generator) * 3).to(torch.float32)
    return DepthMaps(values, kind, intrinsics)


def assert_same(loaded: DepthMaps, saved: DepthMaps) -> None:
    assert loaded.kind == saved.kind
    assert loaded.values.dtype == torch.float32 and torch.equal(loaded.values, saved.values)
    if saved.intrinsics is None:
        assert loaded.intrinsics is None
    else:
        assert loaded.intrinsics.dtype == saved.intrinsics.dtype and torch.equal(loaded.intrinsics, saved.intrinsics)


def refused(path, *fragments, inside=None) -> str:
    """load_depth refuses ``path`` naming the input 'file' and the file, saying ``fragments``, quoting nothing of it."""
    with pytest.raises(ReCaptureInputError) as err:
        load_depth(path, "file", inside=inside)
    message = str(err.value)
    assert err.value.input_name == "file" and message.startswith("ReCapture: input 'file': "), message
    assert path.name in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert MARKER not in message and str(path.parent) not in message, message
    return message


# --- the core: round trip ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["metric", "relative", "disparity"])
@pytest.mark.parametrize("intrinsics", [None, torch.tensor([0.81, 0.83, 0.5, 0.47]),
                                        torch.tensor([0.8123456789012345, 0.81, 0.51, 0.49], dtype=torch.float64)])
def test_round_trip_is_bit_exact(tmp_path, kind, intrinsics):
    depth = depth_maps(kind, intrinsics=intrinsics)
    path = save_depth(depth, tmp_path / f"clip{SUFFIX}")
    assert_same(load_depth(path), depth)
    with safe_open(path, framework="pt") as handle:
        assert handle.metadata() == {"recapture_depth": "1", "kind": kind}
        assert set(handle.keys()) == ({"depth"} if intrinsics is None else {"depth", "intrinsics"})
        assert handle.get_tensor("depth").dtype == torch.float32
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # atomic: no temporary file left beside it


def test_views_and_tensors_with_gradients_are_saved_as_their_values(tmp_path):
    base = torch.rand(7, 3, 5) + 0.5
    view = base.permute(1, 2, 0)  # [3, 5, 7], not contiguous
    depth = DepthMaps(view, "relative")
    assert_same(load_depth(save_depth(depth, tmp_path / "view.depth.safetensors")), depth)
    leaf = (torch.rand(2, 4, 4) + 1).requires_grad_(True)
    loaded = load_depth(save_depth(DepthMaps(leaf, "metric"), tmp_path / "grad.depth.safetensors"))
    assert torch.equal(loaded.values, leaf.detach()) and not loaded.values.requires_grad


def test_a_half_precision_depth_file_from_elsewhere_loads_as_float32(tmp_path):
    values = (torch.rand(2, 3, 4) + 0.5).half()
    save_file({"depth": values}, tmp_path / "half.depth.safetensors", metadata={"recapture_depth": "1", "kind": "metric"})
    loaded = load_depth(tmp_path / "half.depth.safetensors")
    assert loaded.values.dtype == torch.float32 and torch.equal(loaded.values, values.float())


def test_saving_depth_that_could_not_be_loaded_is_refused(tmp_path):
    bad = DepthMaps(torch.tensor([[[1.0, -2.0]]]), "metric")
    with pytest.raises(ReCaptureInputError, match="positive everywhere"):
        save_depth(bad, tmp_path / "bad.depth.safetensors")
    assert list(tmp_path.iterdir()) == []


# --- the core: refusals ---------------------------------------------------------------------------------------
def marked(kind="metric") -> dict:
    return {"recapture_depth": "1", "kind": kind}


def write(path, tensors: dict, metadata: dict | None):
    save_file(tensors, path, metadata=metadata)
    return path


GOOD = torch.full((2, 3, 4), 2.0)


@pytest.mark.parametrize("name, make, fragments", [
    ("text", lambda p: p.write_text(MARKER + "\nnot a safetensors file\n"), ("is not a safetensors file",)),
    ("empty", lambda p: p.write_bytes(b""), ("is not a safetensors file",)),
    ("huge_header", lambda p: p.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}"), ("is not a safetensors file",)),
    ("header_past_end", lambda p: p.write_bytes(struct.pack("<Q", 100) + b'{"a": 1}'), ("is not a safetensors file",)),
    ("json_list", lambda p: p.write_bytes(struct.pack("<Q", 2) + b"[]"), ("is not a safetensors file",)),
    ("no_marker", lambda p: write(p, {"depth": GOOD}, None), ("not a ReCapture depth file", "model and LoRA files")),
    ("lora", lambda p: write(p, {"lora_A.weight": GOOD[0]}, {"format": "pt", "note": MARKER}), ("not a ReCapture depth file",)),
    ("newer", lambda p: write(p, {"depth": GOOD}, {"recapture_depth": MARKER, "kind": "metric"}), ("another format version",)),
    ("bad_kind", lambda p: write(p, {"depth": GOOD}, marked(MARKER)), ("does not say a depth kind", "metric, relative")),
    ("no_depth", lambda p: write(p, {"other": GOOD}, marked()), ("holds no 'depth' tensor",)),
    ("two_d", lambda p: write(p, {"depth": GOOD[0]}, marked()), ("shape [3, 4], not [frames, height, width]",)),
    ("four_d", lambda p: write(p, {"depth": GOOD[None]}, marked()), ("shape [1, 2, 3, 4]",)),
    ("zero_frames", lambda p: write(p, {"depth": GOOD[:0]}, marked()), ("shape [0, 3, 4]",)),
    ("integers", lambda p: write(p, {"depth": GOOD.long()}, marked()), ("of type int64, not floating point",)),
    ("nan", lambda p: write(p, {"depth": GOOD.clone().index_fill_(0, torch.tensor([1]), float("nan"))}, marked()),
     ("NaN or infinite",)),
    ("infinite", lambda p: write(p, {"depth": GOOD.double() * 1e300}, marked()), ("NaN or infinite",)),
    ("negative", lambda p: write(p, {"depth": -GOOD}, marked()), ("depth must be positive everywhere, found -2",)),
    ("zero_disparity", lambda p: write(p, {"depth": GOOD * 0}, marked("disparity")), ("disparity must be positive",)),
    ("intrinsics_3", lambda p: write(p, {"depth": GOOD, "intrinsics": torch.ones(3)}, marked()), ("intrinsics of shape [3]",)),
    ("intrinsics_nan", lambda p: write(p, {"depth": GOOD, "intrinsics": torch.tensor([float("nan"), 1, 0.5, 0.5])}, marked()),
     ("intrinsics that are not finite",)),
    ("intrinsics_negative", lambda p: write(p, {"depth": GOOD, "intrinsics": torch.tensor([-1.0, 1, 0.5, 0.5])}, marked()),
     ("focal lengths that are not positive",)),
])
def test_bad_files_are_refused_naming_the_input_and_the_file(tmp_path, name, make, fragments):
    path = tmp_path / f"{name}{SUFFIX}"
    make(path)
    refused(path, *fragments, inside=tmp_path)


def test_a_truncated_file_is_refused_as_damaged(tmp_path):
    whole = save_depth(depth_maps(), tmp_path / "whole.depth.safetensors").read_bytes()
    (tmp_path / "cut.depth.safetensors").write_bytes(whole[:-10])
    refused(tmp_path / "cut.depth.safetensors", "damaged safetensors file")


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path, monkeypatch):
    from recapture_core import depth_files

    path = save_depth(depth_maps(), tmp_path / "big.depth.safetensors")
    monkeypatch.setattr(depth_files, "MAX_DEPTH_FILE_BYTES", path.stat().st_size - 1)
    refused(path, f"is {path.stat().st_size} bytes", "Save fewer frames")


@pytest.fixture
def folders(tmp_path):
    """(input, outside): the folder files are picked from, and a folder beside it with a valid depth file."""
    inside, outside = tmp_path / "input", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    save_depth(depth_maps(), outside / "secret.depth.safetensors")
    return inside, outside


def test_a_link_leading_outside_the_folder_is_refused_unread_and_not_listed(folders):
    inside, outside = folders
    (inside / "link.depth.safetensors").symlink_to(outside / "secret.depth.safetensors")
    (inside / "sub").mkdir()
    (inside / "sub" / "out").symlink_to(outside, target_is_directory=True)
    save_depth(depth_maps(), inside / "sub" / "own.depth.safetensors")
    (inside / "sub" / "alias.depth.safetensors").symlink_to(inside / "sub" / "own.depth.safetensors")  # stays inside: fine
    message = refused(inside / "link.depth.safetensors", "leads outside the folder", "may not lead out of it", inside=inside)
    assert str(outside) not in message
    assert load_depth(outside / "secret.depth.safetensors").num_frames == 3  # the same file is fine outside a folder check
    for name in ("link.depth.safetensors", "sub/out/secret.depth.safetensors"):
        with pytest.raises(ReCaptureInputError, match="outside") as err:
            load_depth_file(inside, name)
        assert str(outside) not in str(err.value)
        with pytest.raises(ReCaptureInputError, match="outside"):
            depth_file_fingerprint(inside, name)
    assert list_depth_files(inside) == ["sub/alias.depth.safetensors", "sub/own.depth.safetensors"]
    assert_same(load_depth_file(inside, "sub/alias.depth.safetensors"), load_depth_file(inside, "sub/own.depth.safetensors"))


@pytest.mark.parametrize("name", ["../outside/secret.depth.safetensors", "/etc/passwd", "a/../../b.depth.safetensors", ""])
def test_names_that_leave_the_folder_are_refused(folders, name):
    with pytest.raises(ReCaptureInputError) as err:
        load_depth_file(folders[0], name)
    assert err.value.input_name == "file"


def test_a_fifo_is_refused_at_once_and_never_listed(folders):
    inside, _ = folders
    fifo = inside / "pipe.depth.safetensors"
    os.mkfifo(fifo)
    started = time.monotonic()
    with FifoWatch(fifo):
        for call in (lambda: load_depth(fifo, "file", inside=inside), lambda: depth_file_fingerprint(inside, fifo.name)):
            error = outcome_within(call, fifo)
            assert isinstance(error, ReCaptureInputError), error
            assert "pipe.depth.safetensors is a FIFO (named pipe), not a regular file" in str(error)
    assert time.monotonic() - started < 30
    assert list_depth_files(inside) == []


def test_the_fingerprint_follows_the_content(folders):
    inside, _ = folders
    path = save_depth(depth_maps(seed=1), inside / "a.depth.safetensors")
    first = depth_file_fingerprint(inside, "a.depth.safetensors")
    assert depth_file_fingerprint(inside, "a.depth.safetensors") == first
    save_depth(depth_maps(seed=2), path)
    assert depth_file_fingerprint(inside, "a.depth.safetensors") != first


# --- through the real ComfyUI server ---------------------------------------------------------------------------
SUBFOLDER = "depth_files_test"


@pytest.fixture(scope="module")
def server_inputs(comfy_server):
    """A frame and a greyscale depth map in the server's input folder; the depth files the tests put there are
    removed afterwards (other tests compare the server's list of input files with their own)."""
    inputs = comfy_server.base_dir / "input"
    rng = np.random.default_rng(11)
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(inputs / "depth_files_frame.png")
    ramp = np.tile(np.linspace(40, 220, 32), (32, 1)) + rng.integers(-10, 10, (32, 32))
    Image.fromarray(ramp.astype(np.uint8)).convert("RGB").save(inputs / "depth_files_depth.png")
    (inputs / SUBFOLDER).mkdir(exist_ok=True)
    yield inputs
    shutil.rmtree(inputs / SUBFOLDER, ignore_errors=True)


def make_and_save(prefix: str, near: float = 0.5) -> dict:
    """LoadImage x4 -> Depth From Image (metric) -> Save Depth."""
    return {**clip("1", "depth_files_frame.png"), **clip("2", "depth_files_depth.png"),
            "3": {"class_type": "ReCaptureDepthFromImage",
                  "inputs": {"depth_image": ["2", 0], "reading": "metric: near..far, bright = near", "near": near,
                             "far": 20.0, "temporal_consistency": False, "frames": ["1", 0]}},
            "4": {"class_type": "ReCaptureDepthSave", "inputs": {"depth": ["3", 0], "filename_prefix": prefix}}}


def load_graph(file: str, prefix: str) -> dict:
    """Load Depth -> Save Depth again, its preview into PreviewImage, and a PointCloudWarp consuming the DEPTH."""
    return {**clip("1", "depth_files_frame.png"), **TRAJECTORY,
            "5": {"class_type": "ReCaptureDepthLoad", "inputs": {"file": file}},
            "6": {"class_type": "ReCaptureDepthSave", "inputs": {"depth": ["5", 0], "filename_prefix": prefix}},
            **preview("5", socket=1), "7": warp(["1", 0], {"depth": ["5", 0]}), **preview("7")}


def written(comfy_server, entry: dict, node_id: str):
    relative = entry["outputs"][node_id]["text"][0]
    assert not os.path.isabs(relative) and relative.endswith(SUFFIX), relative
    return relative, comfy_server.base_dir / "output" / relative


def file_contents(path) -> tuple[dict, dict]:
    with safe_open(path, framework="pt") as handle:
        return handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}


def offered(comfy_server) -> list[str]:
    return comfy_server.object_info()["ReCaptureDepthLoad"]["input"]["required"]["file"][0]


@pytest.fixture(scope="module")
def saved(comfy_server, server_inputs):
    """The depth file a first graph saved, copied into the server's input folder as a render farm would ship it."""
    entry = comfy_server.run(make_and_save("recapture_test/depth_files/clip"))
    relative, path = written(comfy_server, entry, "4")
    shutil.copy(path, server_inputs / SUBFOLDER / "clip.depth.safetensors")
    return relative, path, f"{SUBFOLDER}/clip.depth.safetensors"


@pytest.mark.server
def test_depth_saved_in_one_graph_loads_bit_exactly_in_another(comfy_server, saved):
    relative, first, name = saved
    assert relative == "recapture_test/depth_files/clip_00001.depth.safetensors"
    assert name in offered(comfy_server)
    entry = comfy_server.run(load_graph(name, "recapture_test/depth_files/again"))
    _, again = written(comfy_server, entry, "6")
    (meta_a, tensors_a), (meta_b, tensors_b) = file_contents(first), file_contents(again)
    assert meta_a == meta_b == {"recapture_depth": "1", "kind": "metric"}
    assert tensors_a.keys() == tensors_b.keys() == {"depth"}
    assert tensors_a["depth"].shape == (4, 32, 32) and torch.equal(tensors_a["depth"], tensors_b["depth"])
    assert len(comfy_server.output_files(entry, "5_preview")) == 4  # the colour preview, one per frame
    assert len(comfy_server.output_files(entry, "7_preview")) == 4  # the warp consumed the loaded DEPTH


@pytest.mark.server
def test_a_second_save_never_overwrites_the_first(comfy_server, saved):
    relative, first, _ = saved
    before = first.read_bytes()
    entry = comfy_server.run(make_and_save("recapture_test/depth_files/clip", near=0.7))  # other depth: the node runs again
    second, path = written(comfy_server, entry, "4")
    assert second != relative and second.startswith("recapture_test/depth_files/clip_000")
    assert first.read_bytes() == before
    assert not torch.equal(file_contents(path)[1]["depth"], file_contents(first)[1]["depth"])


@pytest.mark.server
def test_a_prefix_that_cannot_be_written_fails_naming_it(comfy_server, saved):
    blocker = comfy_server.base_dir / "output" / "recapture_test" / "depth_files" / "blocker"
    blocker.write_text("a file where the prefix names a folder")
    message = fails_naming(comfy_server, make_and_save("recapture_test/depth_files/blocker/clip"), "filename_prefix",
                           "cannot write under 'recapture_test/depth_files/blocker/clip'")
    assert str(comfy_server.base_dir) not in message


@pytest.mark.server
@pytest.mark.parametrize("file", ["nope.depth.safetensors", "../output/recapture_test/depth_files/clip_00001.depth.safetensors"])
def test_a_file_name_not_offered_is_refused_naming_the_input(comfy_server, server_inputs, file):
    with pytest.raises(PromptRejected) as rejected:
        comfy_server.submit(load_graph(file, "recapture_test/depth_files/never"))
    errors = rejected.value.node_errors["5"]["errors"]
    assert errors[0]["extra_info"]["input_name"] == "file" and "file:" in errors[0]["details"], errors


@pytest.mark.server
def test_a_file_of_another_kind_fails_naming_the_input_and_the_file(comfy_server, server_inputs):
    save_file({"lora_A.weight": torch.ones(2, 2)}, server_inputs / SUBFOLDER / "lora.depth.safetensors",
              metadata={"note": MARKER})
    fails_naming(comfy_server, load_graph(f"{SUBFOLDER}/lora.depth.safetensors", "recapture_test/depth_files/never"),
                 "file", f"{SUBFOLDER}/lora.depth.safetensors is a safetensors file but not a ReCapture depth file")
    assert MARKER not in comfy_server.log_text()


@pytest.mark.server
def test_links_out_of_input_and_fifos_are_not_offered_nor_read(comfy_server, server_inputs, saved, tmp_path_factory):
    outside = tmp_path_factory.mktemp("depth_outside")
    shutil.copy(saved[1], outside / "secret.depth.safetensors")
    (server_inputs / SUBFOLDER / "link.depth.safetensors").symlink_to(outside / "secret.depth.safetensors")
    fifo = server_inputs / SUBFOLDER / "pipe.depth.safetensors"
    os.mkfifo(fifo)
    files = offered(comfy_server)
    assert saved[2] in files
    assert f"{SUBFOLDER}/link.depth.safetensors" not in files and f"{SUBFOLDER}/pipe.depth.safetensors" not in files
    with FifoWatch(fifo):  # the name is refused before anything opens it
        for name in ("link", "pipe"):
            with pytest.raises(PromptRejected):
                comfy_server.submit(load_graph(f"{SUBFOLDER}/{name}.depth.safetensors", "recapture_test/depth_files/never"))
    assert comfy_server.run(load_graph(saved[2], "recapture_test/depth_files/after"))["status"]["completed"]


@pytest.mark.server
def test_under_meta_batch_loading_the_whole_clip_is_refused(comfy_server, server_inputs, saved):
    """Every chunk would get the whole file (ComfyUI caches the node by its file): refused, saying what to do."""
    shutil.copy(saved[1], server_inputs / SUBFOLDER / "chunked.depth.safetensors")  # a file no cached prompt loaded
    graph = {"m": {"class_type": "VHS_BatchManager", "inputs": {"frames_per_batch": 2, "requeue": 0}},
             "5": {"class_type": "ReCaptureDepthLoad", "inputs": {"file": f"{SUBFOLDER}/chunked.depth.safetensors"}},
             **preview("5", socket=1)}
    with pytest.raises(PromptFailed) as failed:
        comfy_server.run(graph)
    message = str(failed.value)
    assert "DepthLoad cannot run chunk by chunk: the file holds the depth of the whole clip" in message, message
    assert "Run the whole clip in one prompt" in message
