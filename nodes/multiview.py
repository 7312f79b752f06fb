"""MultiviewAnchor: the anchor video for large orbits, from ComfyUI's pose-conditioned novel-view models.

The models are ComfyUI's own (Stable Zero123, SV3D_p through Image Only Checkpoint Loader); their
conditioning is built by ComfyUI's own ``StableZero123_Conditioning`` / ``SV3D_Conditioning``
nodes and sampled with ``comfy.sample``, so the pose embedding is exactly what ComfyUI users get
from those nodes. Pose conversion, mode selection and fusion are in ``recapture_core.multiview``.
"""
from __future__ import annotations

import logging

import torch

from ..recapture_core.errors import ReCaptureInputError
from ..recapture_core.multiview import (MULTIVIEW_MODES, fit_to_frame, fuse_anchor, generation_size, generator_frames,
                                        model_angles, orbit_sequence, orbit_views)
from ..recapture_core.warp import anchor_from_depth
from . import _comfy, _meta_batch

log = logging.getLogger(__name__)

#: Views whose optical axis misses the pivot by more than this are only approximated by an orbit view.
LOOK_ERROR_WARN_DEG = 5.0
#: PointCloudWarp's defaults, used for the geometry MultiviewAnchor fuses with.
#: The longer side each model was trained at (resolution 0 picks it).
NATIVE_RESOLUTION = {"stable_zero123": 256, "sv3d_p": 576}


def _pose_model_kind(model) -> str:
    """"stable_zero123" or "sv3d_p" for ComfyUI's pose-conditioned models; a clear error otherwise."""
    import comfy.model_base

    inner = getattr(model, "model", None)
    if isinstance(inner, comfy.model_base.Stable_Zero123):
        return "stable_zero123"
    if isinstance(inner, comfy.model_base.SV3D_p):
        return "sv3d_p"
    found = type(inner).__name__ if inner is not None else type(model).__name__
    raise ReCaptureInputError(
        "model", f"the connected model is {found}, which takes no camera pose",
        "Load Stable Zero123 (stable_zero123.ckpt) or SV3D_p (sv3d_p.safetensors) with 'Image Only Checkpoint Loader "
        "(img2vid model)' and connect its MODEL; SV3D_u and SVD cannot be steered to a camera.")


def _check_encoders(clip_vision, vae) -> None:
    if clip_vision is None:
        raise ReCaptureInputError("clip_vision", "no CLIP vision model arrived (the checkpoint holds none)",
                                  "Load one with 'Load CLIP Vision' (the one the multiview model was trained with) and connect it.")
    if vae is None or getattr(vae, "first_stage_model", None) is None:
        raise ReCaptureInputError("vae", "no VAE weights arrived (the checkpoint holds none)",
                                  "Load the model's VAE with 'Load VAE' and connect it.")


def _conditioning(kind: str, clip_vision, vae, image: torch.Tensor, height: int, width: int, view,
                  source_elevation: float, orbit_frames: int):
    """ComfyUI's own conditioning for one source frame ``[1, H, W, 3]`` and one target view."""
    from comfy_extras.nodes_stable3d import StableZero123_Conditioning, SV3D_Conditioning

    if kind == "stable_zero123":
        elevation, azimuth = model_angles(view)
        out = StableZero123_Conditioning.execute(clip_vision, image, vae, width, height, 1, elevation, azimuth)
        return out.args
    positive, negative, latent = SV3D_Conditioning.execute(clip_vision, image, vae, width, height, orbit_frames,
                                                           source_elevation).args
    # SV3D_Conditioning lays out a full turn; replace it by the sweep from the source view to the target.
    elevations, azimuths = orbit_sequence(view, source_elevation, orbit_frames)
    for conditioning in (positive, negative):
        conditioning[0][1].update(elevation=elevations, azimuth=azimuths)
    return positive, negative, latent


def _sample_view(model, vae, positive, negative, latent_image, seed, steps, cfg, sampler_name, scheduler, on_step):
    """One novel view ``[1, h, w, 3]``: ComfyUI's sampler, then its VAE; for SV3D the sweep's last frame."""
    import comfy.sample

    noise = comfy.sample.prepare_noise(latent_image, seed)
    samples = comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
                                  denoise=1.0, callback=on_step, disable_pbar=True, seed=seed)
    return vae.decode(samples)[-1:]


