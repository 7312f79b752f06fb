"""Long clips on ComfyUI's own MODEL (nodes/_comfy_backbone.py): training on windows, in-process on tiny models.

Each temporal step trains on a window of the model's length conditioned on that window's own first
frame; what the model received is recorded by a model function wrapper on the MODEL (the way a
KSampler graph's patches reach it).
"""
from __future__ import annotations

import pytest
import torch

from comfy_model_support import moving_clip
from recapture_core.finetune import TrainSettings, train_spatial, train_temporal
from tiny_comfy_models import (make_svd_model, make_wan21_t2v, make_wan21_vae,
                               wan_text_conditioning)

H, W = 32, 32
FAST = TrainSettings(steps=4, rank=4, alpha=4.0, learning_rate=1e-2, seed=2)


@pytest.fixture(scope="module")
def svd():
    return make_svd_model(seed=0)


def recording(patcher, calls: list):
    """A clone of ``patcher`` whose model function wrapper records each call's input and conditioning."""
    patcher = patcher.clone()

    def wrapper(apply_model, args):
        c = args["c"]
        calls.append({"frames": int(args["input"].shape[0 if args["input"].ndim == 4 else 2]),
                      "concat": c.get("c_concat").detach().clone() if c.get("c_concat") is not None else None,
                      "context": c["c_crossattn"].detach().clone(), "num_video_frames": c.get("num_video_frames")})
        return apply_model(args["input"], args["timestep"], **c)

    patcher.set_model_unet_function_wrapper(wrapper)
    return patcher


def svd_positive(clip_vision, vae, first_frame, frames):
    from comfy_extras.nodes_video_model import SVD_img2vid_Conditioning

    with torch.inference_mode():
        positive, _, _ = SVD_img2vid_Conditioning().encode(clip_vision, first_frame[None], vae, W, H, frames, 127, 6, 0.0)
    return positive


def test_svd_trains_each_window_on_its_own_first_frame(backbone_module, svd, clip_vision):
    patcher, vae = svd
    frames, window = 20, 6
    anchor = moving_clip(frames, H, W)
    calls = []
    training = backbone_module.ComfyModelTraining(recording(patcher, calls), vae, svd_positive(clip_vision, vae, anchor[0], window),
                                                  "temporal", window, clip_vision)
    with torch.inference_mode(False):
        train_temporal(training, anchor, torch.ones(frames, H, W), FAST)
    assert len(calls) == FAST.steps
    with torch.inference_mode():
        own_latents = vae.encode(anchor)  # [F, 4, h, w]: frame i's latent is window i's image prompt
        own_embeds = torch.cat([clip_vision.encode_image(anchor[i:i + 1]).image_embeds for i in range(frames)])
    firsts = set()
    for call in calls:
        assert call["frames"] == window and call["num_video_frames"] == window  # SVD sees the model's length
        concat = call["concat"]
        assert concat.shape[0] == window and all(torch.equal(concat[0], c) for c in concat)
        distance = (own_latents - concat[0]).flatten(1).abs().amax(dim=1)
        first = int(distance.argmin())
        # One frame's latent (up to batched-encoding rounding), the window's first; other frames' are far off.
        assert float(distance[first]) < 1e-4 and float(distance.sort().values[1]) > 1e-2
        assert torch.allclose(call["context"][0].reshape(-1), own_embeds[first], atol=1e-5)  # and its CLIP embed
        firsts.add(first)
    assert len(firsts) > 1  # several windows, each with its own prompt


def test_svd_clip_within_one_window_keeps_the_wired_conditioning(backbone_module, svd, clip_vision):
    patcher, vae = svd
    anchor = moving_clip(6, H, W)
    positive = svd_positive(clip_vision, vae, anchor[0], 6)
    calls = []
    training = backbone_module.ComfyModelTraining(recording(patcher, calls), vae, positive, "temporal", 14)
    with torch.inference_mode(False):
        train_temporal(training, anchor, torch.ones(6, H, W), FAST)
    assert training.window_prompts is None
    wired = positive[0][1]["concat_latent_image"][0]
    assert all(torch.equal(call["concat"][0], wired) for call in calls)


