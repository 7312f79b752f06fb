"""Reading model, LoRA and camera files: whatever goes wrong while parsing names the file.

A truncated download, a file of another format or a damaged header fails deep inside
safetensors, transformers or json with a message that names no file. Every reader of the pack
opens its files inside :func:`reading`, which turns any such failure into a
:class:`ReCaptureInputError` naming the input, the file and the fix.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from .errors import ReCaptureInputError

#: Text files the pack parses itself (configs, camera files) are read up to this size.
MAX_TEXT_FILE_BYTES = 64 * 1024 * 1024


@contextmanager
def reading(path: Path | str, input_name: str, fix: str = "The file is damaged or of another kind: replace it, or pick another.",
            hint: str | None = None):
    """Run a file read; any parse failure inside becomes an error naming ``input_name`` and the file
    (``hint``: see :class:`ReCaptureInputError`)."""
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
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReCaptureInputError(input_name, f"cannot read {name} ({type(err).__name__}: {detail[:300]})", fix, hint) from None


def read_text(path: Path, input_name: str, limit: int = MAX_TEXT_FILE_BYTES) -> str:
    """A UTF-8 text file of at most ``limit`` bytes, as text; errors name the file."""
    with reading(path, input_name):
        size = path.stat().st_size
        if size > limit:
            raise ReCaptureInputError(input_name, f"{path.name} is {size} bytes; at most {limit} are read",
                                      "Pick the right file; camera and config files are small.")
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ReCaptureInputError(input_name, f"{path.name} is not a UTF-8 text file",
                                      "Pick a text file (JSON or COLMAP text).") from None


def read_json(path: Path, input_name: str, limit: int = MAX_TEXT_FILE_BYTES):
    """A JSON file's value; errors (syntax, encoding, nesting, size) name the file and where it broke."""
    text = read_text(path, input_name, limit)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ReCaptureInputError(input_name, f"{path.name} is not valid JSON (line {err.lineno}, column {err.colno}: "
                                  f"{err.msg}; truncated?)", "Check the file, or export it again.") from None
    except RecursionError:
        raise ReCaptureInputError(input_name, f"{path.name} is nested too deeply to read",
                                  "Check the file, or export it again.") from None