class ReCaptureMultiviewAnchor:
    DESCRIPTION = ("Anchor video for large orbits: every frame is re-imagined from its new camera by a pose-conditioned "
                   "multiview model (Stable Zero123 or SV3D_p), frame by frame. With depth connected, pixels the point "
                   "cloud renders exactly are kept and only the rest is generated. Outputs mean what PointCloudWarp's do, "
                   "plus generated_mask.")
    CATEGORY = "ReCapture/anchor"
    FUNCTION = "anchor"
    META_BATCH = _meta_batch.WINDOWED
    RETURN_TYPES = ("IMAGE", "MASK", "MASK", "STRING", "MASK")
    RETURN_NAMES = ("anchor", "valid_mask", "hole_mask", "report", "generated_mask")
    OUTPUT_TOOLTIPS = (
        "The frames seen from the new cameras: warped pixels where exact, generated views elsewhere.",
        "1 = pixel rendered from the source video (exact).",
        "1 = pixel neither rendered nor generated (frames the switch left to the warp); valid + generated + hole = 1.",
        "Mode, model, which frames were generated, hole ratios, and warnings about poses an orbit view only approximates.",
        "1 = pixel made by the multiview model. To let MaskedTemporalLoRATrain learn from generated pixels too, "
        "feed it InvertMask(hole_mask) as its valid_mask.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        import comfy.samplers

        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The source video, [frames, height, width, 3]."}),
                "trajectory": ("CAMERA_TRAJECTORY", {"tooltip": "One target camera per frame. Orbits map exactly to the "
                               "model's elevation/azimuth; other moves are approximated (see the report)."}),
                "model": ("MODEL", {"tooltip": "Stable Zero123 or SV3D_p, from 'Image Only Checkpoint Loader (img2vid model)'."}),
                "clip_vision": ("CLIP_VISION", {"tooltip": "The same loader's CLIP_VISION output."}),
                "vae": ("VAE", {"tooltip": "The same loader's VAE output."}),
                "mode": (list(MULTIVIEW_MODES), {"default": MULTIVIEW_MODES[0], "tooltip":
                         "fuse with warp: keep exact warped pixels, generate the rest of every frame. switch by hole "
                         "ratio: generate only frames whose warp leaves more than hole_threshold empty. generator only: "
                         "no depth needed, every pixel generated."}),
                "hole_threshold": ("FLOAT", {"default": 0.35, "min": 0.0, "max": 1.0, "step": 0.01,
                                             "tooltip": "'switch by hole ratio': frames with a larger share of holes are generated."}),
                "resolution": ("INT", {"default": 0, "min": 0, "max": 2048, "step": 8, "tooltip":
                               "Longer side of the generated views (the frame's aspect is kept). 0 = the size the model "
                               "was trained at: 256 for Stable Zero123, 576 for SV3D."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True,
                                 "tooltip": "Noise seed, the same for every frame so neighbouring views stay alike."}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 200, "tooltip": "Sampling steps per generated frame."}),
                "cfg": ("FLOAT", {"default": 4.0, "min": 0.0, "max": 30.0, "step": 0.01,
                                  "tooltip": "Classifier-free guidance towards the source frame."}),
                "sampler_name": (comfy.samplers.KSampler.SAMPLERS, {"default": "euler", "tooltip": "ComfyUI sampler."}),
                "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"default": "sgm_uniform", "tooltip": "ComfyUI noise schedule."}),
                "source_elevation": ("FLOAT", {"default": 0.0, "min": -90.0, "max": 90.0, "step": 0.01, "tooltip":
                                     "SV3D only: how far above the subject the source camera looks down, in degrees."}),
                "orbit_frames": ("INT", {"default": 21, "min": 2, "max": 64, "tooltip":
                                 "SV3D only: views in the sweep from the source view to each target view (trained on 21)."}),
            },
            "optional": {
                "depth": ("DEPTH", {"tooltip": "Depth of the source video: exact pixels are warped and kept. Required "
                                    "unless mode is 'generator only'."}),
                "match_subject_distance": ("BOOLEAN", {"default": True, "tooltip":
                                           "As PointCloudWarp's: scale the moves to the depth's subject distance. Turn "
                                           "off for camera files in the depth's own units."}),
            },
        }

    def anchor(self, frames, trajectory, model, clip_vision, vae, mode, hole_threshold, resolution, seed, steps, cfg,
               sampler_name, scheduler, source_elevation, orbit_frames, depth=None, match_subject_distance=True,
               meta_batch_chunk=None):
        # Every check before any work: a bad input fails in milliseconds, not after a warp.
        trajectory, subject_distance = _meta_batch.anchor_window(meta_batch_chunk, trajectory, frames.shape[0], depth,
                                                                 match_subject_distance)
        trajectory.check_frame_count(frames.shape[0])
        kind = _pose_model_kind(model)
        _check_encoders(clip_vision, vae)
        if depth is None and mode != "generator only":
            raise ReCaptureInputError("depth", f"mode '{mode}' keeps warped pixels, but no depth is connected",
                                      "Connect DEPTH (DepthEstimate or Depth From Image), or set mode to 'generator only'.")
        count, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
        views = orbit_views(trajectory)
        if kind == "sv3d_p":
            orbit_sequence(views[0], source_elevation, orbit_frames)  # rejects a bad orbit_frames up front

        if depth is not None and mode != "generator only":
            warp = anchor_from_depth(frames, depth, trajectory, match_subject_distance=match_subject_distance,
                                     subject_distance=subject_distance, device=_comfy.device(), check_interrupt=_comfy.check_interrupt)
            warped, valid_mask, hole_ratio = warp.anchor, warp.valid_mask, warp.hole_ratio
        else:
            warped, valid_mask, hole_ratio = torch.zeros_like(frames), torch.zeros(frames.shape[:3]), torch.ones(count)
        use_generator = generator_frames(hole_ratio, mode, hole_threshold)

        size = generation_size(height, width, resolution or NATIVE_RESOLUTION[kind])
        todo = [int(i) for i in torch.nonzero(use_generator).flatten()]
        bar = _comfy.progress(max(1, len(todo) * steps))
        generated = torch.zeros_like(frames)
        for done, index in enumerate(todo):
            _comfy.check_interrupt()

            def on_step(step, _x0, _x, _total, offset=done * steps):
                _comfy.check_interrupt()
                bar(offset + step + 1)

            positive, negative, latent = _conditioning(kind, clip_vision, vae, frames[index:index + 1], *size,
                                                       views[index], source_elevation, orbit_frames)
            view = _sample_view(model, vae, positive, negative, latent["samples"], seed, steps, cfg, sampler_name,
                                scheduler, on_step)
            generated[index] = fit_to_frame(view.to(frames.dtype).cpu(), height, width)[0]

        anchor, valid, generated_mask, hole_mask = fuse_anchor(warped, valid_mask, generated, use_generator)
        report = _report(kind, mode, views, use_generator, hole_ratio, depth is not None, size)
        log.info("ReCapture MultiviewAnchor: %s", report.replace("\n", " | "))
        return (anchor, valid, hole_mask, report, generated_mask)


