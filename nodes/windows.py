"""Context windows whose every window is conditioned on its own first frame, for a stock KSampler on ComfyUI's MODEL.

ComfyUI 0.3.75's context windows (``comfy/context_windows.py``) run the model on overlapping windows
of the latent and fuse them, but pass a clip-wide image prompt whole: SVD's concat latent (the clip's
first frame for every window) and Wan image-to-video's first-frame latent (whose frame count then no
longer matches a window). This node patches the MODEL with the same handler class, given:

* the windows and blend weights of ``recapture_core/windows.py`` (those of the diffusers sampler);
* per window, the image prompt its own first frame makes (``_comfy_backbone.window_prompt``, as
  SVD_img2vid_Conditioning / WanImageToVideo make it), prepared here once, before sampling, and
  rebuilt into the model's conditioning by the model's own ``extra_conds`` for each window;
* every other frame-shaped conditioning tensor sliced to the window.

A clip that fits in one window never reaches the handler: the KSampler runs exactly as without it.
"""
from __future__ import annotations

import torch

from ..recapture_core.errors import ReCaptureInputError
from ..recapture_core.windows import covering_length, latent_length, window_starts, window_weights
from . import _meta_batch

WINDOW_PROMPTS = "recapture_window_prompts"  # the key of a conditioning entry's per-window image prompts


class WindowPrompts:
    """Per window start (in latent frames) the entries that replace a conditioning entry's image prompt.

    A plain object, not a dict or tensor, so ComfyUI's conditioning code hands it on untouched."""

    def __init__(self, by_start: dict[int, dict], latent_frames: set[int]):
        self.by_start, self.latent_frames = by_start, latent_frames  # latent_frames: the latent lengths it covers


def _handler_class():
    import comfy.context_windows as cw

    class OwnFirstFrameWindows(cw.IndexListContextHandler):
        """Windows of ``recapture_core.windows``; each window's image prompt is its own first frame's."""

        def __init__(self, window: int, overlap: int, dim: int):
            super().__init__(cw.ContextSchedule("recapture_windows", self.schedule),
                             cw.ContextFuseMethod("recapture_linear", self.weights),
                             context_length=window, context_overlap=overlap, dim=dim)
            self.model = None

        def schedule(self, num_frames, handler, model_options):
            starts = window_starts(num_frames, self.context_length, self.context_overlap)
            return [list(range(start, start + self.context_length)) for start in starts]

        def weights(self, length, full_length, idxs, **kwargs):
            starts = window_starts(full_length, self.context_length, self.context_overlap)
            table = window_weights(full_length, self.context_length, starts)
            return table[starts.index(idxs[0]), idxs[0]:idxs[0] + length].tolist()

        def set_step(self, timestep, model_options):
            # These windows do not change from step to step; the stock lookup of the step also fails for SVD,
            # whose timestep has one entry per frame.
            self._step = 0

        def execute(self, calc_cond_batch, model, conds, x_in, timestep, model_options):
            self.model = model  # its extra_conds rebuilds each window's conditioning
            return super().execute(calc_cond_batch, model, conds, x_in, timestep, model_options)

        def get_resized_cond(self, cond_in, x_in, window, device=None):
            import comfy.conds
            import comfy.samplers

            resized = super().get_resized_cond(cond_in, x_in, window, device)
            if resized is None:
                return None
            frames = x_in.size(self.dim)
            sub_x = window.get_tensor(x_in, device)
            out = []
            for original, entry in zip(cond_in, resized):
                prompts = original.get(WINDOW_PROMPTS)
                if prompts is not None:
                    start = window.index_list[0]
                    if frames not in prompts.latent_frames or start not in prompts.by_start:
                        raise ReCaptureInputError(
                            "video", f"gives image prompts for {' or '.join(map(str, sorted(prompts.latent_frames)))} "
                            f"latent frames, but the sampled "
                            f"latent has {frames}", "Give the windows node the clip the latent was made for (the same "
                            "frame count as the conditioning node's video_frames / length).")
                    rebuilt = {**original, **prompts.by_start[start]}
                    entry = {**entry, "model_conds": comfy.samplers.encode_model_conds(
                        self.model.extra_conds, [rebuilt], sub_x, sub_x.device, "positive")[0]["model_conds"]}
                else:
                    # Stock slicing skips model conds shaped like the latent on the frame axis (SVD's zero concat of
                    # the negative, Wan's first-frame latent): slice them to the window here.
                    model_conds = dict(entry.get("model_conds", {}))
                    for key, value in model_conds.items():
                        tensor = getattr(value, "cond", None)
                        if (isinstance(value, comfy.conds.CONDNoiseShape) and isinstance(tensor, torch.Tensor)
                                and tensor.ndim > self.dim and tensor.size(self.dim) == frames):
                            model_conds[key] = value._copy_with(window.get_tensor(tensor, device))
                    entry = {**entry, "model_conds": model_conds}
                out.append(entry)
            return out

    return OwnFirstFrameWindows


