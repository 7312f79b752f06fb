"""Random-weight model files in the released formats and at the released sizes, made on first use and cached.

What a user downloads, with seeded random values in place of the trained ones (fp16 on disk):

* ``checkpoints/svd_xt.safetensors`` — Stability's single file: the SVD-XT UNet (1.52 B), the OpenCLIP
  ViT-H image encoder (0.63 B) and the temporal-decoder VAE, under the original key names, so ComfyUI's
  Image Only Checkpoint Loader detects SVD-XT from the keys as it does the real file;
* ``diffusers/svd-xt`` — the same weights as a diffusers pipeline folder (the pack's own SVD Loader);
* ``diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors`` and ``vae/wan_2.1_vae.safetensors`` — Wan 2.1 T2V
  1.3B and its VAE as ComfyUI's template files are laid out (Load Diffusion Model, Load VAE);
* ``depth/Depth-Anything-V2-Small-hf`` — Depth Anything V2 Small as a transformers folder (DepthEstimate).

Shapes come from the model classes themselves, built on the ``meta`` device from the released configs
(diffusers and transformers for SVD and Depth Anything, ComfyUI's own ``WanModel`` / ``WanVAE`` for Wan),
so nothing is written by hand but the key renaming the pack already owns (``recapture_core/svd/keys.py``).
Each tensor is drawn, cast to fp16 and written on its own (a safetensors file written piecewise), so
making a 4.5 GB file needs memory for its largest tensor only. Every value is seeded by its name: the
single file and the diffusers folder hold identical weights.

Scale: matrices and kernels normal(0, 0.02), norm scales 1, other vectors 0, so activations stay finite
through every depth. The cache sits in ``.host/fullsize-cache/<hash of this file>/``: a change to the maker
makes new files; a run that finds them reuses them (a lock keeps two processes from making them at once).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import struct
import sys
from pathlib import Path
from typing import Callable, Iterable

import torch

REPO = Path(__file__).resolve().parents[2]
MAKER_ID = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
CACHE_ROOT = Path(os.environ.get("RECAPTURE_FULLSIZE_CACHE", REPO / ".host" / "fullsize-cache"))
SVD_CONFIGS = REPO / "recapture_core" / "svd" / "configs" / "svd_xt"

FILES = {
    "svd_xt": "checkpoints/svd_xt.safetensors",
    "svd_xt_diffusers": "diffusers/svd-xt",
    "wan21_t2v_1.3B": "diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors",
    "wan21_vae": "vae/wan_2.1_vae.safetensors",
    "depth_anything_v2_small": "depth/Depth-Anything-V2-Small-hf",
    # Made only when asked for (the bench): 10 GB fp16 on disk, see README "Full-size checks".
    "wan22_ti2v_5B": "diffusion_models/wan2.2_ti2v_5B_fp16.safetensors",
    "wan22_vae": "vae/wan2.2_vae.safetensors",
}

#: ComfyUI's WanModel configs of the released files (what Load Diffusion Model detects from their shapes).
WAN_DITS = {
    "wan2.1_t2v_1.3B": dict(model_type="t2v", patch_size=(1, 2, 2), text_len=512, in_dim=16, dim=1536, ffn_dim=8960,
                            freq_dim=256, text_dim=4096, out_dim=16, num_heads=12, num_layers=30, eps=1e-6),
    "wan2.2_ti2v_5B": dict(model_type="t2v", patch_size=(1, 2, 2), text_len=512, in_dim=48, dim=3072, ffn_dim=14336,
                           freq_dim=256, text_dim=4096, out_dim=48, num_heads=24, num_layers=30, eps=1e-6),
}
WAN21_VAE = dict(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                 temperal_downsample=[False, True, True], dropout=0.0)
WAN22_VAE = dict(dim=160, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                 temperal_downsample=[False, True, True], dropout=0.0)  # as comfy/sd.py builds it

# Norm scales, Wan's RMS-norm gammas and DINOv2's layer scales: 1 (a 0 there would switch a whole branch off).
_NORM_SCALE = re.compile(r".*(norm|ln_|layrnorm)[^.]*\.weight$|.*\.gamma$|.*\.lambda1$")


def initial_value(name: str, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """The float32 value of weight ``name``: scales 1, other vectors 0, matrices and kernels normal(0, 0.02)."""
    if _NORM_SCALE.fullmatch(name):
        return torch.ones(shape)
    if len(shape) < 2:
        return torch.zeros(shape)
    generator = torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little"))
    return torch.randn(shape, generator=generator) * 0.02


# --- writing ------------------------------------------------------------------------------------------------
Entry = tuple[str, tuple[int, ...], Callable[[], torch.Tensor]]


def write_safetensors(path: Path, entries: Iterable[Entry], metadata: dict | None = None) -> None:
    """A safetensors file of fp16 tensors, written one tensor at a time (never the whole state dict in memory).

    Written by hand because the safetensors library saves only a whole state dict at once (4.5 GB in memory for
    SVD-XT); the format is its documented one (8-byte header length, JSON header, data), and every file made
    here is read back through safetensors and ComfyUI's loaders by the tests."""
    entries = list(entries)
    header, offset = {}, 0
    for key, shape, _ in entries:
        size = 2 * math.prod(shape)
        header[key] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        for key, shape, make in entries:
            tensor = make().to(torch.float16).contiguous()
            if tuple(tensor.shape) != tuple(shape):
                raise ValueError(f"{key}: made {tuple(tensor.shape)}, declared {shape}")
            handle.write(tensor.view(torch.int16).numpy().tobytes())


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.endswith("position_ids")}


