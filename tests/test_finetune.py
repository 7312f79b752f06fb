"""The backbone-independent parts of the masked fine-tuning: mask reduction, masked loss, the loop."""
from __future__ import annotations

import math

import pytest
import torch

from recapture_core.errors import ReCaptureInputError
from recapture_core.finetune import (TrainSettings, edm_loss_weight, latent_valid_mask, lognormal_sigma, masked_mse,
                                     optimise)


def test_latent_mask_is_a_min_pool_over_space():
    valid = torch.ones(2, 8, 8)
    valid[0, 0, 5] = 0.0  # one hole pixel invalidates its whole 4x4 cell
    valid[1, 7, 7] = 0.999  # partly valid counts as a hole
    cells = latent_valid_mask(valid, 4)
    assert cells.shape == (2, 2, 2)
    assert cells[0].tolist() == [[1.0, 0.0], [1.0, 1.0]]
    assert cells[1].tolist() == [[1.0, 1.0], [1.0, 0.0]]


def test_latent_mask_follows_causal_temporal_compression():
    """Wan/LTX VAEs: latent frame 0 is frame 0; latent frame i covers frames 4i-3..4i."""
    valid = torch.ones(9, 4, 4)
    valid[3, 0, 0] = 0.0  # frame 3 -> latent frame 1
    valid[8, 3, 3] = 0.0  # frame 8 -> latent frame 2
    cells = latent_valid_mask(valid, 2, 4)
    assert cells.shape == (3, 2, 2)
    assert cells[0].sum() == 4
    assert cells[1].tolist() == [[0.0, 1.0], [1.0, 1.0]]
    assert cells[2].tolist() == [[1.0, 1.0], [1.0, 0.0]]
    with pytest.raises(ValueError, match="4k\\+1"):
        latent_valid_mask(torch.ones(8, 4, 4), 2, 4)


def test_masked_cells_have_exactly_zero_gradient():
    denoised = torch.randn(2, 4, 3, 3, requires_grad=True)
    target = torch.randn(2, 4, 3, 3)
    mask = torch.ones(2, 3, 3)
    mask[1, 2, :] = 0.0
    loss = masked_mse(denoised, target, torch.tensor([2.0]), mask)
    loss.backward()
    assert torch.all(denoised.grad[1, :, 2, :] == 0)
    assert torch.all(denoised.grad[0] != 0)
    # the mean over valid cells and channels, times the weight
    expected = 2.0 * ((denoised.detach() - target) ** 2 * mask[:, None]).sum() / (mask.sum() * 4)
    assert math.isclose(float(loss), float(expected), rel_tol=1e-6)


def test_edm_weight_and_sigma_range():
    assert float(edm_loss_weight(torch.tensor(1.0))) == pytest.approx(2.0)
    assert float(edm_loss_weight(torch.tensor(2.0), 0.5)) == pytest.approx((4 + 0.25) / 1.0)
    generator = torch.Generator().manual_seed(0)
    drawn = torch.cat([lognormal_sigma(generator, TrainSettings(), 0.002, 3.0) for _ in range(200)])
    assert drawn.min() >= 0.002 and drawn.max() <= 3.0 and (drawn == 3.0).any()


class _Quadratic:
    """A session whose 'model' predicts a parameter vector: training must pull it to the target."""

    device = torch.device("cpu")
    computes_in_fp16 = False
    weight_dtype = "float32"

    def __init__(self, value=0.0):
        self.weight = torch.nn.Parameter(torch.full((1, 1, 2, 2), value))
        self.parameters = [self.weight]

    def draw_sigma(self, generator, settings):
        return torch.ones(1)

    def predict(self, latents, noise, sigma, prompt, generator):
        return self.weight.expand_as(latents), latents, torch.ones(1)


def test_optimise_lowers_the_loss_and_reports_progress():
    session, seen = _Quadratic(), []
    example = (torch.ones(1, 1, 2, 2), 0, None)
    losses = optimise(session, TrainSettings(steps=30, learning_rate=0.1), lambda: example, torch.Generator(),
                      progress=lambda step, total, loss: seen.append((step, total)))
    assert losses[-1] < 0.1 * losses[0]
    assert seen[-1] == (30, 30) and len(seen) == 30


def test_optimise_stops_on_a_non_finite_loss():
    session = _Quadratic(float("nan"))
    with pytest.raises(ReCaptureInputError, match="diverged.*step 1 of 5"):
        optimise(session, TrainSettings(steps=5), lambda: (torch.ones(1, 1, 2, 2), 0, None), torch.Generator())


def test_interrupt_is_checked_every_step():
    calls = []

    def interrupt():
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        optimise(_Quadratic(), TrainSettings(steps=10), lambda: (torch.ones(1, 1, 2, 2), 0, None), torch.Generator(),
                 check_interrupt=interrupt)
    assert len(calls) == 3
