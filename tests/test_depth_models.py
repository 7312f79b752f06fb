"""Depth models through the real loading code, on tiny random models of each family."""
from __future__ import annotations

import json

import pytest
import torch

from recapture_core.depth_models import estimate_depth, inspect_folder, load_depth_model
from recapture_core.errors import ReCaptureInputError
from tiny_models import DEPTH_FAMILIES, make_depth_model

EXPECTED_KIND = {"depth_anything": "disparity", "dpt": "disparity", "zoedepth": "metric"}


@pytest.fixture(scope="module")
def depth_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models") / "depth"
    for family in DEPTH_FAMILIES:
        make_depth_model(root / f"tiny-{family}", family)
    return root


@pytest.mark.parametrize("family", DEPTH_FAMILIES)
def test_each_family_loads_offline_and_estimates_depth_at_the_video_size(depth_dir, family):
    model = load_depth_model(depth_dir / f"tiny-{family}")
    assert model.family == family and model.kind == EXPECTED_KIND[family]
    frames = torch.rand(5, 30, 44, 3, generator=torch.Generator().manual_seed(0))
    calls = []
    depth = estimate_depth(model, frames, batch_size=2, progress=lambda done, total: calls.append((done, total)))
    assert depth.values.shape == (5, 30, 44) and depth.kind == EXPECTED_KIND[family]
    assert torch.isfinite(depth.values).all() and (depth.as_depth() > 0).all()
    assert calls == [(2, 5), (4, 5), (5, 5)]
    # Batching does not change results: frame 4 alone equals frame 4 within a batch.
    alone = estimate_depth(model, frames[4:5], batch_size=1)
    torch.testing.assert_close(alone.values[0], depth.values[4], rtol=1e-4, atol=1e-5)


def test_metric_depth_anything_is_read_as_metric(depth_dir, tmp_path):
    folder = make_depth_model(tmp_path / "metric-da", "depth_anything")
    config = json.loads((folder / "config.json").read_text())
    config["depth_estimation_type"] = "metric"
    (folder / "config.json").write_text(json.dumps(config))
    assert inspect_folder(folder) == ("depth_anything", "metric")


def test_interrupt_stops_between_batches(depth_dir):
    model = load_depth_model(depth_dir / "tiny-dpt")
    seen = []

    def interrupt():
        if len(seen) == 1:
            raise KeyboardInterrupt
        seen.append(1)

    with pytest.raises(KeyboardInterrupt):
        estimate_depth(model, torch.rand(6, 16, 16, 3), batch_size=2, check_interrupt=interrupt)


@pytest.mark.parametrize("setup, needle", [
    (lambda p: None, "is not a folder"),
    (lambda p: p.mkdir(), "lacks config.json, preprocessor_config.json, model.safetensors"),
    (lambda p: (p.mkdir(), (p / "config.json").write_text('{"model_type": "bert"}'),
                (p / "preprocessor_config.json").write_text("{}"), (p / "model.safetensors").write_bytes(b"")),
     "is a 'bert' model"),
])
def test_missing_or_wrong_folders_say_where_to_put_what(tmp_path, setup, needle):
    folder = tmp_path / "depth-model"
    setup(folder)
    with pytest.raises(ReCaptureInputError) as err:
        load_depth_model(folder)
    assert needle in str(err.value) and "config.json, model.safetensors, preprocessor_config.json" in str(err.value)
    assert err.value.hint == "depth_models"  # ComfyUI's nodes add the folder (test_server_hostile)