def _value(name: str, shape) -> Callable[[], torch.Tensor]:
    return lambda: initial_value(name, tuple(shape))


# --- SVD-XT: diffusers folder and the original single file ----------------------------------------------
def _svd_modules():
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel.from_config(json.loads((SVD_CONFIGS / "unet" / "config.json").read_text()))
        vae = AutoencoderKLTemporalDecoder.from_config(json.loads((SVD_CONFIGS / "vae" / "config.json").read_text()))
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig.from_dict(
            json.loads((SVD_CONFIGS / "image_encoder" / "config.json").read_text())))
    return unet, vae, clip


def _svd_vae_value(key: str, shape) -> Callable[[], torch.Tensor]:
    if key.startswith("quant_conv."):  # the original VAE has none: diffusers' must be the identity
        return lambda: (torch.eye(shape[0]).reshape(shape) if key.endswith("weight") else torch.zeros(shape))
    return _value("vae." + key, shape)


def make_svd_diffusers(folder: Path) -> None:
    unet, vae, clip = _svd_modules()
    for sub, module, weights, prefix, value in (
            ("unet", unet, "diffusion_pytorch_model.safetensors", "unet.", None),
            ("vae", vae, "diffusion_pytorch_model.safetensors", "vae.", _svd_vae_value),
            ("image_encoder", clip, "model.safetensors", "clip.", None)):
        (folder / sub).mkdir(parents=True)
        shutil.copy(SVD_CONFIGS / sub / "config.json", folder / sub / "config.json")
        write_safetensors(folder / sub / weights, [(k, s, value(k, s) if value else _value(prefix + k, s))
                                                   for k, s in _shapes(module).items()], {"format": "pt"})
    for sub, name in (("feature_extractor", "preprocessor_config.json"), ("scheduler", "scheduler_config.json")):
        (folder / sub).mkdir()
        shutil.copy(SVD_CONFIGS / sub / name, folder / sub / name)
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableVideoDiffusionPipeline", "_diffusers_version": "0.42.1",
        "feature_extractor": ["transformers", "CLIPImageProcessor"], "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"], "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
        "vae": ["diffusers", "AutoencoderKLTemporalDecoder"]}, indent=1))


def make_svd_single_file(path: Path) -> None:
    """The layout of ``svd_xt.safetensors`` (the inverse of the pack's single-file loader, as tests/svd_support.py)."""
    from recapture_core.svd.keys import clip_key_to_original, is_vae_attention_matrix, unet_key_to_original, vae_key_to_original
    from recapture_core.svd.single_file import CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX, _unet_layout

    unet, vae, clip = _svd_modules()
    entries: list[Entry] = []
    layers, up_attention = _unet_layout(unet)
    for key, shape in _shapes(unet).items():
        entries.append((UNET_PREFIX + unet_key_to_original(key, layers, up_attention), shape, _value("unet." + key, shape)))
    levels = len(vae.config.block_out_channels)
    for key, shape in _shapes(vae).items():
        if key.startswith("quant_conv."):
            continue
        make = _value("vae." + key, shape)
        if is_vae_attention_matrix(key):
            entries.append((VAE_PREFIX + vae_key_to_original(key, levels), (*shape, 1, 1), lambda m=make: m()[..., None, None]))
        else:
            entries.append((VAE_PREFIX + vae_key_to_original(key, levels), shape, make))
    thirds: dict[str, list] = {}
    for key, shape in _shapes(clip).items():
        name, third = clip_key_to_original(key)
        if third is None:
            if name == "proj":
                entries.append((CLIP_PREFIX + name, shape[::-1], lambda m=_value("clip." + key, shape): m().t()))
            else:
                entries.append((CLIP_PREFIX + name, shape, _value("clip." + key, shape)))
        else:
            thirds.setdefault(name, [None] * 3)[third] = (key, shape)
    for name, parts in thirds.items():
        shape = (sum(s[0] for _, s in parts), *parts[0][1][1:])
        makes = [_value("clip." + k, s) for k, s in parts]
        entries.append((CLIP_PREFIX + name, shape, lambda ms=makes: torch.cat([m() for m in ms])))
    write_safetensors(path, entries, {"format": "pt"})


