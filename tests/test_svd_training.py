"""SVD backbone, peft LoRA set-up and the two trainers, on a tiny SVD loaded through the real loader."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from recapture_core.errors import ReCaptureInputError
from recapture_core.svd.backbone import load_diffusers_svd
from recapture_core.svd.conditioning import temporal_layers_off
from recapture_core.svd.lora import SPATIAL_TARGETS, TEMPORAL_TARGETS, target_modules
from recapture_core.svd.lora_files import load_lora, save_lora
from recapture_core.svd.train import TrainSettings, train_spatial_lora, train_temporal_lora
from svd_support import clip_loss, state_fingerprint
from helpers import Interrupted, interrupt_on_call
from tiny_models import make_svd_folder

FAST = TrainSettings(steps=2, rank=4, alpha=4.0, learning_rate=1e-3, seed=3)


@pytest.fixture(scope="module")
def svd_folder(tmp_path_factory):
    return make_svd_folder(tmp_path_factory.mktemp("diffusers") / "tiny-svd")


@pytest.fixture(scope="module")
def backbone(svd_folder):
    return load_diffusers_svd(svd_folder, "fp32")


def smooth_clip(frames=4, size=32, seed=0):
    """A small moving gradient pattern: learnable, unlike white noise."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    clip = []
    for t in range(frames):
        phase = 0.15 * t + 0.1 * seed
        clip.append(torch.stack([0.5 + 0.4 * torch.sin(6 * x + phase), 0.5 + 0.4 * torch.cos(5 * y - phase),
                                 0.5 + 0.3 * torch.sin(4 * (x + y) + phase)], -1))
    return torch.stack(clip)


def backbone_state(backbone):
    unet = backbone.unet
    return (state_fingerprint(unet), unet.training, bool(unet.is_gradient_checkpointing),
            sorted(n for n, p in unet.named_parameters() if p.requires_grad), hasattr(unet, "peft_config"))


def test_targets_are_the_temporal_and_the_spatial_attention_projections(backbone):
    temporal, spatial = target_modules(backbone.unet, "temporal"), target_modules(backbone.unet, "spatial")
    assert temporal and spatial and not set(temporal) & set(spatial)
    assert all("temporal_transformer_blocks" in n and n.split(".")[-1] in ("to_q", "to_k", "to_v", "0") for n in temporal)
    assert all(".transformer_blocks." in n and ".attn1." in n for n in spatial)
    # Per transformer: temporal attn1's 4 projections + attn2's to_v, to_out (its to_q/to_k see one token and cannot
    # learn: tests/test_lora_targets.py); spatial: attn1's 4.
    assert len(temporal) == 6 * len(spatial) // 4
    assert TEMPORAL_TARGETS != SPATIAL_TARGETS


def test_spatial_training_reduces_the_loss(backbone):
    clip = smooth_clip()
    before = clip_loss(backbone, clip, temporal_off=True)
    lora = train_spatial_lora(backbone, clip, TrainSettings(steps=40, rank=4, alpha=4.0, learning_rate=1e-2, seed=1,
                                                            frames_per_step=4))
    after = clip_loss(backbone, clip, lora, temporal_off=True)
    assert after < 0.9 * before, (before, after)  # measured: 0.614 -> 0.502
    assert lora.kind == "spatial" and lora.steps == 40 and len(lora.settings["losses"]) == 40


def test_temporal_training_reduces_the_masked_loss(backbone):
    clip = smooth_clip(frames=5)
    valid = torch.ones(5, 32, 32)
    valid[:, :, 24:] = 0.0
    before = clip_loss(backbone, clip, valid_mask=valid)
    lora = train_temporal_lora(backbone, clip, valid, TrainSettings(steps=40, rank=4, alpha=4.0, learning_rate=1e-2, seed=1))
    after = clip_loss(backbone, clip, lora, valid_mask=valid)
    assert after < 0.9 * before, (before, after)


def test_invalid_pixels_have_exactly_no_effect_on_training(backbone):
    clip = smooth_clip(frames=4)
    valid = torch.ones(4, 32, 32)
    valid[:, 8:20, 10:26] = 0.0
    other = clip.clone()
    other[valid == 0] = torch.rand(int((valid == 0).sum()), 3, generator=torch.Generator().manual_seed(9))
    a = train_temporal_lora(backbone, clip, valid, FAST)
    b = train_temporal_lora(backbone, other, valid, FAST)
    assert a.state_dict.keys() == b.state_dict.keys()
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    # ...while a change to valid pixels does change the result: the comparison above can fail.
    changed = clip.clone()
    changed[:, 0:4, 0:4] = 0.0
    c = train_temporal_lora(backbone, changed, valid, FAST)
    assert any(not torch.equal(a.state_dict[k], c.state_dict[k]) for k in a.state_dict)


