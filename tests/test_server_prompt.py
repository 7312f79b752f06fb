"""Graphs with pack nodes run through POST /prompt on the real server, and bad input fails clearly."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from comfy_host import PromptFailed

pytestmark = pytest.mark.server


def overlay_graph(mask_width: int, prefix: str) -> dict:
    # EmptyImage's color is 0xRRGGBB; SolidMask value 1.0 masks every pixel.
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 24, "batch_size": 2, "color": 0x336699}},
        "2": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": mask_width, "height": 24}},
        "3": {"class_type": "ReCaptureMaskOverlay",
              "inputs": {"frames": ["1", 0], "mask": ["2", 0], "color": "red", "opacity": 0.5}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


def test_a_pack_node_runs_to_completion_and_writes_the_expected_pixels(comfy_server):
    entry = comfy_server.run(overlay_graph(32, "recapture_test/overlay"))
    files = comfy_server.output_files(entry, "4")
    assert len(files) == 2
    for path in files:
        pixels = np.asarray(Image.open(path).convert("RGB")).astype(np.float64)
        assert pixels.shape == (24, 32, 3)
        # Half-way between (0x33, 0x66, 0x99) and pure red, then 8-bit quantised by SaveImage.
        source = np.array([0x33, 0x66, 0x99]) / 255.0
        expected = (source * 0.5 + np.array([1.0, 0.0, 0.0]) * 0.5) * 255.0
        # 1 level of slack: SaveImage truncates float32 values, which may sit a hair below an integer.
        assert np.abs(pixels[0, 0] - expected).max() <= 1.0, (pixels[0, 0], expected)
        assert np.all(pixels == pixels[0, 0])


def test_bad_input_comes_back_with_the_packs_message(comfy_server):
    with pytest.raises(PromptFailed) as failure:
        comfy_server.run(overlay_graph(16, "recapture_test/never_written"))
    error = failure.value
    assert error.node_type == "ReCaptureMaskOverlay"
    assert error.exception_type.endswith("ReCaptureInputError")
    assert error.exception_message == (
        "ReCapture: input 'mask': is 16x24 (width x height) but frames is 32x24. "
        "Resize the mask or frames so both have the same size."
    )
