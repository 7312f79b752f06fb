"""Long clips as overlapping windows of a model's native length: the one definition both backbone paths use.

A clip longer than the model's window is covered by windows whose first frames are
:func:`window_starts`; every window is conditioned on its own first frame, and the model's
per-window predictions are blended with :func:`window_weights` (linear ramps across each
overlap, weights that sum to 1 on every frame), so a quantity the model predicts the same way
in every window comes out unchanged and there is no seam. The diffusers sampler
(``recapture_core/svd/sample.py``), the trainers (``recapture_core/finetune.py``) and the
context-window patch on ComfyUI's MODEL (``nodes/windows.py``) all take their windows from here.

Frame rules: a VAE with temporal compression ``t`` (Wan: 4) takes ``t·k + 1`` frames, and each
window of ``L`` latent frames is a clip of ``t·(L - 1) + 1`` frames starting at frame ``t·s`` for
latent start ``s``. A clip of another length is padded to the next length the VAE takes
(:func:`pad_to_cover`) and the result trimmed back, rather than refused.
"""
from __future__ import annotations

import torch


def window_starts(num_frames: int, window: int, overlap: int) -> list[int]:
    """First frames of overlapping windows covering ``num_frames``; the last window ends at the last frame."""
    if num_frames <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, num_frames - window, stride))
    return starts + [num_frames - window]


def window_weights(num_frames: int, window: int, starts: list[int]) -> torch.Tensor:
    """Blend weights ``[W, num_frames]`` float64: per window, linear ramps over the frames it shares with a
    neighbour, 1 elsewhere inside it, 0 outside; columns sum to 1 (a convex combination per frame)."""
    with torch.device("cpu"):  # a small table, built once on the CPU and moved where each window is blended
        weights = torch.zeros(len(starts), num_frames, dtype=torch.float64)
        for k, start in enumerate(starts):
            end = min(start + window, num_frames)
            w = torch.ones(end - start, dtype=torch.float64)
            if k > 0:  # ramp up across the overlap with the previous window
                shared = starts[k - 1] + window - start
                if shared > 0:
                    w[:shared] = torch.arange(1, shared + 1, dtype=torch.float64) / (shared + 1)
            if k + 1 < len(starts):  # ramp down across the overlap with the next window
                shared = start + window - starts[k + 1]
                if shared > 0:
                    w[-shared:] = torch.minimum(w[-shared:], torch.arange(shared, 0, -1, dtype=torch.float64) / (shared + 1))
            weights[k, start:end] = w
        return weights / weights.sum(dim=0, keepdim=True)


def blend_windows(window_outputs: list[torch.Tensor], starts: list[int], weights: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Combine per-window tensors (frames on axis ``dim``, e.g. ``[B, window, C, h, w]``) into one tensor of
    ``weights.shape[1]`` frames on that axis, with ``weights [W, F]`` from :func:`window_weights`. float32."""
    num_frames = weights.shape[1]
    first = window_outputs[0]
    shape = list(first.shape)
    shape[dim] = num_frames
    out = torch.zeros(shape, dtype=torch.float32, device=first.device)
    for k, (output, start) in enumerate(zip(window_outputs, starts)):
        span = output.shape[dim]
        view = [1] * output.dim()
        view[dim] = span
        w = weights[k, start:start + span].to(out.device, torch.float32).view(view)
        out.narrow(dim, start, span).add_(w * output.float())
    return out


def latent_length(frames: int, temporal_factor: int) -> int:
    """Latent frames of a clip of ``frames`` (``t·k + 1``) frames: ``k + 1``; ``frames`` itself without compression."""
    return (frames - 1) // temporal_factor + 1


def pixel_length(latent_frames: int, temporal_factor: int) -> int:
    """Frames of a clip of ``latent_frames`` latent frames: ``t·(latent_frames - 1) + 1``."""
    return temporal_factor * (latent_frames - 1) + 1


def covering_length(frames: int, temporal_factor: int) -> int:
    """The shortest length ``t·k + 1 >= frames`` the VAE takes."""
    return temporal_factor * -(-(max(frames, 1) - 1) // temporal_factor) + 1


def pad_to_cover(video: torch.Tensor, valid_mask: torch.Tensor | None, temporal_factor: int):
    """``video [F, H, W, C]`` (and ``valid_mask [F, H, W]``) padded at the end to :func:`covering_length` frames.

    Padding repeats the last frame, so the VAE sees no jump; its mask is 0, so no loss is ever taken
    on a frame the user did not give. Returns ``(video, valid_mask)`` (the inputs themselves when no
    padding is needed); trim results back to ``video.shape[0]`` frames.
    """
    frames = int(video.shape[0])
    missing = covering_length(frames, temporal_factor) - frames
    if missing == 0:
        return video, valid_mask
    video = torch.cat([video, video[-1:].expand(missing, *video.shape[1:])])
    if valid_mask is not None:
        valid_mask = torch.cat([valid_mask, valid_mask.new_zeros(missing, *valid_mask.shape[1:])])
    return video, valid_mask
