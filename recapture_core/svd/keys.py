"""Parameter names of the SVD UNet: diffusers -> the original (Stability "sgm") checkpoint.

Written by hand because neither diffusers (no single-file SVD support in 0.42) nor peft has
it. The block arithmetic is the Stable Diffusion UNet layout that ComfyUI's
``comfy.utils.unet_to_diffusers`` also encodes; temporal parts live under ``time_stack``.
One table serves both the single-file loader and the ComfyUI-format LoRA export.
"""
from __future__ import annotations

import re

_RES_SPATIAL = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def _unet_resnet(rest: str) -> str:
    if rest.startswith("time_mixer."):
        return rest
    part, _, tail = rest.partition(".")  # spatial_res_block | temporal_res_block
    layer, _, leaf = tail.partition(".")
    mapped = f"{_RES_SPATIAL[layer]}.{leaf}"
    return mapped if part == "spatial_res_block" else f"time_stack.{mapped}"


def _unet_attention(rest: str) -> str:
    rest = re.sub(r"^temporal_transformer_blocks\.", "time_stack.", rest)
    rest = re.sub(r"^time_pos_embed\.linear_1\.", "time_pos_embed.0.", rest)
    return re.sub(r"^time_pos_embed\.linear_2\.", "time_pos_embed.2.", rest)


def unet_key_to_original(key: str, layers_per_block: int, up_block_has_attention: list[bool]) -> str:
    """diffusers ``UNetSpatioTemporalConditionModel`` state-dict key -> original (without prefix)."""
    top = {"conv_in.": "input_blocks.0.0.", "time_embedding.linear_1.": "time_embed.0.",
           "time_embedding.linear_2.": "time_embed.2.", "add_embedding.linear_1.": "label_emb.0.0.",
           "add_embedding.linear_2.": "label_emb.0.2.", "conv_norm_out.": "out.0.", "conv_out.": "out.2."}
    for source, target in top.items():
        if key.startswith(source):
            return target + key[len(source):]
    step = layers_per_block + 1
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        i, kind, j, rest = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
        index = 1 + i * step + j
        return f"input_blocks.{index}.0.{_unet_resnet(rest)}" if kind == "resnets" else f"input_blocks.{index}.1.{_unet_attention(rest)}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"input_blocks.{1 + int(m.group(1)) * step + layers_per_block}.0.op.{m.group(2)}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"middle_block.{2 * int(m.group(1))}.{_unet_resnet(m.group(2))}"
    if m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
        return f"middle_block.1.{_unet_attention(m.group(1))}"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        i, kind, j, rest = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
        index = i * step + j
        return f"output_blocks.{index}.0.{_unet_resnet(rest)}" if kind == "resnets" else f"output_blocks.{index}.1.{_unet_attention(rest)}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        i = int(m.group(1))
        return f"output_blocks.{i * step + layers_per_block}.{2 if up_block_has_attention[i] else 1}.conv.{m.group(2)}"
    raise KeyError(f"no original name for UNet key {key}")


def attention_module_to_original(name: str, layers_per_block: int) -> str:
    """Original name of a transformer-block module of the diffusers SVD UNet (what LoRAs patch).

    ``down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q`` ->
    ``input_blocks.1.1.transformer_blocks.0.attn1.to_q``; temporal blocks
    (``temporal_transformer_blocks``) become ``time_stack``.
    """
    if ".attentions." not in name:
        raise ValueError(f"not a transformer-block module of the SVD UNet: {name}")
    # Upsampler placement is irrelevant to attention modules, hence no up-block layout here.
    return unet_key_to_original(f"{name}.weight", layers_per_block, [])[: -len(".weight")]
