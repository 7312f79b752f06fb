"""Files the pack writes with safetensors: the same content gives the same bytes, in any process."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
WRITE = """
import sys, torch
sys.path.append({repo!r})
from recapture_core.model_files import save_safetensors
tensors = {{"b.lora_up.weight": torch.arange(6.0).reshape(2, 3), "a.lora_down.weight": torch.ones(3, 2, dtype=torch.float16)}}
metadata = {{f"key_{{i}}": str(i) * i for i in range(12)}}
save_safetensors(tensors, sys.argv[1], metadata)
"""


def test_the_same_tensors_and_metadata_give_the_same_bytes_in_every_process(tmp_path):
    # Each process gets its own hash seed, as a ComfyUI server does: the library alone orders metadata by it.
    paths = [tmp_path / f"lora_{i}.safetensors" for i in range(4)]
    for i, path in enumerate(paths):
        subprocess.run([sys.executable, "-c", WRITE.format(repo=str(REPO)), str(path)], check=True, timeout=120,
                       env={"PYTHONHASHSEED": str(i), "PATH": "/usr/bin:/bin"})
    assert len({path.read_bytes() for path in paths}) == 1
    from safetensors import safe_open

    with safe_open(str(paths[0]), "pt") as handle:
        assert handle.metadata() == {f"key_{i}": str(i) * i for i in range(12)}
        assert torch.equal(handle.get_tensor("b.lora_up.weight"), torch.arange(6.0).reshape(2, 3))
        assert handle.get_tensor("a.lora_down.weight").dtype == torch.float16