def test_the_spatial_trainer_takes_a_480_frame_clip(backbone_module, svd, clip_vision):
    patcher, vae = svd
    frames = torch.rand(480, H, W, 3, generator=torch.Generator().manual_seed(0))
    positive = svd_positive(clip_vision, vae, frames[0], 14)
    with torch.inference_mode(False):
        state = train_spatial(backbone_module.ComfyModelTraining(patcher, vae, positive, "spatial"), frames,
                              TrainSettings(steps=2, rank=4, alpha=4.0, seed=1))
    assert state and all(torch.isfinite(t).all() for t in state.values())


@pytest.fixture(scope="module")
def wan_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wan")
    return (make_wan21_t2v(folder / "t2v.safetensors"), make_wan21_t2v(folder / "i2v.safetensors", image_to_video=True),
            make_wan21_vae(folder / "vae.safetensors"))


def load_wan(path, vae_path):
    import comfy.sd
    import comfy.utils

    with torch.inference_mode():
        return (comfy.sd.load_diffusion_model(str(path), model_options={"dtype": torch.float16}),
                comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(vae_path))))


def test_wan_t2v_trains_a_4k_plus_2_clip_on_windows(backbone_module, wan_files):
    model, vae = load_wan(wan_files[0], wan_files[2])
    frames = 4 * 5 + 2  # padded to 25 frames (7 latent frames), windows of 9 frames (3 latent frames)
    calls = []
    training = backbone_module.ComfyModelTraining(recording(model, calls), vae, wan_text_conditioning("a box"), "temporal", 9)
    with torch.inference_mode(False):
        state = train_temporal(training, moving_clip(frames, H, W), torch.ones(frames, H, W), FAST)
    assert all(torch.isfinite(t).all() for t in state.values())
    assert [call["frames"] for call in calls] == [3] * FAST.steps


