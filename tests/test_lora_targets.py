"""The default LoRA targets can all learn, on both backbone paths (tiny models; tests/fullsize checks the released sizes).

A LoRA's zero-initialised matrix (peft's ``lora_B``, ComfyUI's ``lora_down``) moves off zero at the first
optimiser step exactly when its module receives a gradient. The rule: after a few steps none is still zero.
The temporal blocks' cross-attention attends to one token (the image embedding), so its ``to_q``/``to_k``
never get one; they are no longer targeted, and LoRAs trained with them still load.
"""
from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch

from comfy_model_support import moving_clip
from recapture_core.finetune import TrainSettings, train_spatial, train_temporal
from recapture_core.svd.backbone import load_diffusers_svd
from recapture_core.svd.lora import AdapterSpec, adapters_attached
from recapture_core.svd.lora_files import load_lora, save_lora
from recapture_core.svd.train import train_spatial_lora, train_temporal_lora
from tiny_comfy_models import make_svd_model, make_wan21_t2v, make_wan21_vae, wan_text_conditioning
from tiny_models import make_svd_folder

STEPS = TrainSettings(steps=2, rank=4, alpha=4.0, learning_rate=1e-3, seed=5)
#: The temporal targets before single-token cross-attention was left out (diffusers and ComfyUI names).
OLD_TEMPORAL = r".*temporal_transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)"
OLD_COMFY_TEMPORAL = r".*\.time_stack\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)"
SINGLE_TOKEN = re.compile(r".*\.attn2\.(to_q|to_k)$")


def still_zero(state: dict, zero_part: str) -> set[str]:
    """Modules whose zero-initialised LoRA matrix (key suffix ``zero_part``) is still exactly zero."""
    return {key[: -len(zero_part)] for key, tensor in state.items() if key.endswith(zero_part) and not tensor.any()}


def modules(state: dict, zero_part: str) -> set[str]:
    return {key[: -len(zero_part)] for key in state if key.endswith(zero_part)}


# --- the pack's diffusers SVD ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def diffusers_svd(tmp_path_factory):
    return load_diffusers_svd(make_svd_folder(tmp_path_factory.mktemp("diffusers") / "tiny-svd"), "fp32")


def test_every_default_target_of_the_diffusers_loras_learns(diffusers_svd):
    clip = moving_clip(4, 32, 32)
    spatial = train_spatial_lora(diffusers_svd, clip, STEPS)
    temporal = train_temporal_lora(diffusers_svd, clip, torch.ones(4, 32, 32), STEPS)
    for lora in (spatial, temporal):
        assert modules(lora.state_dict, ".lora_B.weight") and not still_zero(lora.state_dict, ".lora_B.weight")
    assert not any(SINGLE_TOKEN.fullmatch(m) for m in modules(temporal.state_dict, ".lora_B.weight"))
    assert any(".attn2.to_v" in m for m in modules(temporal.state_dict, ".lora_B.weight"))


def test_the_temporal_cross_attentions_q_and_k_have_no_effect_so_they_are_left_out(diffusers_svd):
    """Why they cannot learn: the cross-attention attends to one token, so any q and k give the same output
    (their gradient is zero up to rounding, which Adam would turn into steps of noise)."""
    from recapture_core.svd.conditioning import denoise

    unet = diffusers_svd.unet
    generator = torch.Generator().manual_seed(0)
    inputs = (torch.randn(1, 4, 4, 8, 8, generator=generator), torch.tensor([1.0]), torch.randn(1, 4, 8, 8, generator=generator),
              torch.randn(1, 1, unet.config.cross_attention_dim, generator=generator), torch.tensor([[6.0, 127.0, 0.02]]))
    single_token = [m for n, m in unet.named_modules() if re.fullmatch(r".*temporal_transformer_blocks\.\d+\.attn2\.(to_q|to_k)", n)]
    assert single_token
    saved = [m.weight.detach().clone() for m in single_token]
    with torch.no_grad():
        before = denoise(diffusers_svd, *inputs)
        try:
            for module in single_token:
                module.weight.normal_(generator=generator)
            after = denoise(diffusers_svd, *inputs)
        finally:
            for module, weight in zip(single_token, saved):
                module.weight.copy_(weight)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


