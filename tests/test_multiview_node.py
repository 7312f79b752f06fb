"""MultiviewAnchor in-process on ComfyUI's own model objects (tiny random weights, see tiny_comfy_models).

Stable Zero123 comes through ``comfy.sd.load_checkpoint_guess_config`` (what Image Only
Checkpoint Loader calls), SV3D_p from ComfyUI's model class with a tiny config.
"""
from __future__ import annotations

import pytest
import torch

from helpers import Interrupted, interrupt_on_call
from recapture_core.camera.presets import preset_trajectory
from recapture_core.depth import DepthMaps, central_median_depth
from recapture_core.warp import warp_video
from tiny_comfy_models import load_clip_vision, make_clip_vision, make_stable_zero123_checkpoint, make_sv3d_model

F, H, W = 3, 24, 32


@pytest.fixture(scope="module")
def comfy_models(tmp_path_factory):
    import comfy.sd

    folder = tmp_path_factory.mktemp("multiview")
    loaded = {}
    with torch.inference_mode():  # as ComfyUI runs every node
        for name, pose in (("zero123", True), ("plain", False)):
            path = make_stable_zero123_checkpoint(folder / f"{name}.safetensors", pose_conditioned=pose)
            loaded[name] = comfy.sd.load_checkpoint_guess_config(str(path), output_vae=True, output_clip=False,
                                                                 output_clipvision=True)
        make_clip_vision(folder / "clip_vision")
        loaded["clip_vision"] = load_clip_vision(folder / "clip_vision")
        loaded["sv3d"] = make_sv3d_model()
    return loaded


@pytest.fixture(scope="module")
def node(pack):
    return pack.NODE_CLASS_MAPPINGS["ReCaptureMultiviewAnchor"]()


@pytest.fixture(scope="module")
def clip():
    generator = torch.Generator().manual_seed(3)
    frames = torch.rand(F, H, W, 3, generator=generator)
    depth = torch.full((F, H, W), 3.0)
    depth[:, 6:18, 10:22] = 1.5  # a near box: the orbit uncovers the wall behind it
    return frames, DepthMaps(depth, "metric")


SETTINGS = dict(mode="fuse with warp", hole_threshold=0.35, resolution=32, seed=7, steps=2, cfg=3.0,
                sampler_name="euler", scheduler="normal", source_elevation=0.0, orbit_frames=3)


def run(node, models, frames, trajectory, model="zero123", **overrides):
    checkpoint = models[model] if model != "sv3d" else (models["sv3d"][0], None, models["sv3d"][1], None)
    kwargs = dict(SETTINGS, clip_vision=models["clip_vision"], vae=checkpoint[2])
    kwargs.update(overrides)
    with torch.inference_mode():
        return node.anchor(frames, trajectory, checkpoint[0], **kwargs)


def orbit(amount=40.0, frames=F):
    return preset_trajectory("orbit left", amount, frames, "linear", subject_distance=3.0)


def test_the_tiny_checkpoint_loads_as_stable_zero123_and_the_plain_one_does_not(comfy_models):
    import comfy.model_base

    assert isinstance(comfy_models["zero123"][0].model, comfy.model_base.Stable_Zero123)
    assert comfy_models["zero123"][3] is None  # no CLIP vision in the file, as ComfyUI reports for any such checkpoint
    assert not isinstance(comfy_models["plain"][0].model, (comfy.model_base.Stable_Zero123, comfy.model_base.SV3D_p))


def test_fusion_keeps_exact_warp_pixels_and_generates_the_rest(node, comfy_models, clip):
    frames, depth = clip
    anchor, valid, hole, report, generated = run(node, comfy_models, frames, orbit(), depth=depth)
    reference = warp_video(frames, depth.as_depth(), orbit().scaled_to_subject_distance(central_median_depth(depth)), edge_threshold=0.05)
    assert torch.equal(valid, reference.valid_mask)
    keep = valid > 0
    assert torch.equal(anchor[keep], reference.anchor[keep])
    assert torch.equal(valid + generated + hole, torch.ones(F, H, W))
    assert hole.sum() == 0 and generated[1:].sum() > 0
    fill = generated > 0
    # every other pixel is the model's view of that frame: the same as the generator alone makes it
    generator_only = run(node, comfy_models, frames, orbit(), mode="generator only")[0]
    assert torch.equal(anchor[fill], generator_only[fill]) and not torch.equal(anchor[fill], reference.anchor[fill])
    assert "stable_zero123" in report and "3 of 3 frames generated" in report


def test_match_subject_distance_off_warps_the_trajectory_as_given(node, comfy_models, clip):
    frames, depth = clip
    trajectory = preset_trajectory("truck right", 0.3, F, "linear", subject_distance=3.0)
    valid = run(node, comfy_models, frames, trajectory, depth=depth, match_subject_distance=False, steps=1)[1]
    as_given = warp_video(frames, depth.as_depth(), trajectory, edge_threshold=0.05).valid_mask
    scaled = warp_video(frames, depth.as_depth(), trajectory.scaled_to_subject_distance(central_median_depth(depth)),
                        edge_threshold=0.05).valid_mask
    assert torch.equal(valid, as_given) and not torch.equal(valid, scaled)


def test_resolution_zero_is_the_models_training_size(node, comfy_models, clip):
    frames, _ = clip
    report = run(node, comfy_models, frames[:1], orbit(frames=1), mode="generator only", resolution=0, steps=1)[3]
    assert "generated at 256x192" in report  # Stable Zero123: 256 on the longer side, the frame's 4:3 kept


