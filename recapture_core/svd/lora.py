"""LoRA adapters on the SVD UNet with peft: targets, attach/detach, and the RECAPTURE_LORA type.

Adapters are injected for one job and removed afterwards, on success, error and interrupt,
so the shared backbone is never left modified (module types, weights, requires_grad flags,
train/eval mode and gradient checkpointing are all restored).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from ..errors import ReCaptureInputError

# Only projections that can receive a gradient. The temporal blocks' cross-attention (attn2) attends to
# one token, the CLIP image embedding: its softmax is 1 whatever q and k are, so to_q/to_k of attn2 get
# exactly zero gradient and their LoRA would never move; its to_v/to_out carry the image into every frame
# and learn. LoRAs trained with the older targets (attn2's to_q/to_k too) still load: they name their own
# targets (diffusers path) or carry keys ComfyUI's loader matches (ComfyUI format); those parts are zero.
_TEMPORAL_PROJECTIONS = r"(attn1\.(to_q|to_k|to_v|to_out\.0)|attn2\.(to_v|to_out\.0))"
#: Temporal transformer blocks: all of the self-attention over frames, the learnable part of the cross-attention.
TEMPORAL_TARGETS = r".*temporal_transformer_blocks\.\d+\." + _TEMPORAL_PROJECTIONS
#: Self-attention (attn1) projections of the spatial transformer blocks.
SPATIAL_TARGETS = r".*\.transformer_blocks\.\d+\.attn1\.(to_q|to_k|to_v|to_out\.0)"
KINDS = {"temporal": TEMPORAL_TARGETS, "spatial": SPATIAL_TARGETS}
#: The same modules under ComfyUI's names for its SVD model (the original checkpoint's layout: temporal
#: parts under ``time_stack``), which are also the keys of a ComfyUI-format LoRA.
COMFY_KINDS = {"temporal": r".*\.time_stack\.\d+\." + _TEMPORAL_PROJECTIONS,
               "spatial": r".*\.transformer_blocks\.\d+\.attn1\.(to_q|to_k|to_v|to_out\.0)"}


@dataclass(frozen=True)
class ReCaptureLoRA:
    """Trained LoRA weights and what they are.

    ``state_dict`` holds peft's keys without adapter name (``<module>.lora_A.weight`` /
    ``<module>.lora_B.weight``), float32 on the CPU.
    """

    kind: str
    rank: int
    alpha: float
    targets: str
    state_dict: dict[str, torch.Tensor]
    backbone_architecture: str
    backbone_weights: str
    backbone_name: str = ""
    layers_per_block: int = 2  # of the UNet it was trained on: needed for the original key names
    steps: int = 0
    final_loss: float = float("nan")
    settings: dict = field(default_factory=dict)

    def metadata(self) -> dict[str, str]:
        """Everything but the weights, as strings (safetensors metadata)."""
        import json

        return {"format": "recapture.lora", "version": "1", "kind": self.kind, "rank": str(self.rank),
                "alpha": repr(float(self.alpha)), "targets": self.targets,
                "backbone_architecture": self.backbone_architecture, "backbone_weights": self.backbone_weights,
                "backbone_name": self.backbone_name, "layers_per_block": str(self.layers_per_block), "steps": str(self.steps), "final_loss": repr(float(self.final_loss)),
                "settings": json.dumps(self.settings, sort_keys=True)}

    def check_contents(self, input_name: str) -> None:
        """Kind, rank and alpha make sense and every weight pair is ``A [rank, in]``, ``B [out, rank]``, finite."""
        again = "Train it again, or load another LoRA."
        if self.kind not in KINDS:
            raise ReCaptureInputError(input_name, f"has unknown kind {self.kind!r}", f"A ReCapture LoRA is {' or '.join(KINDS)}. {again}")
        if self.rank < 1 or not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ReCaptureInputError(input_name, f"has rank {self.rank} and alpha {self.alpha}; both must be positive", again)
        modules = {key.rpartition(".lora_")[0] for key in self.state_dict}
        if not modules:
            raise ReCaptureInputError(input_name, "holds no weights", again)
        for module in sorted(modules):
            down, up = self.state_dict.get(f"{module}.lora_A.weight"), self.state_dict.get(f"{module}.lora_B.weight")
            if down is None or up is None or down.ndim != 2 or up.ndim != 2 or down.shape[0] != self.rank or up.shape[1] != self.rank:
                shapes = [list(t.shape) if t is not None else None for t in (down, up)]
                raise ReCaptureInputError(input_name, f"has weights for {module} of shapes {shapes} (A, B), which do not fit "
                                          f"its rank {self.rank}", again)
            if not (down.is_floating_point() and torch.isfinite(down).all() and torch.isfinite(up).all()):
                raise ReCaptureInputError(input_name, f"has non-finite or non-float weights in {module}", again)

    def check_use(self, backbone, kind: str, input_name: str) -> None:
        """This LoRA may be used as a ``kind`` LoRA on ``backbone``: the right kind, and it fits (see check_backbone)."""
        if self.kind != kind:
            raise ReCaptureInputError(input_name, f"is a {self.kind} LoRA where a {kind} one belongs",
                                      f"Use a {kind} LoRA.", hint=f"{kind}_lora")
        self.check_backbone(backbone, input_name)

    def check_backbone(self, backbone, input_name: str) -> None:
        """Trained on this UNet architecture, and every weight fits the module it goes into."""
        if self.backbone_architecture != backbone.architecture_id:
            raise ReCaptureInputError(
                input_name, f"was trained for another backbone ({self.backbone_name or '?'}, architecture "
                f"{self.backbone_architecture}) than the one connected ({backbone.name}, {backbone.architecture_id})",
                "Train the LoRA on this backbone, or connect the backbone it was trained on.")
        self.check_contents(input_name)
        linears = dict(backbone.unet.named_modules())
        for key, tensor in self.state_dict.items():
            module_name, _, part = key.rpartition(".lora_")
            module = linears.get(module_name)
            if not isinstance(module, torch.nn.Linear):
                raise ReCaptureInputError(input_name, f"has weights for {module_name}, which this backbone ({backbone.name}) "
                                          "does not have as a Linear layer", "Use a LoRA trained on this backbone.")
            expected = (self.rank, module.in_features) if part == "A.weight" else (module.out_features, self.rank)
            if tuple(tensor.shape) != expected:
                raise ReCaptureInputError(input_name, f"has {key} of shape {list(tensor.shape)}; {backbone.name} needs "
                                          f"{list(expected)}", "Use a LoRA trained on this backbone.")


@dataclass
class AdapterSpec:
    """One adapter of a job: a new one to train (no state_dict) or a trained one to apply."""

    name: str
    kind: str
    rank: int
    alpha: float
    state_dict: dict[str, torch.Tensor] | None = None
    strength: float = 1.0
    trainable: bool = False
    targets: str = ""  # regex over module names; empty: the kind's default (KINDS)

    @property
    def pattern(self) -> str:
        return self.targets or KINDS[self.kind]

    @classmethod
    def from_lora(cls, name: str, lora: ReCaptureLoRA, strength: float = 1.0) -> "AdapterSpec":
        return cls(name, lora.kind, lora.rank, lora.alpha, lora.state_dict, strength, trainable=False, targets=lora.targets)


def target_modules(unet: torch.nn.Module, kind: str, targets: str = "") -> list[str]:
    """Names of the UNet's Linear modules an adapter of ``kind`` goes into (``targets`` overrides the default)."""
    from ..finetune import target_modules as matching

    return matching(unet, targets, KINDS[kind], "down_blocks.0.attentions.0.temporal_transformer_blocks.0.attn1.to_q")