def test_a_diffusers_lora_trained_with_the_old_targets_still_loads(diffusers_svd, tmp_path):
    clip = moving_clip(4, 32, 32)
    old = train_temporal_lora(diffusers_svd, clip, torch.ones(4, 32, 32), replace(STEPS, targets=OLD_TEMPORAL))
    assert any(SINGLE_TOKEN.fullmatch(m) for m in modules(old.state_dict, ".lora_B.weight"))
    save_lora(old, tmp_path / "old_temporal.safetensors")
    loaded = load_lora(tmp_path / "old_temporal.safetensors")
    loaded.check_use(diffusers_svd, "temporal", "temporal_lora")
    with adapters_attached(diffusers_svd.unet, [AdapterSpec.from_lora("rc_old", loaded)]):
        pass  # every key found its module (an unmatched one raises)


# --- ComfyUI's own MODEL ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def comfy_svd(clip_vision):
    from comfy_extras.nodes_video_model import SVD_img2vid_Conditioning

    patcher, vae = make_svd_model(seed=0, dtype=torch.float32)
    clip = moving_clip(4, 32, 32)
    with torch.inference_mode():
        positive = SVD_img2vid_Conditioning().encode(clip_vision, clip[:1], vae, 32, 32, 4, 127, 6, 0.0)[0]
    return patcher, vae, positive, clip


def test_every_default_target_of_the_model_path_loras_learns_on_svd(backbone_module, comfy_svd):
    patcher, vae, positive, clip = comfy_svd
    with torch.inference_mode(False):
        spatial = train_spatial(backbone_module.ComfyModelTraining(patcher, vae, positive), clip, STEPS)
        temporal = train_temporal(backbone_module.ComfyModelTraining(patcher, vae, positive), clip, torch.ones(4, 32, 32), STEPS)
    for state in (spatial, temporal):
        assert modules(state, ".lora_down.weight") and not still_zero(state, ".lora_down.weight")
    assert not any(SINGLE_TOKEN.fullmatch(m) for m in modules(temporal, ".lora_down.weight"))


def test_a_model_path_lora_trained_with_the_old_targets_still_loads_every_key(backbone_module, comfy_svd):
    import comfy.lora

    patcher, vae, positive, clip = comfy_svd
    with torch.inference_mode(False):
        old = train_temporal(backbone_module.ComfyModelTraining(patcher, vae, positive), clip, torch.ones(4, 32, 32),
                             replace(STEPS, targets=OLD_COMFY_TEMPORAL))
    assert any(SINGLE_TOKEN.fullmatch(m) for m in modules(old, ".lora_down.weight"))
    patches = comfy.lora.load_lora(old, comfy.lora.model_lora_keys_unet(patcher.model, {}), log_missing=False)
    assert len(patches) == len(old) // 3


def test_every_default_target_of_the_model_path_loras_learns_on_wan(backbone_module, tmp_path):
    """Wan's targets are its self-attention (q, k, v, o), which attends over every token of the clip."""
    import comfy.sd
    import comfy.utils

    with torch.inference_mode():
        model = comfy.sd.load_diffusion_model(str(make_wan21_t2v(tmp_path / "wan.safetensors")))
        vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(make_wan21_vae(tmp_path / "vae.safetensors"))))
    positive, clip = wan_text_conditioning("a box"), moving_clip(5, 32, 32)
    with torch.inference_mode(False):
        spatial = train_spatial(backbone_module.ComfyModelTraining(model, vae, positive), clip, STEPS)
        temporal = train_temporal(backbone_module.ComfyModelTraining(model, vae, positive), clip, torch.ones(5, 32, 32), STEPS)
    for state in (spatial, temporal):
        assert modules(state, ".lora_down.weight") and not still_zero(state, ".lora_down.weight")