# --- Wan ----------------------------------------------------------------------------------------------------
def _comfy_on_path() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    import comfy_host

    comfy = comfy_host.host_paths()["COMFYUI_DIR"]
    if comfy not in sys.path:
        sys.path.insert(1, comfy)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True


def wan_dit_shapes(name: str) -> dict[str, tuple[int, ...]]:
    _comfy_on_path()
    import comfy.ops
    from comfy.ldm.wan.model import WanModel

    with torch.device("meta"):
        model = WanModel(**WAN_DITS[name], device="meta", operations=comfy.ops.disable_weight_init)
    return _shapes(model)


def make_wan_dit(path: Path, name: str = "wan2.1_t2v_1.3B") -> None:
    write_safetensors(path, [(k, s, _value(f"{name}.{k}", s)) for k, s in wan_dit_shapes(name).items()])


def make_wan_vae(path: Path, version: str = "2.1") -> None:
    _comfy_on_path()
    from comfy.ldm.wan import vae, vae2_2

    with torch.device("meta"):
        model = vae.WanVAE(**WAN21_VAE) if version == "2.1" else vae2_2.WanVAE(**WAN22_VAE)
    write_safetensors(path, [(k, s, _value(f"wan{version}_vae.{k}", s)) for k, s in _shapes(model).items()])


# --- Depth Anything V2 Small --------------------------------------------------------------------------------
def make_depth_anything_v2_small(folder: Path) -> None:
    """The transformers layout of ``depth-anything/Depth-Anything-V2-Small-hf`` (its config, 24.8 M parameters)."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    config = DepthAnythingConfig(
        backbone_config=Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                                     patch_size=14, image_size=518, layerscale_value=1.0, out_indices=[3, 6, 9, 12],
                                     out_features=["stage3", "stage6", "stage9", "stage12"], reshape_hidden_states=False,
                                     apply_layernorm=True),
        reassemble_hidden_size=384, neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64, head_hidden_size=32,
        patch_size=14, depth_estimation_type="relative")
    with torch.device("meta"):
        model = DepthAnythingForDepthEstimation(config)
    folder.mkdir(parents=True)
    config.save_pretrained(folder)
    DPTImageProcessor(size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14, do_pad=False,
                      resample=3, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    write_safetensors(folder / "model.safetensors", [(k, s, _value("da2s." + k, s)) for k, s in _shapes(model).items()],
                      {"format": "pt"})


MAKERS = {
    "svd_xt": make_svd_single_file,
    "svd_xt_diffusers": make_svd_diffusers,
    "wan21_t2v_1.3B": make_wan_dit,
    "wan21_vae": make_wan_vae,
    "depth_anything_v2_small": make_depth_anything_v2_small,
    "wan22_ti2v_5B": lambda path: make_wan_dit(path, "wan2.2_ti2v_5B"),
    "wan22_vae": lambda path: make_wan_vae(path, "2.2"),
}


def cache_dir() -> Path:
    return CACHE_ROOT / MAKER_ID


def model_file(name: str) -> Path:
    """The cached file (or folder) ``name`` of :data:`FILES`, made now if missing (under a lock, atomically)."""
    target = cache_dir() / FILES[name]
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            _drop_stale_caches()
            partial = target.with_name(target.name + ".partial")
            if partial.is_dir():
                shutil.rmtree(partial)
            elif partial.exists():
                partial.unlink()
            MAKERS[name](partial)
            partial.rename(target)
    return target


def _drop_stale_caches() -> None:
    """Files made by an older maker are never read again: free their disk space (several GB each)."""
    if not CACHE_ROOT.is_dir():
        return
    for entry in CACHE_ROOT.iterdir():
        if entry.is_dir() and entry.name != MAKER_ID and re.fullmatch(r"[0-9a-f]{12}", entry.name):
            shutil.rmtree(entry, ignore_errors=True)


if __name__ == "__main__":  # make them ahead of a test run: python tests/fullsize/fullsize_files.py [name ...]
    sys.path.insert(0, str(REPO))
    for wanted in sys.argv[1:] or list(FILES):
        print(wanted, model_file(wanted))
