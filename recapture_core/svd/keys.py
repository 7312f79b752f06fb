"""Parameter names of SVD's three components: diffusers/transformers -> the original (Stability "sgm") checkpoint.

Written by hand because neither diffusers (no single-file SVD support in 0.42) nor peft has
it. Each component is one table of rules ``(pattern, original name)`` read by one matcher,
:func:`_map`; the single-file loader, the ComfyUI-format LoRA export and the tests all use these
tables, in the diffusers -> original direction (loading inverts them).

* UNet: the Stable Diffusion UNet layout that ComfyUI's ``comfy.utils.unet_to_diffusers`` also
  encodes; temporal parts live under ``time_stack``.
* VAE: the LDM layout with a temporal decoder.
* Image encoder: OpenCLIP's ViT (q/k/v are thirds of one ``in_proj`` tensor).
"""
from __future__ import annotations

import functools
import re
from typing import Callable

Rule = tuple[str, Callable[[re.Match], str]]


def _map(key: str, rules: list[Rule], component: str):
    """The original name of ``key``: the first rule whose pattern matches all of it."""
    for pattern, original in rules:
        if match := re.fullmatch(pattern, key):
            return original(match)
    raise KeyError(f"no original name for {component} key {key}")


def _prefix(source: str, target: str) -> Rule:
    """Rename a leading ``source`` to ``target``, keeping the rest of the key."""
    return re.escape(source) + r"(.*)", lambda m: target + m.group(1)


# --- UNet ----------------------------------------------------------------------------------------------------
_RES_SPATIAL = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_UNET_RESNET = [
    (r"(time_mixer\..*)", lambda m: m.group(1)),
    (r"spatial_res_block\.(\w+)\.(.*)", lambda m: f"{_RES_SPATIAL[m.group(1)]}.{m.group(2)}"),
    (r"temporal_res_block\.(\w+)\.(.*)", lambda m: f"time_stack.{_RES_SPATIAL[m.group(1)]}.{m.group(2)}"),
]
_UNET_ATTENTION = [
    _prefix("temporal_transformer_blocks.", "time_stack."),
    _prefix("time_pos_embed.linear_1.", "time_pos_embed.0."),
    _prefix("time_pos_embed.linear_2.", "time_pos_embed.2."),
    (r"(.*)", lambda m: m.group(1)),
]


def _unet_blocks(kind: str, side: str, index_of: Callable[[int, int], int]) -> Rule:
    """Resnets and attentions of the ``kind`` (down/up) blocks -> ``side`` (input/output) blocks."""
    def build(m: re.Match) -> str:
        index = index_of(int(m.group(1)), int(m.group(3)))
        if m.group(2) == "resnets":
            return f"{side}.{index}.0.{_map(m.group(4), _UNET_RESNET, 'UNet')}"
        return f"{side}.{index}.1.{_map(m.group(4), _UNET_ATTENTION, 'UNet')}"

    return rf"{kind}_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", build


@functools.lru_cache(maxsize=8)
def _unet_rules(layers_per_block: int, up_block_has_attention: tuple[bool, ...]) -> list[Rule]:
    step = layers_per_block + 1
    return [
        _prefix("conv_in.", "input_blocks.0.0."), _prefix("time_embedding.linear_1.", "time_embed.0."),
        _prefix("time_embedding.linear_2.", "time_embed.2."), _prefix("add_embedding.linear_1.", "label_emb.0.0."),
        _prefix("add_embedding.linear_2.", "label_emb.0.2."), _prefix("conv_norm_out.", "out.0."),
        _prefix("conv_out.", "out.2."),
        _unet_blocks("down", "input_blocks", lambda i, j: 1 + i * step + j),
        (r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)",
         lambda m: f"input_blocks.{1 + int(m.group(1)) * step + layers_per_block}.0.op.{m.group(2)}"),
        (r"mid_block\.resnets\.(\d+)\.(.*)", lambda m: f"middle_block.{2 * int(m.group(1))}.{_map(m.group(2), _UNET_RESNET, 'UNet')}"),
        (r"mid_block\.attentions\.0\.(.*)", lambda m: f"middle_block.1.{_map(m.group(1), _UNET_ATTENTION, 'UNet')}"),
        _unet_blocks("up", "output_blocks", lambda i, j: i * step + j),
        (r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)",
         lambda m: f"output_blocks.{int(m.group(1)) * step + layers_per_block}."
                   f"{2 if up_block_has_attention[int(m.group(1))] else 1}.conv.{m.group(2)}"),
    ]


