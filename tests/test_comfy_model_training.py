"""The masked fine-tuning on ComfyUI's own MODEL (nodes/_comfy_backbone.py), in-process on ComfyUI's SVD object.

The model is ComfyUI's ``SVD_img2vid`` built from a tiny config (tiny_comfy_models.make_svd_model),
with fp16 weights as the loader gives them on a GPU unless a test says otherwise; the conditioning
comes from ComfyUI's own SVD_img2vid_Conditioning, the LoRA goes back on through ComfyUI's own
LoRA loading (what LoraLoaderModelOnly calls).
"""
from __future__ import annotations

import pytest
import torch

from helpers import interrupt_on_call
from comfy_model_support import fingerprint, masked_loss, moving_clip, predictions, times_loaded, with_lora, wrappers_left
from recapture_core.finetune import TrainSettings, train_spatial, train_temporal
from tiny_comfy_models import make_stable_zero123_checkpoint, make_svd_model

F, H, W = 4, 32, 32
FAST = TrainSettings(steps=3, rank=4, alpha=4.0, learning_rate=1e-2, seed=2)




def hole_mask() -> torch.Tensor:
    valid = torch.ones(F, H, W)
    valid[:, :, 20:] = 0.0  # the right third: disoccluded, never rendered
    return valid


def conditioning(clip_vision, vae, first_frame):
    from comfy_extras.nodes_video_model import SVD_img2vid_Conditioning

    with torch.inference_mode():
        positive, _, _ = SVD_img2vid_Conditioning().encode(clip_vision, first_frame[None], vae, W, H, F, 127, 6, 0.0)
    return positive


@pytest.fixture(scope="module")
def svd_fp16():
    return make_svd_model(seed=0, dtype=torch.float16)


def test_temporal_training_lowers_the_masked_loss_in_fp16(backbone_module, svd_fp16, clip_vision):
    patcher, vae = svd_fp16
    anchor, valid = moving_clip(F, H, W), hole_mask()
    positive = conditioning(clip_vision, vae, anchor[0])
    training = backbone_module.ComfyModelTraining(patcher, vae, positive)
    settings = TrainSettings(steps=60, rank=16, alpha=16.0, learning_rate=1e-2, seed=1)
    with torch.inference_mode(False):
        state = train_temporal(training, anchor, valid, settings)
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in state.values())
    assert all(torch.isfinite(torch.tensor(training.losses)))
    assert any("time_stack" in key for key in state) and not any(".transformer_blocks." in key for key in state)
    before = masked_loss(backbone_module, patcher, vae, positive, anchor, valid)
    after = masked_loss(backbone_module, with_lora(patcher, state), vae, positive, anchor, valid)
    # The fixed-noise yardstick is deterministic; the tiny model's temporal attention has little reach (3-4 %).
    assert after < 0.98 * before, (before, after)
    assert next(patcher.model.diffusion_model.parameters()).dtype == torch.float16


def test_hole_pixels_have_exactly_zero_effect(backbone_module, svd_fp16, clip_vision):
    patcher, vae = svd_fp16
    anchor, valid = moving_clip(F, H, W), hole_mask()
    scrambled = anchor.clone()
    scrambled[valid < 1] = torch.rand(int((valid < 1).sum()), 3, generator=torch.Generator().manual_seed(9))
    positive = conditioning(clip_vision, vae, anchor[0])
    states = []
    for video in (anchor, scrambled):
        with torch.inference_mode(False):
            states.append(train_temporal(backbone_module.ComfyModelTraining(patcher, vae, positive), video, valid, FAST))
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    # ...while a change in a valid pixel does change them (the comparison can fail).
    changed = anchor.clone()
    changed[:, :8, :8] = 1.0 - changed[:, :8, :8]
    with torch.inference_mode(False):
        other = train_temporal(backbone_module.ComfyModelTraining(patcher, vae, positive), changed, valid, FAST)
    assert not all(torch.equal(states[0][k], other[k]) for k in other)


def test_the_spatial_path_keeps_frames_independent(backbone_module, svd_fp16, clip_vision):
    patcher, vae = svd_fp16
    positive = conditioning(clip_vision, vae, moving_clip(F, H, W)[0])
    latents = torch.randn(F, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(0))
    other = latents.clone()
    other[1:] = torch.randn(F - 1, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(1))
    spatial = [predictions(backbone_module, patcher, positive, x, spatial=True)[1][0] for x in (latents, other)]
    assert torch.equal(spatial[0][0], spatial[1][0])
    video = [predictions(backbone_module, patcher, positive, x)[1][0] for x in (latents, other)]
    assert not torch.allclose(video[0][0], video[1][0])  # with the temporal layers on, frame 0 sees the others


