"""What every bench script shares: a description of the machine and writing the JSON result."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def machine() -> dict:
    import torch

    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def write_result(result: dict, out: Path) -> None:
    """Print the figures and write them as JSON to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


class LatentOnlyWanVAE:
    """What the MODEL-path trainer and the windows node read of a Wan 2.1 VAE when latents are given directly
    (16 channels, 8x spatial, 4x causal temporal): the benches skip encoding a clip they only need latents of."""

    latent_channels = 16

    def spacial_compression_encode(self):
        return 8

    def temporal_compression_decode(self):
        return 4