def test_an_all_invalid_mask_is_rejected_up_front(backbone):
    calls = []
    with pytest.raises(ReCaptureInputError, match="no valid region") as err:
        train_temporal_lora(backbone, smooth_clip(), torch.zeros(4, 32, 32), FAST,
                            progress=lambda *a: calls.append(a))
    assert err.value.input_name == "valid_mask" and calls == []
    checkerboard = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2  # valid pixels, but no valid 2x2 block
    with pytest.raises(ReCaptureInputError, match="no valid region"):
        train_temporal_lora(backbone, smooth_clip(), checkerboard.float().expand(4, 32, 32), FAST)


def test_with_temporal_layers_off_a_frame_ignores_the_other_frames(backbone):
    unet = backbone.unet
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 8, 8, 8, generator=generator)
    changed = sample.clone()
    changed[:, 3] = torch.randn(1, 8, 8, 8, generator=generator)
    args = dict(timestep=torch.tensor([0.5]), encoder_hidden_states=torch.randn(1, 1, 32, generator=generator),
                added_time_ids=torch.tensor([[6.0, 127.0, 0.02]]))
    with torch.no_grad():
        with temporal_layers_off(unet) as hooked:
            off_a, off_b = unet(sample, **args).sample, unet(changed, **args).sample
        on_a, on_b = unet(sample, **args).sample, unet(changed, **args).sample
    assert hooked > 0
    assert torch.equal(off_a[:, :3], off_b[:, :3])
    assert not torch.allclose(on_a[:, 0], on_b[:, 0])  # with temporal layers on, frames talk to each other


def test_the_backbone_is_left_exactly_as_it_was_on_success_error_and_interrupt(backbone):
    before = backbone_state(backbone)
    spatial = train_spatial_lora(backbone, smooth_clip(), FAST)
    assert backbone_state(backbone) == before

    def fail_on_second_step(step, total, loss):
        if step == 2:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        train_temporal_lora(backbone, smooth_clip(), torch.ones(4, 32, 32), FAST, spatial_lora=spatial,
                            progress=fail_on_second_step)
    assert backbone_state(backbone) == before

    with pytest.raises(Interrupted):
        train_spatial_lora(backbone, smooth_clip(), TrainSettings(steps=5, rank=4, alpha=4.0), check_interrupt=interrupt_on_call(2))
    assert backbone_state(backbone) == before


def test_save_and_load_round_trip_exactly(backbone, tmp_path):
    lora = train_spatial_lora(backbone, smooth_clip(), FAST)
    path = tmp_path / "loras" / "spatial.safetensors"
    save_lora(lora, path)
    back = load_lora(path)
    assert back.state_dict.keys() == lora.state_dict.keys()
    assert all(torch.equal(back.state_dict[k], lora.state_dict[k]) for k in lora.state_dict)
    assert (back.kind, back.rank, back.alpha, back.targets, back.backbone_architecture, back.steps, back.layers_per_block) == \
           (lora.kind, lora.rank, lora.alpha, lora.targets, lora.backbone_architecture, lora.steps, lora.layers_per_block)
    assert back.settings["losses"] == lora.settings["losses"]
    assert not list(path.parent.glob("*.partial"))


@pytest.mark.parametrize("make, needle, name", [
    (lambda: (torch.rand(4, 30, 32, 3), torch.ones(4, 30, 32)), "multiples of 4", "anchor"),
    (lambda: (torch.rand(1, 32, 32, 3), torch.ones(1, 32, 32)), "single frame", "anchor"),
    (lambda: (torch.rand(4, 32, 32, 3), torch.ones(4, 32, 28)), "is 28x32", "valid_mask"),
    (lambda: (torch.rand(4, 32, 32, 3), torch.ones(3, 32, 32)), "has 3 frames but anchor has 4", "valid_mask"),
    # A single mask is refused here (every anchor frame has its own holes), and the fix does not offer it.
    (lambda: (torch.rand(4, 32, 32, 3), torch.ones(1, 32, 32)), "has 1 frames but anchor has 4. Give one mask per frame "
     "of anchor (4): the mask made together with it.", "valid_mask"),
])
def test_bad_training_input_is_rejected(backbone, make, needle, name):
    anchor, valid = make()
    with pytest.raises(ReCaptureInputError) as err:
        train_temporal_lora(backbone, anchor, valid, FAST)
    assert needle in str(err.value) and err.value.input_name == name


