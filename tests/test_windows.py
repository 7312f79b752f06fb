"""Windows of a long clip (recapture_core/windows.py): known-answer blending, coverage and Wan's frame rule."""
from __future__ import annotations

import pytest
import torch

from recapture_core.windows import (blend_windows, covering_length, latent_length, pad_to_cover, pixel_length,
                                    window_starts, window_weights)


def known_prediction(frames: torch.Tensor) -> torch.Tensor:
    """What the stand-in denoiser predicts for global frame indices ``frames [n]``: ``[1, n, 2, 3, 3]``, a
    different smooth function per channel and pixel, so any misplaced or mis-weighted frame shows."""
    f = frames.double()[None, :, None, None, None]
    channel = torch.arange(2).double()[None, None, :, None, None]
    pixel = torch.arange(9).double().view(1, 1, 1, 3, 3)
    return torch.sin(0.3 * f + channel) * (1 + pixel / 9) + 0.2 * torch.cos(0.05 * f)


@pytest.mark.parametrize("num_frames, window, overlap", [
    (25, 25, 4), (26, 25, 4), (40, 14, 4), (97, 25, 6), (100, 25, 8), (193, 25, 12), (61, 21, 20), (50, 7, 0),
    (121, 21, 5),
])
def test_windows_of_a_known_denoiser_reproduce_it_exactly(num_frames, window, overlap):
    starts = window_starts(num_frames, window, overlap)
    weights = window_weights(num_frames, window, starts)
    # Every frame is covered, every window has the model's length (or the clip's, when shorter), the last ends at the end.
    assert starts[0] == 0 and starts[-1] + min(window, num_frames) == num_frames
    covered = torch.zeros(num_frames, dtype=torch.bool)
    for start in starts:
        covered[start:start + window] = True
    assert covered.all()
    assert torch.allclose(weights.sum(dim=0), torch.ones(num_frames, dtype=torch.float64), atol=1e-12)
    assert (weights >= 0).all()
    outputs = [known_prediction(torch.arange(s, min(s + window, num_frames))) for s in starts]
    blended = blend_windows(outputs, starts, weights)
    truth = known_prediction(torch.arange(num_frames)).float()
    assert float((blended - truth).abs().max()) <= 1e-6


def test_blending_on_wans_frame_axis_matches_the_batch_axis():
    """Wan's latents are ``[B, C, f, h, w]``: the same blend on axis 2."""
    num_frames, window = 31, 21
    starts = window_starts(num_frames, window, 5)
    weights = window_weights(num_frames, window, starts)
    outputs = [known_prediction(torch.arange(s, s + window)) for s in starts]
    frames_on_1 = blend_windows(outputs, starts, weights)
    frames_on_2 = blend_windows([o.transpose(1, 2) for o in outputs], starts, weights, dim=2)
    assert torch.equal(frames_on_2, frames_on_1.transpose(1, 2))


def test_windows_that_disagree_are_blended_only_where_they_overlap():
    """A denoiser whose windows disagree (each predicts its own index): frames seen by one window keep its value
    exactly, frames in an overlap get a convex mix that moves monotonically from one window to the next."""
    num_frames, window, overlap = 40, 14, 4
    starts = window_starts(num_frames, window, overlap)
    weights = window_weights(num_frames, window, starts)
    outputs = [torch.full((1, window, 1), float(k)) for k in range(len(starts))]
    blended = blend_windows(outputs, starts, weights)[0, :, 0]
    owners = (weights > 0).sum(dim=0)
    for frame in range(num_frames):
        if owners[frame] == 1:
            assert float(blended[frame]) == float(weights[:, frame].argmax())
    shared = blended[owners > 1]
    assert len(shared) > 0 and (shared % 1 != 0).all()
    assert (blended[1:] - blended[:-1] >= 0).all()


@pytest.mark.parametrize("frames, factor, covering", [(1, 4, 1), (5, 4, 5), (6, 4, 9), (82, 4, 85), (81, 4, 81),
                                                       (100, 1, 100), (2, 4, 5)])
