"""The masked fine-tuning on Wan 2.1 through ComfyUI's own loaders, in-process (tiny random weights).

The DiT and its VAE are tiny files read by ComfyUI's own loading code (``comfy.sd.load_diffusion_model``,
what Load Diffusion Model calls, and ``comfy.sd.VAE``, what Load VAE calls); the weights come in the
dtypes users load: fp16 (the released 1.3B file) and fp8 (Load Diffusion Model's weight_dtype). The
text conditioning has the UMT5-XXL encoder's shape (tiny_comfy_models.wan_text_conditioning).
"""
from __future__ import annotations

import math

import pytest
import torch

from comfy_model_support import fingerprint, masked_loss, moving_clip, predictions, times_loaded, with_lora, wrappers_left
from helpers import interrupt_on_call
from recapture_core.finetune import TrainSettings, train_spatial, train_temporal
from tiny_comfy_models import make_wan21_t2v, make_wan21_vae, wan_text_conditioning

F, H, W = 9, 32, 32  # Wan's VAE takes 4k+1 frames; sides in multiples of 16
FAST = TrainSettings(steps=3, rank=4, alpha=4.0, learning_rate=1e-2, seed=2)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wan")
    return make_wan21_t2v(folder / "wan2.1_t2v_tiny_fp16.safetensors"), make_wan21_vae(folder / "wan_2.1_vae_tiny.safetensors")


def load(files, weight_dtype=None):
    """Through ComfyUI's loading code, under inference mode as every node runs."""
    import comfy.sd
    import comfy.utils

    options = {} if weight_dtype is None else {"dtype": weight_dtype}
    with torch.inference_mode():
        model = comfy.sd.load_diffusion_model(str(files[0]), model_options=options)
        vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(files[1])))
    return model, vae


@pytest.fixture(scope="module")
def wan_fp16(files):
    return load(files, torch.float16)




def hole_mask(frames=F) -> torch.Tensor:
    valid = torch.ones(frames, H, W)
    valid[:, :, 20:] = 0.0
    return valid


def q_weight(model) -> torch.Tensor:
    return model.model.diffusion_model.blocks[0].self_attn.q.weight


POSITIVE = wan_text_conditioning("a box gliding in front of a wall")


def test_the_models_load_as_wan_with_fp16_weights(backbone_module, wan_fp16):
    model, vae = wan_fp16
    assert type(model.model).__name__ == "WAN21"
    assert q_weight(model).dtype == torch.float16
    training = backbone_module.ComfyModelTraining(model, vae, POSITIVE)
    assert (training.spatial_factor, training.temporal_factor, training.size_multiple()) == (8, 4, 16)
    assert training.family is backbone_module.WAN


def test_temporal_training_lowers_the_masked_flow_loss(backbone_module, wan_fp16):
    model, vae = wan_fp16
    anchor, valid = moving_clip(F, H, W), hole_mask()
    training = backbone_module.ComfyModelTraining(model, vae, POSITIVE)
    with torch.inference_mode(False):
        state = train_temporal(training, anchor, valid, TrainSettings(steps=40, rank=8, alpha=8.0, learning_rate=1e-2, seed=1))
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in state.values())
    assert all(math.isfinite(v) for v in training.losses)
    assert {k.split(".")[4] for k in state if k.endswith("lora_up.weight")} == {"q", "k", "v", "o"}
    sigmas = (0.3, 0.6, 0.9)
    before = masked_loss(backbone_module, model, vae, POSITIVE, anchor, valid, sigmas)
    after = masked_loss(backbone_module, with_lora(model, state), vae, POSITIVE, anchor, valid, sigmas)
    assert after < 0.85 * before, (before, after)
    assert q_weight(model).dtype == torch.float16