def test_wan_i2v_conditions_each_window_on_its_own_first_frame(backbone_module, wan_files):
    from comfy_extras.nodes_wan import WanImageToVideo

    model, vae = load_wan(wan_files[1], wan_files[2])
    frames, window = 21, 9  # 6 latent frames, windows of 3
    anchor = moving_clip(frames, H, W)
    text = wan_text_conditioning("a box")
    with torch.inference_mode():
        positive = WanImageToVideo.execute(text, text, vae, W, H, frames, 1, start_image=anchor[:1]).result[0]
    calls = []
    training = backbone_module.ComfyModelTraining(recording(model, calls), vae, positive, "temporal", window)
    with torch.inference_mode(False):
        train_temporal(training, anchor, torch.ones(frames, H, W), FAST)
    expected = {}
    for start in range(0, 4):  # latent starts 0..3: the window's first frame is frame 4·start
        clip = torch.full((window, H, W, 3), 0.5)
        clip[0] = anchor[4 * start]
        with torch.inference_mode():
            expected[start] = model.model.process_latent_in(vae.encode(clip))
    seen = set()
    for call in calls:
        concat = call["concat"]  # [1, 4 mask + 16 image, 3, h, w]
        assert concat.shape[2] == 3 and call["frames"] == 3
        assert torch.equal(concat[0, :4, 0], torch.ones_like(concat[0, :4, 0]))  # first latent frame known...
        assert not concat[0, :4, 1:].any()  # ...the rest to generate
        matches = [s for s, latent in expected.items() if torch.allclose(concat[:, 4:], latent, atol=1e-4)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 1


# --- Sampling in windows: nodes/windows.py on a stock sampler (comfy.sample.sample, what KSampler calls) ---

def sample(model, positive, negative, noise, steps=2, denoise=1.0):
    import comfy.sample

    with torch.inference_mode():
        return comfy.sample.sample(model, noise, steps, 2.0, "euler", "normal", positive, negative, torch.zeros_like(noise),
                                   denoise=denoise, seed=0, disable_pbar=True)


def windows_node():
    import importlib

    from conftest import PACK_MODULE_NAME

    return importlib.import_module(f"{PACK_MODULE_NAME}.nodes.windows")


def svd_pair(clip_vision, vae, first_frame, frames):
    from comfy_extras.nodes_video_model import SVD_img2vid_Conditioning

    with torch.inference_mode():
        positive, negative, _ = SVD_img2vid_Conditioning().encode(clip_vision, first_frame[None], vae, W, H, frames, 127, 6, 0.0)
    return positive, negative


def test_svd_clip_in_one_window_samples_bit_identical_to_a_plain_ksampler(backbone_module, svd, clip_vision):
    patcher, vae = svd
    anchor = moving_clip(6, H, W)
    positive, negative = svd_pair(clip_vision, vae, anchor[0], 6)
    noise = torch.randn(6, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(1))
    model, pos, neg = windows_node().windowed(patcher, positive, negative, vae, anchor, 6, 2, clip_vision)
    assert torch.equal(sample(model, pos, neg, noise), sample(patcher, positive, negative, noise))
    model, pos, neg = windows_node().windowed(patcher, positive, negative, vae, anchor, 0, 0)  # SVD-XT's 25 frames
    assert torch.equal(sample(model, pos, neg, noise, denoise=0.5), sample(patcher, positive, negative, noise, denoise=0.5))


def test_svd_two_windows_differ_from_one_only_where_they_blend(backbone_module, svd, clip_vision):
    """One Euler step from pure noise: a frame's result is its blended prediction. Frames only the first window covers
    are exactly a plain 6-frame KSampler's on those frames; shared frames mix in the second window (own prompt)."""
    patcher, vae = svd
    anchor = moving_clip(12, H, W)
    noise = torch.randn(12, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(1))
    positive, negative = svd_pair(clip_vision, vae, anchor[0], 12)
    model, pos, neg = windows_node().windowed(patcher, positive, negative, vae, anchor, 6, 2, clip_vision)
    long = sample(model, pos, neg, noise, steps=1)  # windows start at frames 0, 4, 6
    short = sample(patcher, *svd_pair(clip_vision, vae, anchor[0], 6), noise[:6], steps=1)
    assert torch.equal(long[:4], short[:4])
    assert not torch.allclose(long[4:6], short[4:6], atol=1e-4)
    assert torch.isfinite(long).all()


def test_wan_t2v_in_windows_one_window_and_two(backbone_module, wan_files):
    model, vae = load_wan(wan_files[0], wan_files[2])
    text = wan_text_conditioning("a box")
    node = windows_node()
    video = moving_clip(21, H, W)  # 6 latent frames; windows of 9 frames = 3 latent frames, overlap 1
    noise = torch.randn(1, 16, 6, H // 8, W // 8, generator=torch.Generator().manual_seed(2))
    one, pos, neg = node.windowed(model, text, text, vae, video[:9], 9, 4)
    assert torch.equal(sample(one, pos, neg, noise[:, :, :3]), sample(model, text, text, noise[:, :, :3]))
    windowed, pos, neg = node.windowed(model, text, text, vae, video, 9, 4)  # latent windows start at 0, 2, 3
    long = sample(windowed, pos, neg, noise, steps=1)
    short = sample(model, text, text, noise[:, :, :3].contiguous(), steps=1)
    assert torch.equal(long[:, :, :2], short[:, :, :2])
    assert not torch.allclose(long[:, :, 2], short[:, :, 2], atol=1e-4)


@pytest.mark.parametrize("length", [25, 22])
def test_wan_i2v_samples_a_long_clip_with_each_windows_first_frame(backbone_module, wan_files, length):
    """A 4k+2 clip (22 frames): WanImageToVideo given the padded length (25: 7 latent frames) or the clip's own
    (22: 6 latent frames, ComfyUI's (length - 1) // 4 + 1); the windows node has prompts for either."""
    from comfy_extras.nodes_wan import WanImageToVideo

    model, vae = load_wan(wan_files[1], wan_files[2])
    video = moving_clip(22, H, W)
    text = wan_text_conditioning("a box")
    with torch.inference_mode():
        positive, negative, latent = WanImageToVideo.execute(text, text, vae, W, H, length, 1, start_image=video[:1]).result
    windowed, pos, neg = windows_node().windowed(model, positive, negative, vae, video, 9, 4)
    prompts = pos[0][1][windows_node().WINDOW_PROMPTS]
    assert prompts.latent_frames == {6, 7} and sorted(prompts.by_start) == [0, 2, 3, 4]
    out = sample(windowed, pos, neg, torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(3)))
    assert out.shape == latent["samples"].shape and torch.isfinite(out).all()


# --- Peak memory of temporal training against clip length (a child process per run) ---

# Runs in a fresh interpreter, so each run has its own high-water mark: ComfyUI's host and the pack as the server
# loads them, the tiny SVD, then one temporal training run on a moving clip. The high-water mark is reset when the
# trainer starts its steps (the clip encoded, the windows' prompts made): what it reports is the peak of the steps.
_PEAK_CHILD = r'''
import importlib, json, sys, tempfile
from pathlib import Path

repo, frames, size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sys.path[:0] = [str(repo / "scripts"), str(repo / "tests")]
import comfy_host

sys.path.insert(1, comfy_host.host_paths()["COMFYUI_DIR"])
sys.path.append(str(repo))
import comfy.cli_args

comfy.cli_args.args.cpu = True
import torch

torch.set_num_threads(1)  # one allocation pattern, whatever the machine


def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024


pack = comfy_host.import_pack("recapture_peak_child")
backbone = importlib.import_module(f"{pack.__name__}.nodes._comfy_backbone")
from comfy_extras.nodes_video_model import SVD_img2vid_Conditioning
from comfy_model_support import moving_clip
from recapture_core.finetune import TrainSettings, train_temporal
from tiny_comfy_models import load_clip_vision, make_clip_vision, make_svd_model

patcher, vae = make_svd_model(seed=0)
folder = Path(tempfile.mkdtemp())
make_clip_vision(folder)
clip_vision = load_clip_vision(folder)
anchor, mask = moving_clip(frames, size, size), torch.ones(frames, size, size)
with torch.inference_mode():
    positive = SVD_img2vid_Conditioning().encode(clip_vision, anchor[:1], vae, size, size, 25, 127, 6, 0.0)[0]
training = backbone.ComfyModelTraining(patcher, vae, positive, "temporal", 25, clip_vision)
if len(sys.argv) > 4:  # the yardstick's own check: the whole clip as one window
    training.window = 10**6
steps = {}
inner = training.train


def train(*args, **kwargs):
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark back to the current RSS
    steps["start"] = status("VmRSS")
    result = inner(*args, **kwargs)
    steps["peak"] = status("VmHWM")
    return result


training.train = train
with torch.inference_mode(False):
    train_temporal(training, anchor, mask, TrainSettings(steps=2, rank=4, alpha=4.0, seed=0))
print(json.dumps({**steps, "clip_bytes": anchor.nbytes + mask.nbytes}))
'''


def training_peak(frames: int, size: int, whole_clip: bool = False) -> dict:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    # glibc keeps freed blocks below a threshold that it raises as large blocks are freed, so the RSS of a run
    # holds memory no tensor uses, more or less by chance (a CI run once measured 8 MB past the bound). A fixed
    # threshold maps every block from 128 KiB up on its own and gives it back when freed: the RSS follows the
    # tensors that are alive.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
    done = subprocess.run([sys.executable, "-c", _PEAK_CHILD, str(repo), str(frames), str(size)]
                          + (["whole-clip"] if whole_clip else []), capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc")
def test_training_steps_peak_memory_does_not_grow_with_the_clip():
    """97 frames against 25 on the same tiny SVD (windows of 25): the steps' peak RSS grows by less than the clip's
    own tensors (the anchor and mask given, and the trainer's working copy of each: twice their bytes), where one
    window of the whole clip grows by several times that (measured: +145 MB at 64x64, clip 6 MB)."""
    size = 96
    short, long = training_peak(25, size), training_peak(97, size)
    clip_tensors = 2 * long["clip_bytes"]
    growth = (long["peak"] - long["start"]) - (short["peak"] - short["start"])
    assert growth < clip_tensors, (short, long)