def test_a_lora_for_another_backbone_is_rejected(backbone, tmp_path):
    other = load_diffusers_svd(make_svd_folder(tmp_path / "svd-xt-like", num_frames=25), "fp32")
    foreign = train_spatial_lora(other, smooth_clip(), FAST)
    with pytest.raises(ReCaptureInputError, match="trained for another backbone") as err:
        train_temporal_lora(backbone, smooth_clip(), torch.ones(4, 32, 32), FAST, spatial_lora=foreign)
    assert err.value.input_name == "spatial_lora"


def test_missing_model_files_say_what_to_put_where(svd_folder, tmp_path):
    broken = tmp_path / "broken-svd"
    shutil.copytree(svd_folder, broken)
    shutil.rmtree(broken / "unet")
    with pytest.raises(ReCaptureInputError, match="lacks the component folders unet") as err:
        load_diffusers_svd(broken, "fp32")
    assert "model_index.json with unet/, vae/" in str(err.value) and err.value.hint == "svd_diffusers"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReCaptureInputError, match="no model_index.json"):
        load_diffusers_svd(tmp_path / "empty", "fp32")
    index = json.loads((svd_folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableVideoDiffusionPipeline"


def test_nodes_load_train_and_sample_under_comfyuis_inference_mode(pack, svd_folder, monkeypatch):
    """ComfyUI executes every node inside torch.inference_mode(): inputs and a loader's weights are made there.
    The nodes leave it in one place (nodes/_comfy.autograd_enabled); the core assumes normal autograd."""
    import folder_paths

    monkeypatch.setitem(folder_paths.folder_names_and_paths, "diffusers", ([str(svd_folder.parent)], {"folder"}))
    nodes = pack.NODE_CLASS_MAPPINGS
    widgets = dict(steps=2, learning_rate=1e-3, rank=4, alpha=4.0, seed=0, gradient_checkpointing=True,
                   mixed_precision="auto")
    with torch.inference_mode():
        clip = smooth_clip()
        (backbone,) = nodes["ReCaptureSVDLoader"]().load(model=svd_folder.name, dtype="fp16")
        spatial, _ = nodes["ReCaptureSpatialLoRATrain"]().train(backbone=backbone, frames=clip, frames_per_step=2, **widgets)
        temporal, report = nodes["ReCaptureMaskedTemporalLoRATrain"]().train(
            backbone=backbone, anchor=clip, valid_mask=torch.ones(4, 32, 32), spatial_lora=spatial, **widgets)
        (frames,) = nodes["ReCaptureDualLoRASample"]().sample(
            backbone=backbone, anchor=clip, temporal_lora=temporal, spatial_lora=spatial, temporal_strength=1.0,
            spatial_strength=1.0, start_strength=1.0, seed=0, steps=2, min_guidance=1.0, max_guidance=3.0,
            motion_bucket_id=127, fps=7, noise_aug_strength=0.02, decode_chunk_size=4, window=0, overlap=1)
    assert temporal.steps == 2 and all(torch.isfinite(v).all() for v in temporal.state_dict.values())
    assert "temporal LoRA" in report and frames.shape == clip.shape and torch.isfinite(frames).all()


def test_custom_targets_are_honoured_and_bad_ones_rejected(backbone):
    only_q = r".*temporal_transformer_blocks\.\d+\.attn1\.to_q"
    lora = train_temporal_lora(backbone, smooth_clip(), torch.ones(4, 32, 32),
                               TrainSettings(steps=1, rank=4, alpha=4.0, targets=only_q))
    assert lora.targets == only_q
    assert {k.rsplit(".lora_", 1)[0] for k in lora.state_dict} == set(target_modules(backbone.unet, "temporal", only_q))
    assert all(k.split(".lora_")[0].endswith("attn1.to_q") for k in lora.state_dict)
    for bad, needle in (("[", "not a valid regular expression"), ("nothing_like_this", "matches no Linear module")):
        with pytest.raises(ReCaptureInputError, match=needle) as err:
            train_spatial_lora(backbone, smooth_clip(), TrainSettings(steps=1, rank=4, targets=bad))
        assert err.value.input_name == "targets"
