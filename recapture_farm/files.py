"""Files on the driver and the workers: hashed by content, written so that no reader sees half of one."""
from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, data: bytes, mtime_ns: int | None = None) -> None:
    """``data`` into ``path`` through a temporary name beside it and a rename; with ``mtime_ns``, that modification
    time, in nanoseconds as stat gives it (a float in seconds loses the last digits)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        with open(partial, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mtime_ns is not None:
            os.utime(partial, ns=(mtime_ns, mtime_ns))
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
