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


def fill_holes(frames: torch.Tensor, valid_mask: torch.Tensor) -> torch.Tensor:
    """Fill hole pixels from the valid ones only (push-pull pyramid), leaving valid pixels exact.

    The result depends on valid pixels alone, so whatever hole pixels held before has no effect
    downstream (the VAE encoder mixes neighbouring pixels; this keeps hole contents out of it).

    Args:
        frames: IMAGE ``[F, H, W, 3]``.
        valid_mask: ``[F, H, W]``; only pixels equal to 1 count as valid.

    Returns:
        IMAGE ``[F, H, W, 3]``: frames where valid, smooth colours from the surrounding valid
        pixels elsewhere (0.5 grey in a frame with no valid pixel).
    """
    weight = (valid_mask >= 1.0).to(frames.dtype)[:, None]  # [F, 1, H, W]
    colour = torch.where(weight > 0, rearrange(frames, "f h w c -> f c h w"), torch.zeros((), dtype=frames.dtype, device=frames.device))
    levels = [(colour, weight)]
    while min(levels[-1][1].shape[-2:]) > 1:
        c, w = levels[-1]
        levels.append((torch.nn.functional.avg_pool2d(c, 2, ceil_mode=True),
                       torch.nn.functional.avg_pool2d(w, 2, ceil_mode=True)))
    c, w = levels[-1]
    estimate = torch.where(w > 0, c / w.clamp_min(1e-12), torch.full_like(c, 0.5))
    for c, w in reversed(levels[:-1]):
        up = torch.nn.functional.interpolate(estimate, size=c.shape[-2:], mode="bilinear", align_corners=False)
        # Premultiplied colour plus the coarser estimate where this level's weight falls short:
        # at full weight this is the colour itself, bit for bit.
        estimate = c + (1.0 - w) * up
    return rearrange(estimate, "f c h w -> f h w c")
