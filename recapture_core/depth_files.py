"""DEPTH as a file: compute depth once, reuse it in other graphs or on other servers.

A depth file is a safetensors file (``*.depth.safetensors``) holding

- ``depth``: ``[F, H, W]`` float32, the :class:`~.depth.DepthMaps` values as they are (no 8-bit
  quantisation, no per-frame normalisation: an 8-bit PNG loses both precision and the scale);
- ``intrinsics`` (only when the depth has them): ``[4]`` float32 (float64 kept as float64), the
  resolution-free source intrinsics (fx/W, fy/W, cx/W, cy/H);
- metadata ``{"recapture_depth": "1", "kind": "metric" | "relative" | "disparity"}``: the marker says
  the file is ours (a LoRA or a model file is refused by name, not misread), the kind says what the
  values mean.

Reading goes through the guarded reader (:func:`~.model_files.read_bytes`): regular files only, never
blocking on a FIFO, and with ``inside`` only files whose real path lies in that folder. Messages
name the input and the file (:func:`~.paths.shown_name`) and never quote the file's contents: they
reach the browser and the server's log.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import torch

from .depth import DEPTH_KINDS, DepthMaps, check_depth_values
from .errors import ReCaptureInputError
from .model_files import read_bytes, save_safetensors
from .paths import list_regular_files, open_regular_file, regular_file, safe_child, shown_name

SUFFIX = ".depth.safetensors"
MARKER_KEY = "recapture_depth"
FORMAT_VERSION = "1"
#: Largest depth file read: 4 GiB holds about 1800 float32 frames at 1024 x 576. Bytes are read whole.
MAX_DEPTH_FILE_BYTES = 4 * 1024 ** 3
#: A safetensors header longer than this is damage, not a depth file (ours is a few hundred bytes).
MAX_HEADER_BYTES = 1024 * 1024
_FIX = "Pick a depth file written by Save Depth (ReCapture), or save the depth again."


# --- writing ----------------------------------------------------------------------------------------
def depth_tensors(depth: DepthMaps) -> dict[str, torch.Tensor]:
    """The tensors of a depth file: ``depth`` ``[F, H, W]`` float32 and, when present, ``intrinsics`` ``[4]``.

    Contiguous CPU copies detached from any graph: safetensors writes raw storage and cannot share it."""
    tensors = {"depth": depth.values.detach().to("cpu", torch.float32).contiguous()}
    if depth.intrinsics is not None:
        dtype = torch.float64 if depth.intrinsics.dtype == torch.float64 else torch.float32  # keep float64 exact
        tensors["intrinsics"] = depth.intrinsics.detach().to("cpu", dtype).reshape(-1).contiguous()
    return tensors


def save_depth(depth: DepthMaps, path: str | os.PathLike) -> Path:
    """Write ``depth`` to ``path`` (see the module docstring), atomically: a reader never sees half a file.

    Overwrites ``path`` if it exists; callers that must not overwrite pick the name with ``paths.unused_path``."""
    check_depth_values(depth.values, "disparity" if depth.kind == "disparity" else "depth")  # never write a file load refuses
    tensors = depth_tensors(depth)
    metadata = {MARKER_KEY: FORMAT_VERSION, "kind": depth.kind}
    target = Path(path)
    save_safetensors(tensors, target, metadata)
    return target


# --- reading ----------------------------------------------------------------------------------------
def _fail(input_name: str, name: str, problem: str, fix: str = _FIX) -> ReCaptureInputError:
    return ReCaptureInputError(input_name, f"{name} {problem}", fix)


def _header(data: bytes, input_name: str, name: str) -> dict:
    """The JSON header of safetensors ``data``: 8 bytes little-endian length, then that many bytes of JSON."""
    not_safetensors = "is not a safetensors file (damaged, truncated, or a file of another kind)"
    if len(data) < 8:
        raise _fail(input_name, name, not_safetensors)
    (length,) = struct.unpack("<Q", data[:8])
    if length > MAX_HEADER_BYTES or length > len(data) - 8:
        raise _fail(input_name, name, not_safetensors)
    try:
        header = json.loads(data[8:8 + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _fail(input_name, name, not_safetensors) from None
    if not isinstance(header, dict):
        raise _fail(input_name, name, not_safetensors)
    return header


def _check_marker(header: dict, input_name: str, name: str) -> str:
    """The depth kind of a header whose metadata marks a ReCapture depth file of a version this code reads."""
    metadata = header.get("__metadata__")
    metadata = metadata if isinstance(metadata, dict) else {}
    version = metadata.get(MARKER_KEY)
    if version is None:
        raise _fail(input_name, name, "is a safetensors file but not a ReCapture depth file (no depth marker in its metadata)",
                    "Pick a file written by Save Depth (ReCapture); model and LoRA files cannot be read as depth.")
    if version != FORMAT_VERSION:  # a value of the file is not quoted: only whether it is the one this code reads
        raise _fail(input_name, name, f"is a ReCapture depth file of another format version (this one reads version {FORMAT_VERSION})",
                    "Update ReCapture on this server, or save the depth again here.")
    kind = metadata.get("kind")
    if kind not in DEPTH_KINDS:
        raise _fail(input_name, name, f"does not say a depth kind this code knows ({', '.join(DEPTH_KINDS)})")
    return kind


def _tensors(data: bytes, input_name: str, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    try:
        return load(data)
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - safetensors' own message may quote the header; say only what went wrong
        raise _fail(input_name, name, "is a damaged safetensors file (its header and data do not agree; truncated?)") from None


def _depth_values(tensors: dict, input_name: str, name: str, kind: str) -> torch.Tensor:
    """The ``depth`` tensor ``[F, H, W]`` as float32, checked: floating, 3-D, no zero dimension, finite and positive."""
    values = tensors.get("depth")
    if values is None:
        raise _fail(input_name, name, "holds no 'depth' tensor")
    if not values.is_floating_point():
        raise _fail(input_name, name, f"holds depth of type {str(values.dtype).removeprefix('torch.')}, not floating point")
    if values.ndim != 3 or 0 in values.shape:
        raise _fail(input_name, name, f"holds depth of shape {list(values.shape)}, not [frames, height, width]")
    values = values.to(torch.float32)  # float16 / float64 files from elsewhere: the DEPTH type is float32
    try:
        check_depth_values(values, "disparity" if kind == "disparity" else "depth", input_name)
    except ReCaptureInputError as err:
        raise ReCaptureInputError(input_name, f"{name}: {err.problem}", _FIX) from None
    return values


def _intrinsics(tensors: dict, input_name: str, name: str) -> torch.Tensor | None:
    """``intrinsics`` ``[4]`` (fx/W, fy/W, cx/W, cy/H) when the file has them: finite, positive focal lengths."""
    intrinsics = tensors.get("intrinsics")
    if intrinsics is None:
        return None
    if not intrinsics.is_floating_point() or tuple(intrinsics.shape) != (4,):
        raise _fail(input_name, name, f"holds intrinsics of shape {list(intrinsics.shape)} and type "
                    f"{str(intrinsics.dtype).removeprefix('torch.')}, not 4 floating-point numbers")
    if not bool(torch.isfinite(intrinsics).all()) or not bool((intrinsics[:2] > 0).all()):
        raise _fail(input_name, name, "holds intrinsics that are not finite or have focal lengths that are not positive")
    return intrinsics


def _checked_size(path: str | os.PathLike, input_name: str, inside) -> None:
    """Refuse a file too large to read before reading it, with words for depth files."""
    _, status = regular_file(path, input_name, inside)
    if status.st_size > MAX_DEPTH_FILE_BYTES:
        raise _fail(input_name, shown_name(path, inside), f"is {status.st_size} bytes; depth files of at most "
                    f"{MAX_DEPTH_FILE_BYTES} bytes are read", "Save fewer frames or a smaller size per file.")


def load_depth(path: str | os.PathLike, input_name: str = "file", inside: str | os.PathLike | None = None) -> DepthMaps:
    """A depth file (see the module docstring) as :class:`DepthMaps`: values ``[F, H, W]`` float32, its kind, and
    intrinsics ``[4]`` when it has them.

    ``inside``: the folder the user picked the file from; its real path (links resolved) must lie there.
    Every failure is a :class:`ReCaptureInputError` naming ``input_name`` and the file, never quoting it.
    """
    name = shown_name(path, inside)
    _checked_size(path, input_name, inside)
    data = read_bytes(Path(path), input_name, MAX_DEPTH_FILE_BYTES, inside)
    kind = _check_marker(_header(data, input_name, name), input_name, name)
    tensors = _tensors(data, input_name, name)
    del data  # the tensors are copies: free the bytes before converting
    return DepthMaps(_depth_values(tensors, input_name, name, kind), kind, _intrinsics(tensors, input_name, name))


# --- a folder of depth files (ComfyUI's input/) ----------------------------------------------------
def list_depth_files(root: str | os.PathLike) -> list[str]:
    """Names (relative to ``root``, with ``/``) of the ``*.depth.safetensors`` files a user may pick, a few folders
    deep, regular files inside ``root`` only (:func:`~.paths.list_regular_files`)."""
    return list_regular_files(root, lambda name: name.endswith(SUFFIX))


def depth_file_path(folder: str | os.PathLike, name: str, input_name: str = "file") -> Path:
    """``folder / name`` for a user-picked ``name`` checked to stay inside ``folder`` (``paths.safe_child``),
    unresolved, so messages show the name the user picked."""
    safe_child(folder, name, input_name)
    return Path(folder) / name


def load_depth_file(folder: str | os.PathLike, name: str, input_name: str = "file") -> DepthMaps:
    """:func:`load_depth` of the file ``name`` picked from ``folder``: it must lie inside it."""
    return load_depth(depth_file_path(folder, name, input_name), input_name, inside=folder)


def depth_file_fingerprint(folder: str | os.PathLike, name: str, input_name: str = "file") -> str:
    """A SHA-256 of the file ``name`` under ``folder``, read the same guarded way as :func:`load_depth_file`
    (in blocks: a large file is not held whole). Raises :class:`ReCaptureInputError` where loading would."""
    path = depth_file_path(folder, name, input_name)
    _checked_size(path, input_name, folder)
    digest = hashlib.sha256()
    with open_regular_file(path, input_name, inside=folder) as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()