def _report(kind, mode, views, use_generator, hole_ratio, has_depth, size) -> str:
    generated = [i for i, flag in enumerate(use_generator.tolist()) if flag]
    lines = [f"multiview anchor: {kind}, mode '{mode}', {len(generated)} of {len(views)} frames generated at "
             f"{size[1]}x{size[0]}" + (f" (frames {generated[0]}..{generated[-1]})" if generated else "")]
    if has_depth and mode != "generator only":
        lines.append(f"warp holes before generation: {float(hole_ratio.mean()):.1%} on average, "
                     f"{float(hole_ratio.max()):.1%} at most")
    last = views[-1]
    elevation, azimuth = model_angles(last)
    lines.append(f"last view: {last.azimuth_deg:+.1f} deg orbit left, {last.elevation_deg:+.1f} deg up, distance "
                 f"x{last.distance:.2f} (model elevation {elevation:+.1f}, azimuth {azimuth:+.1f})")
    worst = max(views, key=lambda v: v.look_error_deg)
    if worst.look_error_deg > LOOK_ERROR_WARN_DEG:
        lines.append(f"WARNING: cameras look up to {worst.look_error_deg:.1f} deg away from the subject; the model only "
                     "knows cameras that look at it, so pans/tilts/trucks are rendered as the orbit through the same "
                     "direction. Use PointCloudWarp for those moves.")
    if kind == "stable_zero123" and any(abs(v.distance - 1.0) > 0.05 for v in views):
        lines.append("NOTE: Stable Zero123 ignores distance; dolly/zoom parts of the move come only from the warp.")
    return "\n".join(lines)


NODE_CLASS_MAPPINGS = {"ReCaptureMultiviewAnchor": ReCaptureMultiviewAnchor}
NODE_DISPLAY_NAME_MAPPINGS = {"ReCaptureMultiviewAnchor": "MultiviewAnchor (ReCapture)"}