def test_spatial_lora_trains_spatial_attention_and_stays_under_the_temporal_one(backbone_module, svd_fp16, clip_vision):
    patcher, vae = svd_fp16
    frames = moving_clip(F, H, W, seed=7)
    positive = conditioning(clip_vision, vae, frames[0])
    with torch.inference_mode(False):
        spatial = train_spatial(backbone_module.ComfyModelTraining(patcher, vae, positive), frames, FAST)
    assert spatial and all(".transformer_blocks." in k and ".attn1." in k for k in spatial)
    with_spatial = with_lora(patcher, spatial)
    with torch.inference_mode(False):
        temporal = train_temporal(backbone_module.ComfyModelTraining(with_spatial, vae, positive), frames, torch.ones(F, H, W), FAST)
    # The frozen spatial LoRA was underneath: training on the base gives other weights.
    with torch.inference_mode(False):
        alone = train_temporal(backbone_module.ComfyModelTraining(patcher, vae, positive), frames, torch.ones(F, H, W), FAST)
    assert temporal.keys() == alone.keys()
    assert not all(torch.equal(temporal[k], alone[k]) for k in temporal)
    assert len(with_spatial.patches) == len(spatial) // 3


def test_every_key_loads_through_comfyuis_lora_code_and_reproduces_the_trained_model(backbone_module, clip_vision):
    """The saved state, applied as LoraLoaderModelOnly applies it, predicts what the training-time wrappers did."""
    import comfy.lora
    from comfy.weight_adapter.lora import LoRAAdapter

    patcher, vae = make_svd_model(seed=3, dtype=torch.float32)
    frames = moving_clip(F, H, W)
    positive = conditioning(clip_vision, vae, frames[0])
    with torch.inference_mode(False):
        state = train_temporal(backbone_module.ComfyModelTraining(patcher, vae, positive), frames, hole_mask(), FAST)
    key_map = comfy.lora.model_lora_keys_unet(patcher.model, {})
    patches = comfy.lora.load_lora(state, key_map, log_missing=False)
    assert len(patches) == len(state) // 3 == 18  # every module of the 3 tiny temporal transformers: attn1's 4, attn2's to_v, to_out
    wrapped = patcher.clone()
    for key in patches:
        module = key[: -len(".weight")]
        adapter = LoRAAdapter.load(module, state, float(state[f"{module}.alpha"]), None)
        wrapped.add_weight_wrapper(key, adapter.to_train())
    latents = torch.randn(F, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(2))
    via_file = predictions(backbone_module, with_lora(patcher, state), positive, latents)
    via_wrappers = predictions(backbone_module, wrapped, positive, latents)
    base = predictions(backbone_module, patcher, positive, latents)
    for (a, _, _), (b, _, _), (c, _, _) in zip(via_file, via_wrappers, base):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
        assert not torch.allclose(a, c, atol=1e-4)


def test_the_model_is_left_as_it_was_after_success_error_and_interrupt(backbone_module, svd_fp16, clip_vision):
    patcher, vae = svd_fp16
    frames = moving_clip(F, H, W)
    positive = conditioning(clip_vision, vae, frames[0])
    before = fingerprint(patcher)
    flags = [p.requires_grad for p in patcher.model.diffusion_model.parameters()]
    runs = [lambda t: train_temporal(t, frames, hole_mask(), FAST),
            lambda t: train_spatial(t, frames, TrainSettings(steps=2, targets="nothing.matches")),
            lambda t: train_spatial(t, frames, TrainSettings(steps=5, rank=4), check_interrupt=interrupt_on_call(2))]
    for run in runs:
        try:
            with torch.inference_mode(False):
                run(backbone_module.ComfyModelTraining(patcher, vae, positive))
        except Exception as err:  # the pack's error class lives under the pack's import name here
            assert type(err).__name__ in ("ReCaptureInputError", "Interrupted"), err
        assert fingerprint(patcher) == before
        assert wrappers_left(patcher) == 0
        assert times_loaded(patcher) <= 1
        assert [p.requires_grad for p in patcher.model.diffusion_model.parameters()] == flags


def test_a_frame_size_the_model_cannot_take_is_refused_before_training(backbone_module, svd_fp16, clip_vision):
    patcher, vae = svd_fp16
    positive = conditioning(clip_vision, vae, moving_clip(F, H, W)[0])
    training = backbone_module.ComfyModelTraining(patcher, vae, positive)
    with pytest.raises(Exception, match=r"anchor.*30x30.*multiples of 8.*32x32"):
        train_temporal(training, torch.rand(F, 30, 30, 3), torch.ones(F, 30, 30), FAST)
    assert training.losses == []


def test_a_model_the_trainers_cannot_run_is_named(backbone_module, tmp_path, clip_vision):
    import comfy.sd

    path = make_stable_zero123_checkpoint(tmp_path / "zero123.safetensors")
    with torch.inference_mode():
        model, _, vae, _ = comfy.sd.load_checkpoint_guess_config(str(path), output_vae=True, output_clip=False)
    with pytest.raises(Exception, match=r"model.*is a (SD_X4Upscaler|BaseModel|\w+) model.*Stable Video Diffusion"):
        backbone_module.ComfyModelTraining(model, vae, [[torch.zeros(1, 1, 768), {}]])