def test_same_seed_same_views_other_seed_other_views(node, comfy_models, clip):
    frames, _ = clip
    first = run(node, comfy_models, frames, orbit(), mode="generator only")[0]
    again = run(node, comfy_models, frames, orbit(), mode="generator only")[0]
    other = run(node, comfy_models, frames, orbit(), mode="generator only", seed=8)[0]
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_the_pose_reaches_the_model(node, comfy_models, clip):
    frames, _ = clip
    left = run(node, comfy_models, frames, orbit(40.0), mode="generator only")[0]
    right = run(node, comfy_models, frames, preset_trajectory("orbit right", 40.0, F, "linear", subject_distance=3.0),
                mode="generator only")[0]
    assert torch.equal(left[0], right[0])  # frame 0 is the same (zero) move
    assert not torch.equal(left[-1], right[-1])


def test_switch_mode_generates_only_frames_with_many_holes(node, comfy_models, clip):
    frames, depth = clip
    trajectory = orbit(40.0)
    ratios = warp_video(frames, depth.as_depth(), trajectory.scaled_to_subject_distance(central_median_depth(depth)), edge_threshold=0.05).hole_ratio
    threshold = float(ratios[1] + ratios[2]) / 2  # between frames 1 and 2
    _, valid, hole, report, generated = run(node, comfy_models, frames, trajectory, depth=depth,
                                            mode="switch by hole ratio", hole_threshold=threshold)
    assert generated[:2].sum() == 0 and generated[2].sum() > 0
    assert torch.equal(hole[1], 1 - valid[1]) and hole[2].sum() == 0
    assert "1 of 3 frames generated" in report


def test_sv3d_sweeps_to_the_target_view(node, comfy_models, clip):
    frames, depth = clip
    anchor, valid, hole, report, generated = run(node, comfy_models, frames, orbit(), model="sv3d", depth=depth,
                                                 source_elevation=10.0, orbit_frames=3)
    assert anchor.shape == (F, H, W, 3) and torch.isfinite(anchor).all()
    assert torch.equal(valid + generated + hole, torch.ones(F, H, W)) and "sv3d_p" in report


@pytest.mark.parametrize("change, input_name, problem", [
    (dict(model="plain"), "model", "takes no camera pose"),
    (dict(clip_vision=None), "clip_vision", "no CLIP vision"),
    (dict(vae=None), "vae", "no VAE"),
    (dict(depth=None), "depth", "no depth is connected"),
    (dict(trajectory_frames=F + 2), "trajectory", "5"),
    (dict(model="sv3d", orbit_frames=1), "orbit_frames", "outside 2..64"),
])
def test_bad_input_is_named_before_any_work(node, comfy_models, clip, monkeypatch, change, input_name, problem):
    import comfy.sample

    frames, depth = clip
    calls = []
    monkeypatch.setattr(comfy.sample, "sample", lambda *a, **k: calls.append(1))
    trajectory = orbit(frames=change.pop("trajectory_frames", F))
    kwargs = dict(depth=depth)
    kwargs.update(change)
    # the trajectory comes from this test's copy of the core, the rest from the pack's: match the class by name
    with pytest.raises(Exception, match=problem) as raised:
        run(node, comfy_models, frames, trajectory, **kwargs)
    assert type(raised.value).__name__ == "ReCaptureInputError" and raised.value.input_name == input_name and not calls


def test_interrupt_stops_between_sampling_steps(node, comfy_models, clip, monkeypatch, pack):
    import comfy.sample

    frames, _ = clip
    real_sample, calls = comfy.sample.sample, []
    monkeypatch.setattr(comfy.sample, "sample", lambda *a, **k: (calls.append(1), real_sample(*a, **k))[1])
    monkeypatch.setattr(pack.nodes.multiview._comfy, "check_interrupt", interrupt_on_call(4))
    with pytest.raises(Interrupted):
        run(node, comfy_models, frames, orbit(), mode="generator only", steps=2)
    # checks: frame 0 start, its 2 steps, frame 1 start -> stops before frame 1 samples
    assert len(calls) == 1


def test_a_meta_batch_chunk_takes_its_window_of_the_path_at_the_first_chunks_scale(node, comfy_models, clip, pack):
    import importlib

    meta_batch = importlib.import_module(f"{pack.__name__}.nodes._meta_batch")
    frames, depth = clip
    path = orbit(frames=3 * F)  # the whole clip: three chunks of F frames
    nearer = DepthMaps(depth.values * 0.5, "metric")  # the first chunk's scene, half as far away
    run(node, comfy_models, frames, path, depth=nearer, meta_batch_chunk=meta_batch.Chunk("m", 0, F, "mv"))
    _, valid, *_ = run(node, comfy_models, frames, path, depth=depth, meta_batch_chunk=meta_batch.Chunk("m", 1, F, "mv"))
    window = path.window(F, F).scaled_to_subject_distance(central_median_depth(nearer))
    assert torch.equal(valid, warp_video(frames, depth.as_depth(), window, edge_threshold=0.05).valid_mask)
    own_scale = path.window(F, F).scaled_to_subject_distance(central_median_depth(depth))
    assert not torch.equal(valid, warp_video(frames, depth.as_depth(), own_scale, edge_threshold=0.05).valid_mask)
    with pytest.raises(Exception, match="needs frames 6..8"):
        run(node, comfy_models, frames, orbit(frames=2 * F), depth=depth, meta_batch_chunk=meta_batch.Chunk("m", 2, F, "mv"))