def windowed(model, positive, negative, vae, video, window: int, overlap: int, clip_vision=None):
    """``(model, positive, negative)``: ``model`` patched to sample in windows, the conditioning tagged with each
    window's image prompt from ``video [F, H, W, 3]`` (``window`` and ``overlap`` in frames; 0: the model's own
    length, a quarter of the window)."""
    import comfy.context_windows

    from ._comfy_backbone import NATIVE_FRAMES, family_of, window_prompt

    family = family_of(model)
    family.check_inputs(model, vae, positive, single_frames=False)  # the trainers' checks, naming vae or positive
    factor = int(vae.temporal_compression_decode() or 1)
    frames = window or NATIVE_FRAMES[family.name]
    latent_window = latent_length(frames, factor)
    latent_overlap = -(-(overlap or frames // 4) // factor)
    if latent_window < 2:
        raise ReCaptureInputError("window", f"covers {latent_window} latent frame, too few to blend",
                                  f"Use 0 for the model's own length ({NATIVE_FRAMES[family.name]} frames).")
    if latent_overlap >= latent_window:
        raise ReCaptureInputError("overlap", f"must be below the window ({frames} frames), got {overlap}",
                                  f"Use about a quarter of the window, e.g. {max(1, frames // 4)}, or 0 for that.")
    # A latent for a clip whose length the VAE cannot take is made one frame shorter by ComfyUI's latent nodes
    # (WanImageToVideo, EmptyHunyuanLatentVideo: (length - 1) // 4 + 1) or padded to cover it: prompts for both.
    latent_lengths = {latent_length(int(video.shape[0]), factor), latent_length(covering_length(int(video.shape[0]), factor), factor)}
    starts = sorted({start for frames in latent_lengths for start in window_starts(frames, latent_window, latent_overlap)})
    latent_frames = max(latent_lengths)
    # A start past the clip's last frame (a padded end) takes the last frame as its prompt.
    firsts = {start: min(start * factor, int(video.shape[0]) - 1) for start in starts}

    @torch.inference_mode()  # as every node runs; the prompts are made once, for sampling only
    def tagged(conditioning):
        out = []
        for tensor, extras in conditioning:
            image = extras.get("concat_latent_image")
            if latent_frames > latent_window and isinstance(image, torch.Tensor) and image.any():
                by_start = {start: window_prompt(family, vae, extras, video[first:first + 1], latent_window, factor,
                                                 clip_vision, seed=first) for start, first in firsts.items()}
                extras = {**extras, WINDOW_PROMPTS: WindowPrompts(by_start, latent_lengths)}
            out.append([tensor, extras])
        return out

    patched = model.clone()
    patched.model_options["context_handler"] = _handler_class()(latent_window, latent_overlap,
                                                                2 if family.frames_in_time else 0)
    comfy.context_windows.create_prepare_sampling_wrapper(patched)  # memory estimates for one window, not the clip
    return patched, tagged(positive), tagged(negative)


class ReCaptureContextWindows:
    CATEGORY = "ReCapture/sample"
    FUNCTION = "patch"
    META_BATCH = _meta_batch.SAMPLING  # the windows are of the whole clip; a Meta Batch chunk is refused
    RETURN_TYPES = ("MODEL", "CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("model", "positive", "negative")
    OUTPUT_TOOLTIPS = ("The MODEL sampling in windows: connect it to the KSampler.",
                       "The positive conditioning with each window's image prompt: connect it to the KSampler.",
                       "The negative conditioning, likewise.")
    DESCRIPTION = ("Any clip length on a stock KSampler: the model runs on overlapping windows of its own length "
                   "(SVD-XT 25 frames, Wan 81), each conditioned on its own first frame of 'video' (not the clip's "
                   "first), and their predictions are blended with linear weights that sum to 1 on every frame. "
                   "Works for sampling and for SDEdit (denoise < 1) alike; a clip that fits in one window samples "
                   "exactly as without this node.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "SVD (Image Only Checkpoint Loader) or Wan (Load Diffusion Model), with "
                                "any LoRAs already applied."}),
            "positive": ("CONDITIONING", {"tooltip": "From SVD_img2vid_Conditioning / WanImageToVideo (or the text "
                                          "encoder for Wan T2V), made for the whole clip."}),
            "negative": ("CONDITIONING", {"tooltip": "The negative of the same node."}),
            "vae": ("VAE", {"tooltip": "The VAE of the model's loader: encodes each window's first frame."}),
            "video": ("IMAGE", {"tooltip": "The clip whose frames start the windows: the anchor video for sampling, "
                                "the sampled frames for SDEdit. The latent's frame count."}),
            "window": ("INT", {"default": 0, "min": 0, "max": 1024, "tooltip": "Frames per window; 0: the model's own "
                               "length (SVD-XT 25: give 14 for svd.safetensors; Wan 81). Wan rounds down to 4k+1."}),
            "overlap": ("INT", {"default": 0, "min": 0, "max": 1024, "tooltip": "Frames shared by neighbouring "
                                "windows, blended linearly; 0: a quarter of the window. Wan rounds up to a multiple "
                                "of 4."}),
        }, "optional": {
            "clip_vision": ("CLIP_VISION", {"tooltip": "SVD only, optional: gives each window the CLIP image embed of "
                                            "its own first frame too (without it: the clip's first frame's)."}),
        }}

    def patch(self, model, positive, negative, vae, video, window, overlap, clip_vision=None):
        return windowed(model, positive, negative, vae, video, window, overlap, clip_vision)


NODE_CLASS_MAPPINGS = {"ReCaptureContextWindows": ReCaptureContextWindows}
NODE_DISPLAY_NAME_MAPPINGS = {"ReCaptureContextWindows": "Context Windows, own first frames (ReCapture)"}
