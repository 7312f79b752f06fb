"""Module names of the SVD UNet: diffusers <-> the original (Stability "sgm") checkpoint.

Written by hand because neither diffusers (no single-file SVD support in 0.42) nor peft has
it. The block arithmetic is the Stable Diffusion UNet layout that ComfyUI's
``comfy.utils.unet_to_diffusers`` also encodes; temporal blocks live under ``time_stack``.
"""
from __future__ import annotations

import re

_DOWN = re.compile(r"^down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)$")
_UP = re.compile(r"^up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)$")
_MID = re.compile(r"^mid_block\.attentions\.0\.(.*)$")


def attention_module_to_original(name: str, layers_per_block: int) -> str:
    """Original name of a transformer-block module of the diffusers SVD UNet.

    ``down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q`` ->
    ``input_blocks.1.1.transformer_blocks.0.attn1.to_q``; temporal blocks
    (``temporal_transformer_blocks``) become ``time_stack``.
    """
    if m := _DOWN.match(name):
        i, j, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        block = f"input_blocks.{1 + i * (layers_per_block + 1) + j}.1"
    elif m := _UP.match(name):
        i, j, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        block = f"output_blocks.{i * (layers_per_block + 1) + j}.1"
    elif m := _MID.match(name):
        rest, block = m.group(1), "middle_block.1"
    else:
        raise ValueError(f"not a transformer-block module of the SVD UNet: {name}")
    rest = re.sub(r"^temporal_transformer_blocks\.", "time_stack.", rest)
    return f"{block}.{rest}"
