"""Node registration: every module in this package that defines NODE_CLASS_MAPPINGS is collected.

A new node module needs no edit anywhere else. Modules whose name starts with ``_`` are helpers.
Every node is wrapped by the one input-checking layer (``_inputs.guard``) as it is registered.
"""
from __future__ import annotations

import importlib
import pkgutil

from ._inputs import guard

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
    if _info.name.startswith("_"):
        continue
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    for _key, _cls in getattr(_module, "NODE_CLASS_MAPPINGS", {}).items():
        if _key in NODE_CLASS_MAPPINGS:
            raise RuntimeError(f"node type {_key!r} is defined twice (in {_module.__name__} and before)")
        NODE_CLASS_MAPPINGS[_key] = guard(_cls)
    NODE_DISPLAY_NAME_MAPPINGS.update(getattr(_module, "NODE_DISPLAY_NAME_MAPPINGS", {}))

from ._routes import register as _register_routes  # noqa: E402

_register_routes()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
