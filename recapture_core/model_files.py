"""Reading model, LoRA and camera files: whatever goes wrong while parsing names the file.

A truncated download, a file of another format or a damaged header fails deep inside
safetensors, transformers or json with a message that names no file. Every reader of the pack
opens its files inside :func:`reading`, which turns any such failure into a
:class:`ReCaptureInputError` naming the input, the file and the fix.

Files the pack parses itself are read through :func:`read_bytes`: only regular files (checked
before and after a non-blocking open, :func:`~.paths.open_regular_file`), at most a set size, and,
for files a user names, only under the folder they are read from. Messages about a user-named
file's content say where (line, field) and what was expected, never the text itself (``reading``
with ``quote_errors=False``): a message reaches the browser and the server's log. Model folders keep
the libraries' own messages (a safetensors header error says what is damaged); the admin puts
those files there, and they may be links, as model folders on another disk often are.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import ReCaptureInputError
from .paths import atomic_write_bytes, open_regular_file, shown_name

#: Text files the pack parses itself (configs, camera files) are read up to this size.
MAX_TEXT_FILE_BYTES = 64 * 1024 * 1024


@contextmanager
def reading(path: Path | str, input_name: str, fix: str = "The file is damaged or of another kind: replace it, or pick another.",
            hint: str | None = None, quote_errors: bool = True):
    """Run a file read; any parse failure inside becomes an error naming ``input_name`` and the file
    (``hint``: see :class:`ReCaptureInputError`).

    ``quote_errors=False`` for files a user names: a parser's own message may quote the file's text
    (``int('...')``), so only the kind of failure is said.
    """
    name = Path(path).name
    try:
        yield
    except ReCaptureInputError:
        raise
    except MemoryError:
        raise
    except RecursionError:
        raise ReCaptureInputError(input_name, f"{name} is nested too deeply to read", fix, hint) from None
    except Exception as err:  # noqa: BLE001 - a reader's failure of any kind is this file's fault, said once here
        if not quote_errors:
            raise ReCaptureInputError(input_name, f"cannot read {name}: a value has the wrong type or form for its place "
                                      f"({type(err).__name__})", fix, hint) from None
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReCaptureInputError(input_name, f"cannot read {name} ({type(err).__name__}: {detail[:300]})", fix, hint) from None


def read_bytes(path: Path, input_name: str, limit: int = MAX_TEXT_FILE_BYTES, inside: Path | str | None = None,
               hint: str | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; with ``inside``, a file whose real path (links
    resolved) lies under that folder. Never blocks on a FIFO or a device: those are refused, named."""
    name = shown_name(path, inside)
    with open_regular_file(path, input_name, inside, hint) as handle:
        size = os.fstat(handle.fileno()).st_size
        # The size is checked before reading and the read is capped too: a file may grow meanwhile.
        data = handle.read(limit + 1) if size <= limit else b""
    if size > limit or len(data) > limit:
        found = f"is {size} bytes" if size > limit else "grew while being read"
        raise ReCaptureInputError(input_name, f"{name} {found}; at most {limit} bytes are read",
                                  "Pick the right file; camera and config files are small.", hint)
    return data


def read_text(path: Path, input_name: str, limit: int = MAX_TEXT_FILE_BYTES, inside: Path | str | None = None,
              hint: str | None = None) -> str:
    """A UTF-8 text file read by :func:`read_bytes`, as text; errors name the file."""
    data = read_bytes(path, input_name, limit, inside, hint)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ReCaptureInputError(input_name, f"{shown_name(path, inside)} is not a UTF-8 text file (byte {err.start})",
                                  "Pick a text file (JSON or COLMAP text).", hint) from None


def read_json(path: Path, input_name: str, limit: int = MAX_TEXT_FILE_BYTES, inside: Path | str | None = None,
              hint: str | None = None):
    """A JSON file's value; errors (syntax, encoding, nesting, size) name the file and where it broke."""
    text = read_text(path, input_name, limit, inside, hint)
    name = shown_name(path, inside)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ReCaptureInputError(input_name, f"{name} is not valid JSON (line {err.lineno}, column {err.colno}: "
                                  f"{err.msg}; truncated?)", "Check the file, or export it again.", hint) from None
    except RecursionError:
        raise ReCaptureInputError(input_name, f"{name} is nested too deeply to read",
                                  "Check the file, or export it again.", hint) from None
    except ValueError:  # an integer of more digits than Python converts
        raise ReCaptureInputError(input_name, f"{name} holds a number too long to read",
                                  "Check the file, or export it again.", hint) from None


def save_safetensors(tensors: dict, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` with ``metadata`` as a safetensors file, atomically, the same bytes for the same content.

    safetensors keeps the metadata in a hash map whose order changes from process to process, so the same LoRA
    trained twice gave files that differ in their header: no byte comparison, no content-addressed copies. The
    metadata is put in key order here (the header keeps its length, so no offset moves).
    """
    from safetensors.torch import save

    atomic_write_bytes(Path(path), _sorted_metadata(save(tensors, metadata=metadata)))


def _sorted_metadata(data: bytes) -> bytes:
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    if "__metadata__" not in header:
        return data
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(text) > size:  # formatted otherwise than the library's writer: keep its bytes
        return data
    return data[:8] + text.ljust(size, b" ") + data[8 + size:]
