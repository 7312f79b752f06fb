"""Training and sampling in the dtypes the loaders default to (fp16, bf16) on the CPU: finite, learning, exact restore."""
from __future__ import annotations

import pytest
import torch

from recapture_core.errors import ReCaptureInputError
from recapture_core.svd.backbone import load_diffusers_svd
from recapture_core.svd.sample import SampleSettings, dual_lora_sample
from recapture_core.svd.train import TrainSettings, train_spatial_lora, train_temporal_lora
from svd_support import clip_loss, state_fingerprint
from test_svd_training import smooth_clip
from tiny_models import make_svd_folder

SETTINGS = TrainSettings(steps=20, rank=4, alpha=4.0, learning_rate=1e-2, seed=1, frames_per_step=4)


@pytest.fixture(scope="module")
def svd_folder(tmp_path_factory):
    return make_svd_folder(tmp_path_factory.mktemp("diffusers") / "tiny-svd")


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_half_precision_weights_train_finite_float32_loras_that_learn(svd_folder, dtype):
    backbone = load_diffusers_svd(svd_folder, dtype)  # the loaders' default is fp16
    before_state = state_fingerprint(backbone.unet)
    clip = smooth_clip(frames=4)
    spatial = train_spatial_lora(backbone, clip, SETTINGS)
    valid = torch.ones(4, 32, 32)
    valid[:, :, 24:] = 0.0
    temporal = train_temporal_lora(backbone, clip, valid, SETTINGS, spatial)
    for lora in (spatial, temporal):
        assert all(torch.isfinite(torch.tensor(lora.settings["losses"])))
        assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in lora.state_dict.values())
        assert any(t.abs().sum() > 0 for k, t in lora.state_dict.items() if "lora_B" in k)  # it moved off its zero init
    # The shared backbone comes back in its own dtype, bit for bit.
    assert next(backbone.unet.parameters()).dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    assert state_fingerprint(backbone.unet) == before_state
    # It learnt: the spatial LoRA lowers the clip's loss as it does in fp32.
    assert clip_loss(backbone, clip, spatial, temporal_off=True) < clip_loss(backbone, clip, temporal_off=True)
    frames = dual_lora_sample(backbone, clip, temporal, spatial, 1.0, 1.0, SampleSettings(steps=2, decode_chunk_size=4))
    assert torch.isfinite(frames).all() and frames.shape == clip.shape


def test_a_loss_that_goes_non_finite_stops_training_with_a_clear_error(svd_folder):
    backbone = load_diffusers_svd(svd_folder, "fp32")
    with torch.no_grad():
        backbone.unet.conv_out.bias[0] = float("nan")  # a damaged checkpoint
    with pytest.raises(ReCaptureInputError, match=r"training diverged: the loss became nan at step 1 of 20"):
        train_spatial_lora(backbone, smooth_clip(frames=4), SETTINGS)
