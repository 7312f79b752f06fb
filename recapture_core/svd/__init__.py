"""Stable Video Diffusion: the backbone, LoRA set-up, conditioning, training and sampling.

diffusers and peft are imported inside functions (or by the submodules that need them), so
importing ``recapture_core.svd`` stays cheap.
"""
