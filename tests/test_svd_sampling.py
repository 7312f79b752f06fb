"""DualLoRASample and SDEditRefine on the tiny SVD (real loader, random weights)."""
from __future__ import annotations

import pytest
import torch

from recapture_core.errors import ReCaptureInputError
from recapture_core.svd.backbone import load_diffusers_svd
from recapture_core.svd.sample import (SampleSettings, blend_windows, dual_lora_sample, sdedit_refine, window_starts,
                                       window_weights)
from recapture_core.svd.train import TrainSettings, train_spatial_lora, train_temporal_lora
from helpers import Interrupted, interrupt_on_call
from svd_support import state_fingerprint
from tiny_models import make_svd_folder

FEW = SampleSettings(steps=3, seed=7)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return load_diffusers_svd(make_svd_folder(tmp_path_factory.mktemp("diffusers") / "tiny-svd"), "fp32")


@pytest.fixture(scope="module")
def anchor():
    return torch.rand(6, 32, 32, 3, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def loras(backbone, anchor):
    fast = TrainSettings(steps=3, rank=4, alpha=4.0, learning_rate=5e-2, seed=1)
    spatial = train_spatial_lora(backbone, anchor, fast)
    temporal = train_temporal_lora(backbone, anchor, torch.ones(6, 32, 32), fast, spatial_lora=spatial)
    return spatial, temporal


def test_shape_range_and_seed_determinism(backbone, anchor):
    a = dual_lora_sample(backbone, anchor, settings=FEW)
    b = dual_lora_sample(backbone, anchor, settings=FEW)
    c = dual_lora_sample(backbone, anchor, settings=SampleSettings(steps=3, seed=8))
    assert a.shape == (6, 32, 32, 3) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sampling_makes_every_tensor_on_the_device_it_names(backbone, anchor):
    # No GPU in CI: under a meta default device, a tensor made without naming its device lands on
    # meta and fails against the CPU run (on ComfyUI's GPU it would be a CPU/CUDA mismatch).
    # Without LoRAs: peft builds its adapter layers with the default device, which meta would empty.
    windowed = SampleSettings(steps=2, seed=3, window=4, overlap=2)
    reference = dual_lora_sample(backbone, anchor, settings=windowed)
    with torch.device("meta"):
        result = dual_lora_sample(backbone, anchor, settings=windowed, device="cpu")
    assert torch.equal(result, reference)


def test_strength_zero_equals_no_lora_and_a_trained_lora_changes_the_output(backbone, anchor, loras):
    spatial, temporal = loras
    plain = dual_lora_sample(backbone, anchor, settings=FEW)
    zero = dual_lora_sample(backbone, anchor, temporal, spatial, 0.0, 0.0, FEW)
    full = dual_lora_sample(backbone, anchor, temporal, spatial, 1.0, 1.0, FEW)
    assert torch.equal(plain, zero)
    assert (full - plain).abs().max() > 1e-4


def test_sdedit_strength_zero_is_the_vae_round_trip_and_more_strength_departs_further(backbone, anchor, loras):
    spatial, _ = loras
    from recapture_core.svd.conditioning import encode_latents, to_model_range
    from recapture_core.svd.sample import decode

    with torch.no_grad():
        round_trip = decode(backbone, encode_latents(backbone, to_model_range(anchor))[None], 8)
        clean = encode_latents(backbone, to_model_range(anchor))[None]
    assert torch.equal(sdedit_refine(backbone, anchor, spatial, 1.0, SampleSettings(steps=10, strength=0.0)), round_trip)
    # Departure from the input, measured on the latents (a random-weight VAE decoder saturates pixels).
    from recapture_core.svd.sample import generate

    distance = [float((generate(backbone, anchor, [], SampleSettings(steps=10, seed=3, strength=s), output_latents=True)
                       - clean).abs().mean()) for s in (0.0, 0.2, 0.4, 0.6, 1.0)]
    assert distance[0] == 0.0 and all(a < b for a, b in zip(distance, distance[1:])), distance


def test_windows_cover_long_videos_and_blend_convexly():
    starts = window_starts(40, 14, 4)
    assert starts[0] == 0 and starts[-1] == 26 and all(b - a <= 10 for a, b in zip(starts, starts[1:]))
    weights = window_weights(40, 14, starts)
    torch.testing.assert_close(weights.sum(0), torch.ones(40, dtype=torch.float64))
    assert (weights >= 0).all()
    outputs = [torch.full((1, 14, 2), float(k + 1)) for k in range(len(starts))]
    blended = blend_windows(outputs, starts, weights)
    for frame in range(40):
        covering = [k for k, s in enumerate(starts) if s <= frame < s + 14]
        values = [k + 1.0 for k in covering]
        assert min(values) <= float(blended[0, frame, 0]) <= max(values)
        if len(covering) == 2:  # inside an overlap: strictly between the two windows' outputs
            assert min(values) < float(blended[0, frame, 0]) < max(values)


def test_a_long_anchor_on_a_14_frame_backbone_yields_every_frame(backbone):
    long_anchor = torch.rand(40, 16, 16, 3, generator=torch.Generator().manual_seed(2))
    calls = []
    out = dual_lora_sample(backbone, long_anchor, settings=SampleSettings(steps=1, seed=1),
                           progress=lambda done, total: calls.append((done, total)))
    assert out.shape == (40, 16, 16, 3)
    assert calls[-1] == (4, 4)  # 1 step x 4 windows


def test_backbone_is_unchanged_after_sampling_and_after_an_interrupt(backbone, anchor, loras):
    spatial, temporal = loras
    before = state_fingerprint(backbone.unet)
    dual_lora_sample(backbone, anchor, temporal, spatial, settings=FEW)
    sdedit_refine(backbone, anchor, spatial, settings=SampleSettings(steps=3, strength=0.5))
    assert state_fingerprint(backbone.unet) == before

    with pytest.raises(Interrupted):
        dual_lora_sample(backbone, anchor, temporal, spatial, settings=FEW, check_interrupt=interrupt_on_call(2))
    assert state_fingerprint(backbone.unet) == before and not hasattr(backbone.unet, "peft_config")


def test_bad_sampling_input(backbone, anchor, loras, tmp_path):
    spatial, temporal = loras
    with pytest.raises(ReCaptureInputError, match="multiples of 4"):
        dual_lora_sample(backbone, torch.rand(4, 30, 32, 3), settings=FEW)
    with pytest.raises(ReCaptureInputError, match="empty"):
        dual_lora_sample(backbone, torch.rand(0, 32, 32, 3), settings=FEW)
    with pytest.raises(ReCaptureInputError, match="multiples of 4") as err:  # SDEditRefine's input is 'frames'
        sdedit_refine(backbone, torch.rand(4, 30, 32, 3), settings=FEW)
    assert err.value.input_name == "frames"
    with pytest.raises(ReCaptureInputError, match="is a spatial LoRA where a temporal one belongs"):
        dual_lora_sample(backbone, anchor, temporal_lora=spatial, settings=FEW)
    other = load_diffusers_svd(make_svd_folder(tmp_path / "other", num_frames=25), "fp32")
    with pytest.raises(ReCaptureInputError, match="trained for another backbone"):
        dual_lora_sample(other, anchor, temporal, settings=FEW)
