"""File-system safety for names users type: stay inside the folder, never overwrite, write atomically."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable

from .errors import ReCaptureInputError


def safe_child(folder: str | os.PathLike, name: str, input_name: str) -> Path:
    """``folder / name`` for a user-supplied relative ``name`` that must not leave ``folder``.

    Rejects empty names, absolute paths, drive letters, ``..`` components and symlinks that
    resolve outside the folder.
    """
    if not name or not name.strip():
        raise ReCaptureInputError(input_name, "is empty", "Give a file name.")
    if "\x00" in name:
        raise ReCaptureInputError(input_name, "contains a NUL character", "Use a plain file name.")
    for flavour in (PurePosixPath(name), PureWindowsPath(name)):
        if flavour.is_absolute() or flavour.drive or ".." in flavour.parts:
            raise ReCaptureInputError(input_name, f"{name!r} points outside its folder",
                                      "Use a name relative to the folder, without '..' or a leading '/'.")
    root = Path(folder).resolve()
    path = (root / name).resolve()
    if path != root and root not in path.parents:
        raise ReCaptureInputError(input_name, f"{name!r} resolves outside {root}",
                                  "Use a name relative to the folder (symbolic links may not lead out of it).")
    return path


def unused_path(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem_00001suffix`` with the first counter that names nothing yet (never overwrite)."""
    counter = 1
    pattern = re.compile(re.escape(Path(stem).name) + r"_(\d{5})")
    if folder.is_dir():
        taken = [int(m.group(1)) for entry in folder.iterdir() if (m := pattern.match(entry.name))]
        counter = max(taken, default=0) + 1
    while True:
        candidate = folder / f"{Path(stem).name}_{counter:05d}{suffix}"
        if not candidate.exists():
            return candidate
        counter += 1


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(temporary_path)`` for a temporary file beside ``path``, then rename it into place.

    A reader never sees a half-written file; on any error the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    def write(temporary: str) -> None:
        with open(temporary, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())

    atomic_write(path, write)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