@contextmanager
def adapters_attached(unet: torch.nn.Module, specs: list[AdapterSpec], gradient_checkpointing: bool | None = None,
                      init_seed: int = 0):
    """Attach peft LoRA adapters to ``unet`` for the duration of a ``with`` block.

    New adapters are initialised (peft: Kaiming-uniform A, zero B) from ``init_seed``, without
    touching the global random state. Yields ``{name: [trainable parameters]}``. On exit,
    whatever happened inside, the adapters are unloaded and the UNet's flags and mode are put
    back as they were.
    """
    from peft import LoraConfig, LoraModel
    from peft.tuners.lora import LoraLayer
    from peft.utils import set_peft_model_state_dict

    if not specs:
        yield {}
        return
    saved_grad = {name: p.requires_grad for name, p in unet.named_parameters()}
    saved_training = unet.training
    saved_checkpointing = bool(getattr(unet, "is_gradient_checkpointing", False))
    saved_types = {name: type(m) for name, m in unet.named_modules()}
    lora_model = None
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            configs = {s.name: LoraConfig(r=s.rank, lora_alpha=s.alpha, target_modules=target_modules(unet, s.kind, s.targets),
                                          lora_dropout=0.0, init_lora_weights=True) for s in specs}
            lora_model = LoraModel(unet, {specs[0].name: configs[specs[0].name]}, specs[0].name)
            for spec in specs[1:]:
                lora_model.peft_config[spec.name] = configs[spec.name]
                lora_model.inject_adapter(unet, spec.name)
            for spec in specs:
                if spec.state_dict is not None:
                    result = set_peft_model_state_dict(unet, spec.state_dict, adapter_name=spec.name)
                    unexpected = [k for k in result.unexpected_keys if "lora_" in k]
                    if unexpected:
                        raise ReCaptureInputError(spec.name, f"has weights for modules this UNet lacks ({unexpected[0]}, ...)",
                                                  "Use a LoRA trained on this backbone.")
            lora_model.set_adapter([s.name for s in specs])
            for module in unet.modules():
                if isinstance(module, LoraLayer):
                    for spec in specs:
                        if spec.name in module.scaling:
                            module.set_scale(spec.name, spec.strength)
            unet.requires_grad_(False)
            trainable = {}
            for spec in specs:
                params = [p for n, p in unet.named_parameters() if f".{spec.name}." in n and "lora_" in n]
                for p in params:
                    if spec.trainable:  # trainable weights and so the optimiser state are float32 whatever the UNet's dtype
                        p.data = p.data.float()
                    p.requires_grad_(spec.trainable)
                trainable[spec.name] = params if spec.trainable else []
            if gradient_checkpointing is not None:
                (unet.enable_gradient_checkpointing if gradient_checkpointing else unet.disable_gradient_checkpointing)()
        yield trainable
    finally:
        if lora_model is not None:
            lora_model.unload()
        for name, p in unet.named_parameters():
            p.requires_grad_(saved_grad.get(name, False))
        unet.train(saved_training)
        if gradient_checkpointing is not None and gradient_checkpointing != saved_checkpointing:
            (unet.enable_gradient_checkpointing if saved_checkpointing else unet.disable_gradient_checkpointing)()
        restored = {name: type(m) for name, m in unet.named_modules()}
        if restored != saved_types:  # a bug, not bad input: never hand back a modified backbone silently
            raise RuntimeError("ReCapture: the UNet was not restored after removing the LoRA adapters")


def extract_state_dict(unet: torch.nn.Module, adapter_name: str) -> dict[str, torch.Tensor]:
    """The adapter's weights with peft's keys (adapter name removed), float32 copies on the CPU."""
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(unet, adapter_name=adapter_name)
    return {k: v.detach().to("cpu", torch.float32).clone() for k, v in state.items()}
