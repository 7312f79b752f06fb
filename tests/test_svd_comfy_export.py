"""LoRA export in the original SVD key names, checked against ComfyUI's own LoRA loading code.

ComfyUI's SVD model is built from a unet_config equal to the tiny diffusers UNet's, in-process
(comfy.supported_models.SVD_img2vid), so its parameter names are ComfyUI's, not ours.
"""
from __future__ import annotations

import pytest
import torch

from recapture_core.svd.backbone import load_diffusers_svd
from recapture_core.svd.keys import attention_module_to_original
from recapture_core.svd.lora import target_modules
from recapture_core.svd.lora_files import export_comfy_lora, to_comfy_state_dict
from recapture_core.svd.train import TrainSettings, train_spatial_lora, train_temporal_lora
from tiny_models import make_svd_folder

FAST = TrainSettings(steps=2, rank=4, alpha=8.0, learning_rate=1e-2, seed=5)


def comfy_unet_config(unet) -> dict:
    """ComfyUI's VideoUNet config for our tiny diffusers UNet (the fields its SVD detection sets)."""
    c = unet.config
    levels = len(c.block_out_channels)
    depth = [1 if t.startswith("CrossAttn") else 0 for t in c.down_block_types]
    return {
        "use_checkpoint": False, "image_size": 32, "out_channels": c.out_channels, "use_spatial_transformer": True,
        "legacy": False, "num_classes": "sequential", "adm_in_channels": c.projection_class_embeddings_input_dim,
        "in_channels": c.in_channels, "model_channels": c.block_out_channels[0],
        "num_res_blocks": [c.layers_per_block] * levels,
        "transformer_depth": [d for d in depth for _ in range(c.layers_per_block)],
        # ComfyUI pops this list from the end while building output blocks (deepest first): level order.
        "transformer_depth_output": [d for d in depth for _ in range(c.layers_per_block + 1)],
        "channel_mult": [ch // c.block_out_channels[0] for ch in c.block_out_channels],
        "transformer_depth_middle": 1, "use_linear_in_transformer": True, "context_dim": c.cross_attention_dim,
        "extra_ff_mix_layer": True, "use_spatial_context": True, "merge_strategy": "learned_with_images",
        "merge_factor": 0.0, "video_kernel_size": [3, 1, 1], "use_temporal_resblock": True,
        "use_temporal_attention": True, "disable_temporal_crossattention": False,
    }


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return load_diffusers_svd(make_svd_folder(tmp_path_factory.mktemp("diffusers") / "tiny-svd"), "fp32")


@pytest.fixture(scope="module")
def comfy_model(backbone):
    import comfy.supported_models

    config = comfy.supported_models.SVD_img2vid(comfy_unet_config(backbone.unet))
    config.unet_config["num_head_channels"] = 16  # 32 and 64 channels: 2 and 4 heads, as in the tiny UNet
    return config.get_model({})


@pytest.fixture(scope="module")
def loras(backbone):
    spatial = train_spatial_lora(backbone, torch.rand(3, 32, 32, 3), FAST)
    temporal = train_temporal_lora(backbone, torch.rand(3, 32, 32, 3), torch.ones(3, 32, 32), FAST, spatial_lora=spatial)
    return {"spatial": spatial, "temporal": temporal}


def test_spatial_names_agree_with_comfys_own_diffusers_map(backbone, comfy_model):
    import comfy.utils

    comfy_map = comfy.utils.unet_to_diffusers(comfy_model.model_config.unet_config)
    layers = backbone.unet.config.layers_per_block
    spatial = target_modules(backbone.unet, "spatial")
    for module in spatial:
        assert comfy_map[f"{module}.weight"] == f"{attention_module_to_original(module, layers)}.weight", module


@pytest.mark.parametrize("kind", ["spatial", "temporal"])
def test_comfy_loads_every_exported_key_and_applies_the_same_weights(backbone, comfy_model, loras, kind, tmp_path):
    import comfy.lora
    import comfy.utils

    lora = loras[kind]
    exported = tmp_path / f"{kind}.safetensors"
    export_comfy_lora(lora, exported)
    lora_sd = comfy.utils.load_torch_file(str(exported), safe_load=True)
    assert lora_sd.keys() == to_comfy_state_dict(lora).keys()
    assert lora.layers_per_block == backbone.unet.config.layers_per_block

    key_map = comfy.lora.model_lora_keys_unet(comfy_model, {})
    patches = comfy.lora.load_lora(lora_sd, key_map)
    modules = target_modules(backbone.unet, kind)
    assert len(patches) == len(modules) == len(lora_sd) // 3  # every module patched, no key left over

    # Numerically: ComfyUI's patched weight minus the original equals peft's delta for that module.
    comfy_weights = comfy_model.state_dict()  # uninitialised values; only names and shapes count here
    layers = backbone.unet.config.layers_per_block
    generator = torch.Generator().manual_seed(0)
    for module in modules:
        key = f"diffusion_model.{attention_module_to_original(module, layers)}.weight"
        original = torch.randn(comfy_weights[key].shape, generator=generator)
        patched = comfy.lora.calculate_weight([(1.0, patches[key], 1.0, None, None)], original.clone(), key)
        A = lora.state_dict[f"{module}.lora_A.weight"]
        B = lora.state_dict[f"{module}.lora_B.weight"]
        torch.testing.assert_close(patched - original, (lora.alpha / lora.rank) * (B @ A), rtol=1e-5, atol=1e-6)
        assert (B @ A).abs().max() > 0  # a trained LoRA: the comparison has something to compare