def unet_key_to_original(key: str, layers_per_block: int, up_block_has_attention: list[bool]) -> str:
    """diffusers ``UNetSpatioTemporalConditionModel`` state-dict key -> original (without prefix)."""
    return _map(key, _unet_rules(layers_per_block, tuple(up_block_has_attention)), "UNet")


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


# --- VAE -------------------------------------------------------------------------------------------------------
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_VAE_TEMPORAL = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3"}
_VAE_RESNET = [
    (r"time_mixer\.mix_factor", lambda m: "mix_factor"),
    (r"temporal_res_block\.(\w+)\.(.*)", lambda m: f"time_stack.{_VAE_TEMPORAL[m.group(1)]}.{m.group(2)}"),
    (r"(?:spatial_res_block\.)?(.*)", lambda m: m.group(1).replace("conv_shortcut.", "nin_shortcut.")),
]


@functools.lru_cache(maxsize=8)
def _vae_rules(num_levels: int) -> list[Rule]:
    def resnet(rest: str) -> str:
        return _map(rest, _VAE_RESNET, "VAE")

    def up(block: str) -> int:
        return num_levels - 1 - int(block)

    return [
        _prefix("encoder.conv_norm_out.", "encoder.norm_out."), _prefix("decoder.conv_norm_out.", "decoder.norm_out."),
        _prefix("decoder.time_conv_out.", "decoder.conv_out.time_mix_conv."),
        (r"(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(.*)",
         lambda m: f"{m.group(1)}.mid.attn_1.{_VAE_ATTENTION[m.group(2)]}.{m.group(3)}"),
        (r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)",
         lambda m: f"{m.group(1)}.mid.block_{int(m.group(2)) + 1}.{resnet(m.group(3))}"),
        (r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", lambda m: f"encoder.down.{m.group(1)}.block.{m.group(2)}.{resnet(m.group(3))}"),
        (r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.*)", lambda m: f"encoder.down.{m.group(1)}.downsample.{m.group(2)}"),
        (r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", lambda m: f"decoder.up.{up(m.group(1))}.block.{m.group(2)}.{resnet(m.group(3))}"),
        (r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", lambda m: f"decoder.up.{up(m.group(1))}.upsample.{m.group(2)}"),
        (r"((?:encoder|decoder)\.(?:conv_in|conv_out)\..*|quant_conv\..*)", lambda m: m.group(1)),
    ]


def vae_key_to_original(key: str, num_levels: int) -> str:
    """diffusers ``AutoencoderKLTemporalDecoder`` key -> original LDM/sgm VAE key (without prefix)."""
    return _map(key, _vae_rules(num_levels), "VAE")


def is_vae_attention_matrix(key: str) -> bool:
    """A VAE attention projection: a Linear in diffusers, a 1x1 convolution in the original."""
    return bool(re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight", key))


# --- OpenCLIP image encoder -------------------------------------------------------------------------------------
_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
               "self_attn.out_proj": "attn.out_proj"}
_CLIP_THIRDS = {"self_attn.q_proj": 0, "self_attn.k_proj": 1, "self_attn.v_proj": 2}
_CLIP_RULES: list[Rule] = [
    *[(re.escape(source), lambda m, target=target: (target, None)) for source, target in {
        "vision_model.embeddings.class_embedding": "class_embedding",
        "vision_model.embeddings.patch_embedding.weight": "conv1.weight",
        "vision_model.embeddings.position_embedding.weight": "positional_embedding",
        "vision_model.pre_layrnorm.weight": "ln_pre.weight", "vision_model.pre_layrnorm.bias": "ln_pre.bias",
        "vision_model.post_layernorm.weight": "ln_post.weight", "vision_model.post_layernorm.bias": "ln_post.bias",
        "visual_projection.weight": "proj"}.items()],
    (r"vision_model\.encoder\.layers\.(\d+)\.(layer_norm[12]|mlp\.fc[12]|self_attn\.out_proj)\.(weight|bias)",
     lambda m: (f"transformer.resblocks.{m.group(1)}.{_CLIP_LAYER[m.group(2)]}.{m.group(3)}", None)),
    (r"vision_model\.encoder\.layers\.(\d+)\.(self_attn\.[qkv]_proj)\.(weight|bias)",
     lambda m: (f"transformer.resblocks.{m.group(1)}.attn.in_proj_{m.group(3)}", _CLIP_THIRDS[m.group(2)])),
]


def clip_key_to_original(key: str) -> tuple[str, int | None]:
    """transformers ``CLIPVisionModelWithProjection`` key -> (OpenCLIP key, index of the q/k/v third or None)."""
    return _map(key, _CLIP_RULES, "CLIP")