def test_wans_rule_pads_to_the_next_length_the_vae_takes(frames, factor, covering):
    assert covering_length(frames, factor) == covering
    assert (covering - 1) % factor == 0
    assert pixel_length(latent_length(covering, factor), factor) == covering


def test_padding_repeats_the_last_frame_and_takes_no_loss_there():
    video = torch.rand(82, 8, 8, 3)
    mask = torch.ones(82, 8, 8)
    padded, padded_mask = pad_to_cover(video, mask, 4)
    assert padded.shape[0] == padded_mask.shape[0] == 85
    assert torch.equal(padded[:82], video) and torch.equal(padded[82:], video[-1:].expand(3, 8, 8, 3))
    assert torch.equal(padded_mask[:82], mask) and padded_mask[82:].sum() == 0
    same, same_mask = pad_to_cover(video[:81], mask[:81], 4)
    assert same.shape[0] == 81 and same_mask.shape[0] == 81


class RecordingBackbone:
    """A stand-in training backbone (no model): latents are the frames' mean colour, and it records the image
    prompts it was asked to prepare and, per step, the window of latents and the prompt it was given."""

    name, spatial_factor = "stand-in", 1

    def __init__(self, window: int, temporal_factor: int = 1):
        self.window, self.temporal_factor = window, temporal_factor
        self.prompt_frames, self.steps = [], []

    def check_frames(self, frames, input_name, clip=True):
        assert not clip or (frames.shape[0] - 1) % self.temporal_factor == 0

    def placed(self):
        import contextlib

        return contextlib.nullcontext()

    def encode(self, video, prompts, single_frames):
        self.prompt_frames = list(prompts)
        frames = video.mean(dim=(1, 2, 3))  # [F]: frame i has the value i (see below)
        latents = torch.cat([frames[:1], frames[self.temporal_factor::self.temporal_factor]]) if self.temporal_factor > 1 \
            else frames
        return latents[:, None, None, None].expand(-1, 1, video.shape[1], video.shape[2])

    def train(self, kind, settings, spatial_only, example_shape, fit):
        backbone = self
        parameter = torch.zeros(1, requires_grad=True)

        class Session:
            parameters, device, computes_in_fp16, weight_dtype = [parameter], torch.device("cpu"), False, "float32"

            def draw_sigma(self, generator, settings):
                return torch.ones(1)

            def predict(self, latents, noise, sigma, prompt, generator):
                backbone.steps.append((latents[:, 0, 0, 0].clone(), prompt))
                return latents + parameter, latents, torch.ones(1)

        return fit(Session())


@pytest.mark.parametrize("frames, window, factor", [(97, 25, 1), (25, 25, 1), (38, 5, 4), (82, 21, 4)])
def test_each_training_step_is_a_window_conditioned_on_its_own_first_frame(frames, window, factor):
    from recapture_core.finetune import TrainSettings, train_temporal

    video = torch.arange(frames).float()[:, None, None, None].expand(frames, 4, 4, 3) / 1000  # frame i: value i/1000
    backbone = RecordingBackbone(window, factor)
    train_temporal(backbone, video.clone(), torch.ones(frames, 4, 4), TrainSettings(steps=30, seed=3))
    latent_frames = (covering_length(frames, factor) - 1) // factor + 1
    length = min(window, latent_frames)
    starts = set()
    for latents, prompt in backbone.steps:
        first_frame = backbone.prompt_frames[prompt]
        assert round(float(latents[0]) * 1000) == min(first_frame, frames - 1)  # the prompt is the window's own first frame
        assert len(latents) == length  # the model's length, whatever the clip's
        assert first_frame % factor == 0 and first_frame // factor + length <= latent_frames
        starts.add(first_frame)
    possible = latent_frames - length + 1
    assert (len(starts) > 1) == (possible > 1)  # a longer clip trains on several windows, not one
    assert sorted(starts) == backbone.prompt_frames  # only the windows trained on had a prompt prepared
