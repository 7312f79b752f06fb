"""File-system safety for names users type: stay inside the folder, read only regular files, never
overwrite, write atomically."""
from __future__ import annotations

import errno
import io
import os
import re
import stat
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
        raise ReCaptureInputError(input_name, f"{name!r} resolves outside its folder",  # the server's paths are not the user's
                                  "Use a name relative to the folder (symbolic links may not lead out of it).")
    return path


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _kind(mode: int) -> str:
    return next((kind for is_kind, kind in _KINDS if is_kind(mode)), "not a regular file")


def shown_name(path: str | os.PathLike, inside: str | os.PathLike | None = None) -> str:
    """How messages name ``path``: relative to ``inside`` where it lies there (the name the user chose), else
    its last part; never the server's absolute path, nor where a link points."""
    for root in (os.path.abspath(inside), os.path.realpath(inside)) if inside is not None else ():
        relative = os.path.relpath(os.path.abspath(path), root)
        if relative not in (".", "..") and not relative.startswith(".." + os.sep):
            return relative.replace(os.sep, "/")
    return Path(path).name


def regular_file(path: str | os.PathLike, input_name: str, inside: str | os.PathLike | None = None,
                 hint: str | None = None) -> tuple[str, os.stat_result]:
    """The real path of ``path`` (every symbolic link resolved) and its status, checked before anything opens it.

    It must be a regular file: a FIFO would block the reader until someone writes to it, and a device
    never ends. With ``inside``, its real path must also lie under ``inside``'s real path, so that a link
    (of the file or of a folder on its way) cannot make the pack read a file from elsewhere.
    """
    name = shown_name(path, inside)
    real = os.path.realpath(path)
    if inside is not None:
        root = os.path.realpath(inside)
        try:
            outside = os.path.commonpath([root, real]) != root
        except ValueError:  # another drive
            outside = True
        if outside:
            raise ReCaptureInputError(input_name, f"{name} leads outside the folder it is read from (a symbolic link?)",
                                      "Copy the file itself into the folder; links may not lead out of it.", hint)
    try:
        status = os.stat(real)
    except FileNotFoundError:
        raise ReCaptureInputError(input_name, f"{name} does not exist", "Check the file's name.", hint) from None
    except OSError as err:
        raise ReCaptureInputError(input_name, f"{name} cannot be read ({os.strerror(err.errno or 0)})",
                                  "Check the file's permissions.", hint) from None
    if not stat.S_ISREG(status.st_mode):
        raise ReCaptureInputError(input_name, f"{name} is {_kind(status.st_mode)}, not a regular file",
                                  "Pick a plain file.", hint)
    return real, status


def is_regular_file(path: str | os.PathLike, inside: str | os.PathLike | None = None) -> bool:
    """Whether :func:`regular_file` accepts ``path`` (for lists of files to offer)."""
    try:
        regular_file(path, "file", inside)
    except ReCaptureInputError:
        return False
    return True


def list_regular_files(root: str | os.PathLike, wanted: Callable[[str], bool], max_depth: int = 3) -> list[str]:
    """Names (relative to ``root``, with ``/``) of the files under ``root`` whose name ``wanted`` accepts, at most
    ``max_depth`` folders deep: the files a node offers for picking. Only regular files whose real path stays
    under ``root`` are offered: no FIFO or device (a reader would block on it), no link leading out."""
    found = []
    for directory, subdirs, files in os.walk(root):
        if os.path.relpath(directory, root).count(os.sep) >= max_depth:
            subdirs[:] = []
        for name in files:
            path = os.path.join(directory, name)
            if wanted(name) and is_regular_file(path, inside=root):
                found.append(os.path.relpath(path, root).replace(os.sep, "/"))
    return sorted(found)


def open_regular_file(path: str | os.PathLike, input_name: str, inside: str | os.PathLike | None = None,
                      hint: str | None = None) -> io.BufferedReader:
    """``path`` opened for reading, checked by :func:`regular_file` before it is opened and again after.

    The open never blocks (``O_NONBLOCK``: a FIFO put in the file's place after the check opens at once),
    does not follow a link put in the file's place (``O_NOFOLLOW``), and the opened descriptor must be the
    very regular file that was checked, so a swap between check and open is refused, not read.
    """
    real, checked = regular_file(path, input_name, inside, hint)
    name = shown_name(path, inside)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(real, flags)
    except OSError as err:
        if err.errno == errno.ELOOP:  # O_NOFOLLOW: a link was put in the file's place after the check
            raise ReCaptureInputError(input_name, f"{name} was replaced by a link while being opened",
                                      "Check the file, then run again.", hint) from None
        raise ReCaptureInputError(input_name, f"{name} cannot be opened ({os.strerror(err.errno or 0)})",
                                  "Check the file's permissions.", hint) from None
    try:
        opened = os.fstat(descriptor)
        if not stat.S_ISREG(opened.st_mode):
            raise ReCaptureInputError(input_name, f"{name} was replaced by {_kind(opened.st_mode)} while being opened",
                                      "Pick a plain file.", hint)
        if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino):
            raise ReCaptureInputError(input_name, f"{name} was replaced while being opened",
                                      "Check the file, then run again.", hint)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


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
