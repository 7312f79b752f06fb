"""Hostile camera files through the real server: a link out of input/ is refused unread (its text shows up in no
response, log line or error), a FIFO ends with a clear error at once and the queue moves on."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from comfy_host import PromptFailed, PromptRejected
from test_camera_files import CAMERAS_TXT, FIFO_TIMEOUT_S, IMAGES_TXT, MARKER, FifoWatch
from test_server_hostile import TRAJECTORY, clip, fails_naming, preview, warp

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def planted(comfy_server, tmp_path_factory):
    """Links out of input/ to files outside every ComfyUI folder, and FIFOs, in the server's input folder."""
    outside = tmp_path_factory.mktemp("outside_comfyui")
    (outside / "secret.txt").write_text(f"{MARKER}\nsecond line of a file that is not the user's to read\n")
    (outside / "cameras.txt").write_text(CAMERAS_TXT)
    (outside / "valid.json").write_text(json.dumps({"camera_angle_x": 1.0, "w": 64, "h": 48, "frames": [
        {"transform_matrix": np.eye(4).tolist()}, {"transform_matrix": np.eye(4).tolist()}]}))
    inputs = comfy_server.base_dir / "input"
    links = inputs / "hostile_links"
    for model, target in (("secret", outside / "secret.txt"), ("valid", outside / "cameras.txt")):
        (links / model).mkdir(parents=True, exist_ok=True)
        (links / model / "images.txt").write_text(IMAGES_TXT)
        (links / model / "cameras.txt").symlink_to(target)
    (links / "valid.json").symlink_to(outside / "valid.json")
    special = inputs / "hostile_special"
    (special / "model").mkdir(parents=True, exist_ok=True)
    (special / "model" / "images.txt").write_text(IMAGES_TXT)
    os.mkfifo(special / "model" / "cameras.txt")
    os.mkfifo(special / "path.json")
    rng = np.random.default_rng(7)
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(inputs / "camera_files_frame.png")
    return {"links": links, "special": special}


def load(file: str) -> dict:
    return {"1": {"class_type": "ReCaptureCameraImport",
                  "inputs": {"file": file, "format": "auto", "reference": "first pose is the source camera",
                             "translation_scale": 1.0, "subject_distance": 1.0}},
            "2": {"class_type": "ReCaptureCameraPreview", "inputs": {"trajectory": ["1", 0], "width": 256, "height": 128}},
            **preview("2")}


PLAIN_WARP = {**clip("1", "camera_files_frame.png"), **TRAJECTORY,
              "3": warp(["1", 0], {"depth_image": ["1", 0], "reading": "disparity, bright = near", "near": 0.5, "far": 20.0}),
              **preview("3")}


def offered(comfy_server) -> list[str]:
    return comfy_server.object_info()["ReCaptureCameraImport"]["input"]["required"]["file"][0]


def test_fifos_and_links_out_of_input_are_not_offered(comfy_server, planted):
    files = offered(comfy_server)
    assert "hostile_links/secret/images.txt" in files  # a regular file; its cameras.txt is refused on load
    assert "hostile_links/valid.json" not in files and "hostile_special/path.json" not in files, files


@pytest.mark.parametrize("model", ["secret", "valid"])
def test_a_cameras_txt_linked_out_of_input_is_refused_unread(comfy_server, planted, model):
    message = fails_naming(comfy_server, load(f"hostile_links/{model}/images.txt"), "file",
                           f"hostile_links/{model}/cameras.txt leads outside the folder", "links may not lead out of it")
    assert MARKER not in message and str(planted["links"]) not in message
    # Neither any answer of the server (the prompt's history, its node list) nor its log holds the planted line.
    assert MARKER not in json.dumps(comfy_server.get_json("/history"))
    assert MARKER not in json.dumps(comfy_server.object_info())
    assert MARKER not in comfy_server.log_text()


def test_a_fifo_named_as_the_file_is_refused_before_anything_runs(comfy_server, planted):
    fifo = planted["special"] / "path.json"
    with FifoWatch(fifo):  # unfixed, the prompt was queued and blocked the worker in open()
        with pytest.raises(PromptRejected) as rejected:
            comfy_server.submit(load("hostile_special/path.json"))
    assert "hostile_special/path.json" in str(rejected.value)
    assert comfy_server.run(PLAIN_WARP, timeout_s=600)["status"]["completed"]


def test_a_fifo_in_a_colmap_folder_ends_with_a_clear_error_and_the_queue_moves_on(comfy_server, planted):
    fifo = planted["special"] / "model" / "cameras.txt"
    with FifoWatch(fifo):  # after FIFO_TIMEOUT_S, unblocks an unfixed worker so the test fails instead of hanging
        blocked_behind = comfy_server.submit(load("hostile_special/model/images.txt"))
        queued_after = comfy_server.submit(PLAIN_WARP)
        with pytest.raises(PromptFailed) as failure:
            comfy_server.wait(blocked_behind, timeout_s=FIFO_TIMEOUT_S)
    message = failure.value.exception_message
    assert failure.value.exception_type.endswith("ReCaptureInputError"), message
    assert message.startswith("ReCapture: input 'file': hostile_special/model/cameras.txt is a FIFO (named pipe), "
                              "not a regular file"), message
    assert comfy_server.wait(queued_after, timeout_s=600)["status"]["completed"]
