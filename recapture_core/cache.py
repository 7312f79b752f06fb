"""Content keys: identical inputs give identical keys, so finished work can be reused."""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict

import torch


def content_key(*parts) -> str:
    """SHA-256 over tensors (dtype, shape, bytes), dicts/lists/numbers/strings (as JSON)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            tensor = part.detach().cpu().contiguous()
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(part, dict) and part and all(isinstance(v, torch.Tensor) for v in part.values()):
            for key in sorted(part):
                digest.update(key.encode())
                digest.update(content_key(part[key]).encode())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class LRUCache:
    """A small least-recently-used map (results too costly to compute twice)."""

    def __init__(self, size: int = 4):
        self.size, self.items = size, OrderedDict()

    def get(self, key):
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key, value) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)