def test_hole_pixels_have_exactly_zero_effect_through_the_temporal_compression(backbone_module, wan_fp16):
    model, vae = wan_fp16
    anchor, valid = moving_clip(F, H, W), hole_mask()
    # A hole in frame 3 only: its latent frame (frames 1-4) is masked where the hole lies, in all 4 frames.
    valid[3, :8, :8] = 0.0
    scrambled = anchor.clone()
    scrambled[valid < 1] = torch.rand(int((valid < 1).sum()), 3, generator=torch.Generator().manual_seed(9))
    states = []
    for video in (anchor, scrambled):
        with torch.inference_mode(False):
            states.append(train_temporal(backbone_module.ComfyModelTraining(model, vae, POSITIVE), video, valid, FAST))
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_single_frame_clips_never_see_each_other(backbone_module, wan_fp16):
    model, _ = wan_fp16
    latents = torch.randn(3, 16, H // 8, W // 8, generator=torch.Generator().manual_seed(0))
    other = latents.clone()
    other[1:] = torch.randn(2, 16, H // 8, W // 8, generator=torch.Generator().manual_seed(1))
    single = [predictions(backbone_module, model, POSITIVE, x, sigmas=(0.5,), single_frames=True)[0][0] for x in (latents, other)]
    assert torch.equal(single[0][0], single[1][0])
    clip = [predictions(backbone_module, model, POSITIVE, x, sigmas=(0.5,))[0][0] for x in (latents, other)]
    assert not torch.allclose(clip[0][0], clip[1][0])  # as one clip, the joint attention mixes the frames


def test_spatial_then_temporal_and_the_model_is_left_as_it_was(backbone_module, wan_fp16):
    model, vae = wan_fp16
    frames = moving_clip(F, H, W)
    before = fingerprint(model)
    with torch.inference_mode(False):
        spatial = train_spatial(backbone_module.ComfyModelTraining(model, vae, POSITIVE), frames[:3], FAST)  # any count
    with_spatial = with_lora(model, spatial)
    with torch.inference_mode(False):
        temporal = train_temporal(backbone_module.ComfyModelTraining(with_spatial, vae, POSITIVE), frames, hole_mask(), FAST)
    assert spatial.keys() == temporal.keys()  # Wan: both in the joint self-attention
    for run in (lambda t: train_spatial(t, frames, TrainSettings(steps=5, rank=4), check_interrupt=interrupt_on_call(2)),
                lambda t: train_temporal(t, frames, hole_mask(), TrainSettings(steps=1, targets="nothing"))):
        with pytest.raises(Exception) as failure:
            with torch.inference_mode(False):
                run(backbone_module.ComfyModelTraining(model, vae, POSITIVE))
        assert type(failure.value).__name__ in ("Interrupted", "ReCaptureInputError")
    assert fingerprint(model) == before and wrappers_left(model) == 0 and times_loaded(model) <= 1


@pytest.mark.parametrize("frames, height, width, message", [
    (9, 40, 32, r"anchor.*32x40.*multiples of 16.*32x48|anchor.*32x40.*multiples of 16"),
])
def test_wans_frame_rules_are_checked_before_training(backbone_module, wan_fp16, frames, height, width, message):
    model, vae = wan_fp16
    training = backbone_module.ComfyModelTraining(model, vae, POSITIVE)
    with pytest.raises(Exception, match=message):
        train_temporal(training, torch.rand(frames, height, width, 3), torch.ones(frames, height, width), FAST)
    assert training.losses == []


def test_fp8_weights_train_finite_float32_loras(backbone_module, files):
    """Load Diffusion Model's weight_dtype fp8_e4m3fn, what many Wan users run."""
    model, vae = load(files, torch.float8_e4m3fn)
    assert q_weight(model).dtype == torch.float8_e4m3fn
    training = backbone_module.ComfyModelTraining(model, vae, POSITIVE)
    with torch.inference_mode(False):
        state = train_temporal(training, moving_clip(F, H, W), hole_mask(), FAST)
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in state.values())
    assert all(math.isfinite(v) for v in training.losses)


def test_every_key_loads_through_comfyuis_lora_code(backbone_module, wan_fp16):
    import comfy.lora

    model, vae = wan_fp16
    with torch.inference_mode(False):
        state = train_temporal(backbone_module.ComfyModelTraining(model, vae, POSITIVE), moving_clip(F, H, W), hole_mask(), FAST)
    patches = comfy.lora.load_lora(state, comfy.lora.model_lora_keys_unet(model.model, {}), log_missing=False)
    assert len(patches) == len(state) // 3 == 2 * 4  # 2 blocks x q, k, v, o


def test_image_to_video_wan_trains_with_the_first_anchor_frame_as_its_image(backbone_module, files, tmp_path):
    """Wan 2.2 I2V A14B's layout (the first-frame latent and mask as extra input channels): the temporal LoRA
    trains with WanImageToVideo's conditioning (the first anchor frame), the spatial one on single frames with
    the text alone, and the LoRAs lower the loss of the conditioned clip."""
    import comfy.sd
    from comfy_extras.nodes_wan import WanImageToVideo

    path = make_wan21_t2v(tmp_path / "wan2.2_i2v_tiny.safetensors", image_to_video=True)
    with torch.inference_mode():
        model = comfy.sd.load_diffusion_model(str(path), model_options={"dtype": torch.float16})
    _, vae = load(files)
    assert model.model.model_config.unet_config["in_dim"] == 36
    anchor, valid = moving_clip(F, H, W), hole_mask()
    with torch.inference_mode():
        image_positive = WanImageToVideo.execute(POSITIVE, POSITIVE, vae, W, H, F, 1, start_image=anchor[:1]).result[0]
    training = backbone_module.ComfyModelTraining(model, vae, image_positive)
    with torch.inference_mode(False):
        spatial = train_spatial(backbone_module.ComfyModelTraining(model, vae, POSITIVE), anchor[:4], FAST)
        temporal = train_temporal(training, anchor, valid, TrainSettings(steps=40, rank=8, alpha=8.0, learning_rate=1e-2, seed=1))
    assert spatial and all(torch.isfinite(t).all() for t in temporal.values())
    sigmas = (0.3, 0.6, 0.9)
    before = masked_loss(backbone_module, model, vae, image_positive, anchor, valid, sigmas)
    after = masked_loss(backbone_module, with_lora(model, temporal), vae, image_positive, anchor, valid, sigmas)
    assert after < 0.9 * before, (before, after)
