"""File-system safety for names users type: stay inside the folder, never overwrite, write atomically."""
from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from pathlib import Path, PureWindowsPath
from typing import Callable

from .errors import ReCaptureInputError


#: Longest part of a user-typed name: file systems allow 255 bytes, and writers add a counter and suffix.
MAX_NAME_BYTES = 200


def safe_child(folder: str | os.PathLike, name: str, input_name: str) -> Path:
    """``folder / name`` for a user-supplied ``name`` that must stay inside ``folder``: the one rule for every
    file name a node reads or writes.

    A name is a relative path of plain components separated by ``/`` (or ``\\``): no empty component
    (so no separator at either end), no ``.`` or ``..``, no control characters (newlines, tabs, NUL),
    no spaces at the ends of a component, no drive letter, and no symbolic link leading out of the folder.
    """
    fix = "Use a name like 'my_run' or 'subfolder/my_run' inside the folder."
    if not isinstance(name, str) or not name.strip():
        raise ReCaptureInputError(input_name, "is empty", "Give a file name.")
    bad = sorted({char for char in name if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")})
    if bad:
        raise ReCaptureInputError(input_name, f"{name!r} contains control characters ({', '.join(map(repr, bad))})", fix)
    if PureWindowsPath(name).drive or name.startswith(("/", "\\")):
        raise ReCaptureInputError(input_name, f"{name!r} points outside its folder",
                                  "Use a name relative to the folder, without '..' or a leading '/'.")
    for component in re.split(r"[/\\]", name):
        if component in ("", ".", ".."):
            raise ReCaptureInputError(input_name, f"{name!r} has an empty, '.' or '..' part (or a separator at an end)", fix)
        if len(component.encode("utf-8")) > MAX_NAME_BYTES:
            raise ReCaptureInputError(input_name, f"has a part of {len(component.encode('utf-8'))} bytes ({component[:20]!r}...); "
                                      f"file systems take at most 255 and a counter and suffix are added", f"Keep each part under {MAX_NAME_BYTES} bytes.")
        if component != component.strip():
            raise ReCaptureInputError(input_name, f"{name!r} has a part with spaces at its ends ({component!r})", fix)
    root = Path(folder).resolve()
    path = (root / name).resolve()
    if root not in path.parents:
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
