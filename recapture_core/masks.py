"""Mask arithmetic: the polarity conventions of the pack and mask previews.

Conventions (used by every node):
    valid_mask  ``[F, H, W]`` float, 1 = pixel observed / rendered from the source video.
    hole_mask   ``[F, H, W]`` float, 1 = pixel to fill (ComfyUI's inpainting convention).
    valid_mask + hole_mask == 1 everywhere.
"""
from __future__ import annotations

from typing import Sequence

import torch
from einops import rearrange

from .validation import check_frames, check_mask


def hole_mask_from_valid(valid_mask: torch.Tensor, dilate_px: int = 0) -> torch.Tensor:
    """Holes of a valid mask, optionally grown by ``dilate_px`` pixels (square neighbourhood).

    Args:
        valid_mask: ``[F, H, W]`` in 0..1; any value below 1 counts as a hole.
        dilate_px: grow every hole by this many pixels in each direction (Chebyshev distance).

    Returns:
        hole_mask ``[F, H, W]`` float32 with values in {0, 1}.
    """
    valid_mask = check_mask(valid_mask, "valid_mask")
    holes = (valid_mask < 1.0).to(torch.float32)
    if dilate_px > 0:
        # A max filter is exact binary dilation with a (2r+1)^2 square: cheap and separable-free.
        holes = torch.nn.functional.max_pool2d(
            holes.unsqueeze(1), kernel_size=2 * dilate_px + 1, stride=1, padding=dilate_px
        ).squeeze(1)
    return holes


def overlay_mask(frames: torch.Tensor, mask: torch.Tensor, color: Sequence[float] = (1.0, 0.0, 1.0),
                 opacity: float = 0.6) -> torch.Tensor:
    """Tint the masked pixels of a video, for previews.

    ``out = frames * (1 - opacity * mask) + color * opacity * mask``: where the mask is 0 the
    frame is returned bit-exactly.

    Args:
        frames: IMAGE ``[F, H, W, 3]`` in 0..1.
        mask: MASK ``[F, H, W]`` or ``[1, H, W]`` in 0..1 (one mask for all frames).
        color: RGB tint in 0..1.
        opacity: 0 (invisible) .. 1 (masked pixels become ``color``).

    Returns:
        IMAGE ``[F, H, W, 3]`` in 0..1, same dtype and device as ``frames``.
    """
    check_frames(frames, "frames")
    mask = check_mask(mask, "mask", frames)
    weight = rearrange(mask.to(frames), "f h w -> f h w 1") * opacity
    tint = torch.tensor(list(color), dtype=frames.dtype, device=frames.device)
    # Where weight == 0 this is frames * 1.0 + 0.0, which IEEE arithmetic returns unchanged.
    return frames * (1.0 - weight) + tint * weight
