"""Shot lists: the file a user hands the farm (clips, camera paths per clip, backbone, settings).

A shot list is TOML or JSON (chosen by the file's suffix) with the same structure::

    backbone = "svd"            # "svd" or "wan"
    output = "reshoots"         # relative to the shot list's folder, or absolute
    seed = 0                    # optional settings: seed, train_steps, sample_steps, rank,
                                # learning_rate, prompt (wan only)
    [models]                    # optional: file names as the workers' loaders list them
    checkpoint = "svd_xt.safetensors"

    [[clips]]
    name = "box"
    video = "clips/box.mp4"
    depth_image = "clips/box_depth.png"     # or depth_model = "<folder under models/depth/>"

      [[clips.paths]]
      name = "orbit"
      preset = "orbit left"                 # or keyframes = "..." or camera_file = "..."
      amount = 10.0

:func:`load_job` reads and checks a file; :func:`parse_job` checks text already read. Either
returns a :class:`Job` or raises one :class:`ShotListError` that names the file, the line, the
field and what to do. When a file has several problems, the one nearest the top of the file is
reported (problems with no line, such as a missing top-level key, come last).

Standard library only: the farm imports this on machines (and in processes) that need not have
torch, Ray or the pack installed, and the pack never imports it.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["ShotListError", "CameraPath", "Clip", "Job", "load_job", "parse_job",
           "BACKBONES", "MODEL_KEYS", "PRESETS", "EASINGS", "DEPTH_READINGS", "MAX_BYTES"]

#: The graphs a job can run: SVD-XT (ComfyUI's checkpoint graph) or Wan 2.1 text-to-video.
BACKBONES = ("svd", "wan")
#: The [models] keys each backbone's graph has a loader for.
MODEL_KEYS = {"svd": ("checkpoint",), "wan": ("diffusion_model", "vae", "text_encoder")}

# The next three lists mirror the pack's own (recapture_core.camera.presets.PRESETS,
# recapture_core.camera.poses.EASINGS, recapture_core.depth.IMAGE_READINGS). They are copied,
# not imported, because this module must not import the pack (nor torch, which it imports);
# tests/test_farm_shotlist.py fails if they drift apart. Checking them here turns a typo into an
# error at submit time instead of a failed job on a worker hours later.
PRESETS = ("static", "orbit left", "orbit right", "orbit up", "orbit down", "dolly in", "dolly out",
           "truck left", "truck right", "pedestal up", "pedestal down", "pan left", "pan right",
           "tilt up", "tilt down", "roll clockwise", "roll counterclockwise", "zoom in", "zoom out",
           "arc left", "arc right", "arc up", "arc down")
EASINGS = ("linear", "ease-in", "ease-out", "ease-in-out")
DEPTH_READINGS = ("disparity, bright = near", "depth, bright = far",
                  "metric: near..far, bright = far", "metric: near..far, bright = near")

#: Largest shot list read: far above any real one, small enough to refuse a wrong file quickly.
MAX_BYTES = 16 * 1024 * 1024
#: Longest Camera Keyframes text (the node's own limit).
MAX_KEYFRAMES_CHARS = 65536
#: Clip and path names become folder names: a safe, portable subset.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

_DEFAULT_READING = "metric: near..far, bright = far"
_SYNTAX = "(syntax)"
_FILE = "(file)"

FieldPath = tuple  # ('clips', 1, 'paths', 0, 'amount'): keys and array indices from the root


# --- the error -------------------------------------------------------------------------------

class ShotListError(ValueError):
    """A shot list that cannot be run.

    ``str()`` is ``'<file name>: line <n>: <field>: <what is wrong>. <what to do>'``; the
    ``line`` part is left out when no line is known (a missing top-level key, a file that cannot
    be read). ``field`` is the setting's path as the user would write it
    (``'clips[1].paths[0].amount'``), ``'(syntax)'`` for a file the TOML/JSON parser rejects, or
    ``'(file)'`` for a problem with the shot list file itself.

    Attributes: ``source`` (Path), ``line`` (int or None), ``field`` (str), ``problem`` and
    ``hint`` (the two halves of the message after the field).
    """

    def __init__(self, source: Path, line: int | None, field: str, problem: str, hint: str = ""):
        self.source = Path(source)
        self.line = line
        self.field = field
        self.problem = problem
        self.hint = hint
        where = f"{self.source.name}: " + (f"line {line}: " if line is not None else "")
        super().__init__(f"{where}{field}: {problem}." + (f" {hint}" if hint else ""))

    def __reduce__(self):
        # Exceptions pickle as cls(*self.args); ours has other arguments. The farm may raise it
        # in one process (a Ray task) and report it in another.
        return (type(self), (self.source, self.line, self.field, self.problem, self.hint))


# --- the result ------------------------------------------------------------------------------
# ``line`` fields are for messages only: they take no part in equality, so the same shot list
# written as TOML and as JSON gives equal clips and paths.

@dataclass(frozen=True)
class CameraPath:
    """One camera path for a clip: exactly one of ``preset`` (with ``amount``), ``keyframes``
    (the Camera Keyframes node's text) or ``camera_file`` (absolute)."""
    name: str
    line: int = field(compare=False)
    preset: str | None = None
    amount: float | None = None
    easing: str = "ease-in-out"
    keyframes: str | None = None
    camera_file: Path | None = None


@dataclass(frozen=True)
class Clip:
    """One source video and its depth (``depth_image`` with its reading and range, or
    ``depth_model``), with the camera paths to re-shoot it along. Paths are absolute."""
    name: str
    line: int = field(compare=False)
    video: Path
    paths: tuple[CameraPath, ...]
    depth_image: Path | None = None
    depth_reading: str = _DEFAULT_READING
    depth_near: float = 0.5
    depth_far: float = 20.0
    depth_model: str | None = None


@dataclass(frozen=True)
class Job:
    """A checked shot list. ``models`` is a tuple of ``(key, file name)`` pairs sorted by key
    (a tuple, not a dict, so that a Job stays hashable and immutable): ``dict(job.models)``."""
    source: Path
    backbone: str
    output: Path
    clips: tuple[Clip, ...]
    seed: int = 0
    train_steps: int = 400
    sample_steps: int | None = None
    rank: int = 16
    learning_rate: float = 5e-4
    prompt: str | None = None
    models: tuple[tuple[str, str], ...] = ()

    def shots(self) -> list[tuple[Clip, CameraPath]]:
        """Every (clip, camera path) pair, in file order."""
        return [(clip, path) for clip in self.clips for path in clip.paths]


# --- reading the file ------------------------------------------------------------------------

def load_job(path: str | os.PathLike) -> Job:
    """Read, parse and check the shot list at ``path`` (``.toml`` or ``.json``, UTF-8).

    Refuses anything but a regular file of at most :data:`MAX_BYTES` before reading it, and
    opens it non-blocking, so a FIFO or device given by mistake fails at once instead of
    hanging the submitter.
    """
    source = Path(os.path.abspath(path))
    _check_suffix(source)
    try:
        info = os.stat(source)
    except (OSError, ValueError) as err:
        raise ShotListError(source, None, _FILE, f"cannot be read ({_reason(err)})",
                            "Check the shot list's path.") from None
    _check_regular(source, info)
    try:
        # O_NONBLOCK: if the file was swapped for a FIFO since the stat, opening does not wait
        # for a writer; fstat below then refuses it.
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise ShotListError(source, None, _FILE, f"cannot be read ({_reason(err)})",
                            "Check the file's permissions.") from None
    with os.fdopen(fd, "rb") as handle:
        _check_regular(source, os.fstat(handle.fileno()))
        data = handle.read(MAX_BYTES + 1)
    _check_size(source, len(data))
    try:
        text = data.decode("utf-8-sig")  # -sig: a byte-order mark (Windows editors) is not an error
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ShotListError(source, line, _SYNTAX, "is not valid UTF-8 text",
                            "Save the shot list as UTF-8.") from None
    return parse_job(text, source)


def parse_job(text: str, source: Path) -> Job:
    """Parse and check shot-list ``text`` as if read from ``source``.

    The format comes from ``source``'s suffix; relative paths in the text are taken relative to
    ``source``'s folder (the folder as given, not a symlink's target), and every Path in the
    result is absolute and resolved.
    """
    source = Path(os.path.abspath(source))
    kind = _check_suffix(source)
    if kind == "toml":
        data = _parse_toml(text, source)
        lines, duplicates = _toml_lines(text), []  # tomllib itself rejects duplicate keys
    else:
        data = _parse_json(text, source)
        lines, duplicates = _json_lines(text)
    checker = _Checker(source, lines)
    for path, line, first_line in duplicates:
        checker.report(checker.error(
            path, f"is given twice (lines {first_line} and {line}); JSON would silently keep the last",
            "Keep one of them.", line=line))
    job = _read_job(checker, data)
    checker.raise_first()
    return job


def _check_suffix(source: Path) -> str:
    kind = source.suffix.lower().lstrip(".")
    if kind not in ("toml", "json"):
        raise ShotListError(source, None, _FILE, f"has the suffix {source.suffix or '(none)'!r}, "
                            "which is neither .toml nor .json", "Name the shot list *.toml or *.json.")
    return kind


def _check_regular(source: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise ShotListError(source, None, _FILE, f"is not a regular file (it is {_file_kind(info)})",
                            "Give the path of the shot list file itself.")
    _check_size(source, info.st_size)


def _check_size(source: Path, size: int) -> None:
    if size > MAX_BYTES:
        raise ShotListError(source, None, _FILE, f"is larger than {MAX_BYTES // (1024 * 1024)} MiB",
                            "A shot list is a small text file; check that this is the right file.")


def _parse_toml(text: str, source: Path) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # Python 3.11's TOMLDecodeError has no lineno attribute: the position is in the message.
        message = str(err)
        found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if found:
            message = f"{message[:found.start()]} (column {found.group(2)})"
            line = int(found.group(1))
        else:
            message = re.sub(r"\s*\(at end of document\)$", " (at the end of the file)", message)
            line = text.count("\n") + 1
        raise ShotListError(source, line, _SYNTAX, _lower_first(message),
                            "Fix the TOML on that line (https://toml.io).") from None
    except (ValueError, RecursionError) as err:  # e.g. an integer with thousands of digits
        raise ShotListError(source, None, _SYNTAX, f"cannot be parsed as TOML ({err})",
                            "Fix the TOML.") from None


def _parse_json(text: str, source: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ShotListError(source, err.lineno, _SYNTAX, f"{_lower_first(err.msg)} (column {err.colno})",
                            "Fix the JSON on that line.") from None
    except (ValueError, RecursionError) as err:  # e.g. an integer with thousands of digits, deep nesting
        raise ShotListError(source, None, _SYNTAX, f"cannot be parsed as JSON ({err})",
                            "Fix the JSON.") from None


# --- where things are: line locators ---------------------------------------------------------
# tomllib and json return plain dicts and lists and keep no positions, and the standard library
# has no position-keeping parser for either format, so these two small scanners find the line of
# every key and table. They run only on text the real parser has already accepted, so they only
# need to follow the parts of the syntax that can hide a key (strings, brackets), not check it.
# Both return {field path: line}, e.g. {('clips', 0, 'paths', 1, 'amount'): 14}.

def _toml_lines(text: str) -> dict[FieldPath, int]:
    """Lines of the keys and table headers of valid TOML.

    Tracks the current table header (with array-of-tables indices) and records each ``key =``
    line under it. Lines inside a multi-line string or a multi-line array are skipped: a value
    starts on its key's line, which is the line that gets reported.
    """
    lines: dict[FieldPath, int] = {}
    counts: dict[FieldPath, int] = {}  # array-of-tables path -> elements seen so far
    table: FieldPath = ()
    value = _TomlValueScan()
    for number, line in enumerate(text.split("\n"), 1):
        if value.open():  # still inside a multi-line string or array from an earlier line
            value.scan(line, 0)
            continue
        start = _skip_space(line, 0)
        if start >= len(line) or line[start] == "#":
            continue
        if line[start] == "[":
            array = line.startswith("[[", start)
            parsed = _toml_key(line, start + (2 if array else 1))
            if parsed is not None:
                table = _enter_table(parsed[0], array, counts, lines, number)
            continue
        parsed = _toml_key(line, start)
        if parsed is None or not line.startswith("=", parsed[1]):
            continue
        path = table + tuple(parsed[0])
        for depth in range(len(table) + 1, len(path) + 1):  # dotted keys: a.b = 1 also places a
            lines.setdefault(path[:depth], number)
        value.scan(line, parsed[1] + 1)
    return lines


def _enter_table(parts: list[str], array: bool, counts: dict, lines: dict, number: int) -> FieldPath:
    """The field path a ``[a.b]`` / ``[[a.b]]`` header opens, recording header lines."""
    path: FieldPath = ()
    for depth, part in enumerate(parts):
        path += (part,)
        if array and depth == len(parts) - 1:  # [[a.b]]: a new element of the array a.b
            index = counts.get(path, 0)
            counts[path] = index + 1
            lines.setdefault(path, number)
            path += (index,)
        elif path in counts:  # a name that is an array of tables: its latest element
            path += (counts[path] - 1,)
        lines.setdefault(path, number)
    return path


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(line: str, i: int) -> tuple[list[str], int] | None:
    """The parts of a (dotted, possibly quoted) TOML key starting at ``line[i]``, and the index
    after it and any spaces; None where no key starts there."""
    parts = []
    while True:
        i = _skip_space(line, i)
        if line.startswith('"', i):
            end = _basic_string_end(line, i)
            if end < 0:
                return None
            parts.append(_decode_basic(line[i:end]))
        elif line.startswith("'", i):
            end = line.find("'", i + 1) + 1
            if end <= 0:
                return None
            parts.append(line[i + 1:end - 1])
        else:
            bare = _BARE_KEY.match(line, i)
            if bare is None:
                return None
            parts.append(bare.group())
            end = bare.end()
        i = _skip_space(line, end)
        if not line.startswith(".", i):
            return parts, i
        i += 1


class _TomlValueScan:
    """Follows a TOML value across lines: the open multi-line string, and the bracket depth."""

    def __init__(self):
        self.quote: str | None = None  # '"""' or "'''" while inside a multi-line string
        self.depth = 0  # open [ and { of arrays and inline tables

    def open(self) -> bool:
        return self.quote is not None or self.depth > 0

    def scan(self, line: str, i: int) -> None:
        """Move through ``line`` from ``i``, updating the state; stops at a comment."""
        while i < len(line):
            if self.quote is not None:
                i = self._close_quote(line, i)
                continue
            char = line[i]
            if char == "#":
                return
            if line.startswith('"""', i) or line.startswith("'''", i):
                self.quote = line[i:i + 3]
                i += 3
            elif char == '"':
                end = _basic_string_end(line, i)
                i = len(line) if end < 0 else end
            elif char == "'":
                end = line.find("'", i + 1)
                i = len(line) if end < 0 else end + 1
            else:
                if char in "[{":
                    self.depth += 1
                elif char in "]}":
                    self.depth = max(0, self.depth - 1)
                i += 1

    def _close_quote(self, line: str, i: int) -> int:
        """Index after the closing delimiter on this line, or the line's end if it has none."""
        quote = self.quote
        j = i
        while j < len(line):
            if quote == '"""' and line[j] == "\\":  # an escape: \" does not close
                j += 2
            elif line.startswith(quote, j):
                while j < len(line) and line[j] == quote[0]:  # """a"""" ends in a quote character
                    j += 1
                self.quote = None
                return j
            else:
                j += 1
        return len(line)


def _json_lines(text: str) -> tuple[dict[FieldPath, int], list[tuple[FieldPath, int, int]]]:
    """Lines of the keys and values of valid JSON, and the keys given twice in one object.

    A key's line is the line of its ``"key":``; an array element's (and the root's) is the line
    where the value starts (for an object, its ``{``). Duplicates come back as (path, line,
    first line); json.loads keeps the last value, and so do these lines.
    """
    lines: dict[FieldPath, int] = {}
    duplicates: list[tuple[FieldPath, int, int]] = []
    stack: list[_JsonFrame] = []
    line, i, size = 1, 0, len(text)
    while i < size:
        char = text[i]
        if char == "\n":
            line += 1
        elif char in " \t\r:":
            pass
        elif char == ",":
            stack[-1].next_item()
        elif char in "}]":
            stack.pop()
        elif char == '"' and stack and stack[-1].wants_key:
            end = _basic_string_end(text, i)
            if end < 0:  # cannot happen in text json.loads accepted; stop rather than loop
                break
            frame = stack[-1]
            frame.key, frame.wants_key = json.loads(text[i:end]), False
            path = frame.path + (frame.key,)
            if frame.key in frame.seen:
                duplicates.append((path, line, frame.seen[frame.key]))
            frame.seen[frame.key] = lines[path] = line
            i = end
            continue
        else:  # a value starts: an object, an array, a string or a bare word (number, true, NaN, ...)
            path = stack[-1].child() if stack else ()
            lines.setdefault(path, line)
            if char in "{[":
                stack.append(_JsonFrame(char, path))
            else:
                end = _basic_string_end(text, i) if char == '"' else _json_word_end(text, i)
                i = end if end > i else size
                continue
        i += 1
    return lines, duplicates


class _JsonFrame:
    """An open JSON object or array while scanning: its path, and where inside it we are."""

    def __init__(self, kind: str, path: FieldPath):
        self.is_object = kind == "{"
        self.path = path
        self.wants_key = self.is_object
        self.key: str | None = None
        self.index = 0
        self.seen: dict[str, int] = {}  # key -> line, to catch keys given twice

    def next_item(self) -> None:
        if self.is_object:
            self.wants_key = True
        else:
            self.index += 1

    def child(self) -> FieldPath:
        return self.path + ((self.key,) if self.is_object else (self.index,))


def _json_word_end(text: str, i: int) -> int:
    while i < len(text) and text[i] not in ",]}: \t\r\n":
        i += 1
    return i


_BASIC_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')  # "...", with backslash escapes, on one line


def _basic_string_end(text: str, i: int) -> int:
    """Index after the closing quote of the "..." string at ``text[i]``; -1 if it does not close
    on this line."""
    found = _BASIC_STRING.match(text, i)
    return found.end() if found else -1


def _decode_basic(quoted: str) -> str:
    try:
        return json.loads(quoted)  # JSON's escapes are TOML's, apart from \UXXXXXXXX and \e
    except ValueError:
        return quoted[1:-1]


def _skip_space(line: str, i: int) -> int:
    while i < len(line) and line[i] in " \t\r":
        i += 1
    return i


# --- checking --------------------------------------------------------------------------------

class _Checker:
    """The source, the key lines, and the problems found so far.

    Every check runs, so the problem nearest the top of the file can be reported, rather than
    whichever one the code happens to check first.
    """

    def __init__(self, source: Path, lines: dict[FieldPath, int]):
        self.source = source
        self.base = source.parent
        self.lines = lines
        self.errors: list[tuple[ShotListError, float | None]] = []  # (error, its place in the file)
        self._ends: dict[FieldPath, int] | None = None

    def line(self, path: FieldPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor the locator saw (an inline table)."""
        for depth in range(len(path), -1, -1):
            if path[:depth] in self.lines:
                return self.lines[path[:depth]]
        return None

    def error(self, path: FieldPath, problem: str, hint: str = "", line: int | None = -1) -> ShotListError:
        """A ShotListError for ``path``, at its line unless ``line`` (which may be None) is given."""
        return ShotListError(self.source, self.line(path) if line == -1 else line,
                             _field_name(path), problem, hint)

    def report(self, error: ShotListError, place: float | None = None) -> None:
        """Record a problem; ``place`` (default: its line) orders it among the others."""
        self.errors.append((error, error.line if place is None else place))

    def missing(self, table: FieldPath, key: str | None, problem: str, hint: str) -> None:
        """Record that ``table`` lacks ``key`` (None: one of several keys).

        The message gives the line of the table's header, but the problem is ordered as if at the
        table's end, where the key was looked for in vain: a typo'd key inside the table (the
        likely cause) comes first.
        """
        error = self.error(table + ((key,) if key else ()), problem, hint, line=self.line(table))
        end = self._end_line(table)
        self.report(error, None if end is None else end + 0.5)

    def _end_line(self, table: FieldPath) -> int | None:
        if self._ends is None:  # once, for all tables: the last line of any key under each path
            self._ends = {}
            for path, line in self.lines.items():
                for depth in range(len(path) + 1):
                    if self._ends.get(path[:depth], 0) < line:
                        self._ends[path[:depth]] = line
        return self._ends.get(table)

    def attempt(self, check: Callable, *args) -> Any:
        """``check(*args)``; a ShotListError it raises is recorded and None returned."""
        try:
            return check(*args)
        except ShotListError as err:
            self.report(err)
            return None

    def raise_first(self) -> None:
        """Raise the problem nearest the top of the file (those with no line last)."""
        if self.errors:
            first, _ = min(self.errors, key=lambda item: (item[1] is None, item[1] or 0))
            raise first


def _field_name(path: FieldPath) -> str:
    """('clips', 1, 'paths', 0, 'amount') -> 'clips[1].paths[0].amount'; () -> '(top level)'."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


Reader = Callable[[_Checker, Any, FieldPath], Any]


def _read_fields(c: _Checker, table: Any, path: FieldPath, readers: dict[str, Reader],
                 required: dict[str, str], what: str) -> dict[str, Any] | None:
    """Check one table: its type, unknown keys, required keys, and each value with its reader.

    ``required`` maps each required key to what to do when it is missing. Returns the read
    values of the keys that passed (None if ``table`` is not a table at all).
    """
    if not isinstance(table, dict):
        c.report(c.error(path, f"must be a table ({what}), got {_describe(table)}",
                         "Write it as a table of settings."))
        return None
    allowed = list(readers)
    out = {}
    for key, value in table.items():
        if key not in readers:
            c.report(_unknown_key(c, path + (key,), key, allowed))
            continue
        result = c.attempt(readers[key], c, value, path + (key,))
        if result is not None:
            out[key] = result
    for key, hint in required.items():
        if key not in table:
            c.missing(path, key, f"is missing ({what} needs one)", hint)
    return out


def _unknown_key(c: _Checker, path: FieldPath, key: str, allowed: list[str],
                 problem: str = "is not a setting here") -> ShotListError:
    close = difflib.get_close_matches(key, allowed, n=1)
    guess = f"Did you mean {close[0]!r}? " if close else ""
    return c.error(path, problem, f"{guess}Allowed here: {', '.join(allowed)}.")


def _read_job(c: _Checker, data: Any) -> Job | None:
    """The Job, or None when problems were recorded in ``c``."""
    top = _read_fields(c, data, (), _TOP_READERS, _TOP_REQUIRED, "the shot list")
    if top is None:
        return None
    backbone = top.get("backbone")
    if backbone is not None:
        _check_models_for(c, top.get("models") or (), backbone)
        if "prompt" in top and backbone != "wan":
            c.report(c.error(("prompt",), f"is only used by the wan backbone, not {backbone}",
                             "Remove prompt, or set backbone = \"wan\"."))
    if c.errors:
        return None
    settings = {key: value for key, value in top.items() if key not in ("backbone", "output", "clips")}
    return Job(source=Path(c.source).resolve(), backbone=backbone, output=top["output"],
               clips=top["clips"], **settings)


def _check_models_for(c: _Checker, models: tuple[tuple[str, str], ...], backbone: str) -> None:
    allowed = list(MODEL_KEYS[backbone])
    for key, _ in models:
        if key not in allowed:
            c.report(_unknown_key(c, ("models", key), key, allowed,
                                  f"is not a model of the {backbone} backbone"))


def _read_clips(c: _Checker, value: Any, path: FieldPath) -> tuple[Clip, ...] | None:
    items = _read_array(c, value, path, "clip", "Add a [[clips]] table with a name, a video and a depth source.")
    names: dict[str, tuple[str, FieldPath]] = {}
    clips = []
    for index, item in enumerate(items):
        clips.append(_read_clip(c, item, path + (index,), names))
    return None if None in clips else tuple(clips)


def _read_array(c: _Checker, value: Any, path: FieldPath, what: str, hint: str) -> list:
    """A non-empty array of tables (the tables themselves are checked by the caller)."""
    if not isinstance(value, list):
        raise c.error(path, f"must be a list of {what} tables, got {_describe(value)}", hint)
    if not value:
        raise c.error(path, f"has no {what}s", hint)
    return value


def _read_clip(c: _Checker, table: Any, path: FieldPath, names: dict) -> Clip | None:
    before = len(c.errors)
    got = _read_fields(c, table, path, _CLIP_READERS, _CLIP_REQUIRED, "a clip")
    if got is None:
        return None
    _check_unique(c, got.get("name"), path, names, "clip", "clips")
    source = _exactly_one(c, table, path, ("depth_image", "depth_model"), "a clip")
    for key in ("depth_reading", "depth_near", "depth_far"):
        if key in table and source == "depth_model":
            c.report(c.error(path + (key,), "only applies to a depth_image, and this clip has a depth_model",
                             f"Remove {key}, or give a depth_image instead."))
    near, far = got.get("depth_near", 0.5), got.get("depth_far", 20.0)
    readable = all(key in got for key in ("depth_near", "depth_far") if key in table)
    if readable and source != "depth_model" and far <= near:
        if "depth_far" in table:
            c.report(c.error(path + ("depth_far",), f"must be larger than depth_near ({near:g}), got {far:g}",
                             "Give the distance of the farthest depth-map value."))
        else:
            c.report(c.error(path + ("depth_near",), f"must be smaller than depth_far (default {far:g}), "
                             f"got {near:g}", "Lower depth_near or give a larger depth_far."))
    if len(c.errors) > before:
        return None
    return Clip(name=got["name"], line=c.line(path), video=got["video"], paths=got["paths"],
                **{key: got[key] for key in ("depth_image", "depth_reading", "depth_near", "depth_far",
                                             "depth_model") if key in got})


def _read_paths(c: _Checker, value: Any, path: FieldPath) -> tuple[CameraPath, ...] | None:
    items = _read_array(c, value, path, "camera path",
                        "Add a [[clips.paths]] table with a name and a preset, keyframes or camera_file.")
    names: dict[str, tuple[str, FieldPath]] = {}
    paths = [_read_path(c, item, path + (index,), names) for index, item in enumerate(items)]
    return None if None in paths else tuple(paths)


def _read_path(c: _Checker, table: Any, path: FieldPath, names: dict) -> CameraPath | None:
    before = len(c.errors)
    got = _read_fields(c, table, path, _PATH_READERS, _PATH_REQUIRED, "a camera path")
    if got is None:
        return None
    _check_unique(c, got.get("name"), path, names, "camera path", "this clip's paths")
    kind = _exactly_one(c, table, path, ("preset", "keyframes", "camera_file"), "a camera path")
    for key in ("amount", "easing"):
        if key in table and kind not in (None, "preset"):
            c.report(c.error(path + (key,), f"only applies to a preset, and this path has {kind}",
                             f"Remove {key}."))
    if kind == "preset" and "amount" not in table:
        c.missing(path, "amount", "is missing (a preset needs one)",
                  f"Add amount = ... to this path ({_units(got.get('preset'))}).")
    if kind == "preset" and "preset" in got and "amount" in got:
        c.attempt(_check_preset_amount, c, got["preset"], got["amount"], path + ("amount",))
    if len(c.errors) > before:
        return None
    return CameraPath(line=c.line(path), **got)


def _check_unique(c: _Checker, name: str | None, path: FieldPath, names: dict, what: str, where: str) -> None:
    """Names become folders, so two that differ only in case would collide on macOS and Windows."""
    if name is None:
        return
    earlier = names.setdefault(name.casefold(), (name, path))
    if earlier[1] != path:
        line = c.line(earlier[1] + ("name",))
        first = f" ({_field_name(earlier[1])}, line {line})" if line is not None else f" ({_field_name(earlier[1])})"
        same = "" if earlier[0] == name else f" {earlier[0]!r}, which differs only in case"
        c.report(c.error(path + ("name",), f"{name!r} is already the name of another {what}{same}{first}",
                         f"Give each of {where} its own name (names become folder names)."))


def _exactly_one(c: _Checker, table: dict, path: FieldPath, keys: tuple[str, ...], what: str) -> str | None:
    """The one of ``keys`` that ``table`` gives; records a problem if it gives none or several."""
    given = sorted((key for key in keys if key in table), key=lambda key: c.line(path + (key,)) or 0)
    if len(given) == 1:
        return given[0]
    choices = ", ".join(keys[:-1]) + f" or {keys[-1]}"
    if not given:
        c.missing(path, None, f"{what} needs one of {choices}", "Add one of them.")
    else:
        first, second = given[0], given[1]
        at = c.line(path + (first,))
        c.report(c.error(path + (second,), f"is given together with {first}"
                         + (f" (line {at})" if at is not None else ""),
                         f"Give only one of {choices}."))
    return None


# --- value readers: each takes (checker, value, path) and returns the value or raises ----------

def _describe(value: Any) -> str:
    """A short, type-naming description of a value for messages (never a long string)."""
    if value is None:
        return "null (to use a default, leave the key out)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"the string {shown!r}"
    if isinstance(value, (int, float)):
        return f"{value!r}" if not isinstance(value, int) or abs(value) < 10 ** 30 else "a very large integer"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"  # TOML dates and times


def _integer(low: int, high: int) -> Reader:
    def read(c: _Checker, value: Any, path: FieldPath) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise c.error(path, f"must be a whole number, got {_describe(value)}",
                          f"Give a number from {low} to {high} without quotes or decimals.")
        if not low <= value <= high:
            raise c.error(path, f"must be from {low} to {high}, got {_describe(value)}",
                          f"Give a number from {low} to {high}.")
        return value
    return read


def _number(c: _Checker, value: Any, path: FieldPath) -> float:
    """A finite float; an integer is accepted and converted."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise c.error(path, f"must be a number, got {_describe(value)}", "Give a number without quotes.")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise c.error(path, f"must be a finite number, got {_describe(value)}", "Give an ordinary number.")
    return number


def _positive(high: float | None = None) -> Reader:
    def read(c: _Checker, value: Any, path: FieldPath) -> float:
        number = _number(c, value, path)
        if number <= 0 or (high is not None and number > high):
            limit = "larger than 0" + (f" and at most {high:g}" if high is not None else "")
            raise c.error(path, f"must be {limit}, got {number:g}", f"Give a number {limit}.")
        return number
    return read


def _string(c: _Checker, value: Any, path: FieldPath) -> str:
    if not isinstance(value, str):
        raise c.error(path, f"must be a string, got {_describe(value)}", "Put the text in quotes.")
    return value


def _text(max_chars: int | None = None) -> Reader:
    """A string with something in it, at most ``max_chars`` long."""
    def read(c: _Checker, value: Any, path: FieldPath) -> str:
        text = _string(c, value, path)
        if not text.strip():
            raise c.error(path, "is empty", "Write the text, or remove the setting.")
        if max_chars is not None and len(text) > max_chars:
            raise c.error(path, f"is {len(text)} characters long, more than {max_chars}", "Shorten it.")
        return text
    return read


def _choice(options: tuple[str, ...]) -> Reader:
    def read(c: _Checker, value: Any, path: FieldPath) -> str:
        text = _string(c, value, path)
        if text not in options:
            close = difflib.get_close_matches(text, options, n=1)
            guess = f"Did you mean {close[0]!r}? " if close else ""
            raise c.error(path, f"{_describe(text)} is not one of the choices",
                          f"{guess}Choose one of: {', '.join(repr(option) for option in options)}.")
        return text
    return read


def _name(c: _Checker, value: Any, path: FieldPath) -> str:
    text = _string(c, value, path)
    if not NAME_PATTERN.fullmatch(text):
        raise c.error(path, f"{_describe(text)} cannot be used as a name (it names folders)",
                      "Use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit.")
    return text


def _folder_name(c: _Checker, value: Any, path: FieldPath) -> str:
    """A single folder name (a depth model under models/depth/): no separators, not . or .."""
    text = _text()(c, value, path)
    if "/" in text or "\\" in text or "\0" in text or text in (".", ".."):
        raise c.error(path, f"{_describe(text)} is not a folder name",
                      "Give the name of the model's folder under the workers' models/depth/, without a path.")
    return text


def _resolve(c: _Checker, value: Any, path: FieldPath) -> Path:
    """An absolute, resolved path from a string relative to the shot list's folder."""
    text = _string(c, value, path)
    if not text.strip():
        raise c.error(path, "is empty", "Give a path, relative to the shot list's folder or absolute.")
    if "\0" in text:
        raise c.error(path, "contains a NUL character", "Give an ordinary path.")
    try:
        return (c.base / text).resolve()
    except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop on Python < 3.13
        raise c.error(path, f"{text!r} cannot be resolved ({_reason(err)})", "Check the path.") from None


def _existing_file(c: _Checker, value: Any, path: FieldPath) -> Path:
    """A path that exists and is a regular file (stat only: the file is never opened here)."""
    resolved = _resolve(c, value, path)
    where = f"{value!r}" + ("" if Path(value).is_absolute() else f" (looked for {resolved})")
    try:
        info = os.stat(resolved)
    except FileNotFoundError:
        raise c.error(path, f"{where} does not exist",
                      "Check the path; relative paths start at the shot list's folder.") from None
    except (OSError, ValueError) as err:
        raise c.error(path, f"{where} cannot be read ({_reason(err)})", "Check the path and its permissions.") from None
    if not stat.S_ISREG(info.st_mode):
        raise c.error(path, f"{where} is not a regular file (it is {_file_kind(info)})",
                      "Give the path of a file.")
    return resolved


def _output_folder(c: _Checker, value: Any, path: FieldPath) -> Path:
    """The output folder: it need not exist yet, but must not be something other than a folder."""
    resolved = _resolve(c, value, path)
    try:
        info = os.stat(resolved)
    except FileNotFoundError:
        return resolved
    except (OSError, ValueError) as err:
        raise c.error(path, f"{value!r} cannot be checked ({_reason(err)})", "Check the path.") from None
    if not stat.S_ISDIR(info.st_mode):
        raise c.error(path, f"{value!r} exists and is not a folder (it is {_file_kind(info)})",
                      "Give a folder, or a path where one can be made.")
    return resolved


def _read_models(c: _Checker, value: Any, path: FieldPath) -> tuple[tuple[str, str], ...]:
    """The [models] table: file names as the workers' loaders list them (subfolders with '/')."""
    if not isinstance(value, dict):
        raise c.error(path, f"must be a table of model file names, got {_describe(value)}",
                      "Write it as a [models] table.")
    models = []
    before = len(c.errors)
    for key, name in value.items():
        name = c.attempt(_text(), c, name, path + (key,))
        if name is None:
            continue
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts or "\0" in name:
            c.report(c.error(path + (key,), f"{_describe(name)} is not a model name",
                             "Give the file name as the workers' model loader lists it, not a path."))
            continue
        models.append((key, name))
    if len(c.errors) > before:
        return None
    return tuple(sorted(models))


def _check_preset_amount(c: _Checker, preset: str, amount: float, path: FieldPath) -> None:
    # Mirrors recapture_core.camera.presets.check_preset_amount (tests keep the two in step).
    if amount < 0:
        raise c.error(path, f"must not be negative, got {amount:g}",
                      "The direction is part of the preset (e.g. 'orbit right' instead of a negative 'orbit left').")
    if preset == "dolly in" and amount >= 1.0:
        raise c.error(path, f"dolly in by {amount:g} subject distances reaches or passes the subject",
                      "Use an amount below 1.0 (0.3 moves a third of the way to the subject).")


def _units(preset: str | None) -> str:
    """The unit of a preset's amount, as recapture_core.camera.presets.UNITS words it (shortened)."""
    family = (preset or "").split(" ")[0]
    return {"orbit": "in degrees", "pan": "in degrees", "tilt": "in degrees", "roll": "in degrees",
            "zoom": "a focal-length increase, e.g. 0.5", "static": "any number: static ignores it"
            }.get(family, "in subject distances")


def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err)


def _file_kind(info: os.stat_result) -> str:
    mode = info.st_mode
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISREG, "a file")):
        if test(mode):
            return kind
    return "not a file"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


# What each table may hold, in the order the messages list them.
_TOP_READERS: dict[str, Reader] = {
    "backbone": _choice(BACKBONES),
    "output": _output_folder,
    "seed": _integer(0, 2 ** 63 - 1),
    "train_steps": _integer(1, 100_000),
    "sample_steps": _integer(1, 1000),
    "rank": _integer(1, 256),
    "learning_rate": _positive(1.0),
    "prompt": _string,
    "models": _read_models,
    "clips": _read_clips,
}
_TOP_REQUIRED = {"backbone": 'Add backbone = "svd" or backbone = "wan".',
                 "output": 'Add output = "<folder for the results>".',
                 "clips": "Add a [[clips]] table with a name, a video, a depth source and camera paths."}
_CLIP_REQUIRED = {"name": 'Add name = "<a name for the clip>".',
                  "video": 'Add video = "<path of the video>".',
                  "paths": "Add a [[clips.paths]] table after it, with a name and a preset, keyframes or camera_file."}
_PATH_REQUIRED = {"name": 'Add name = "<a name for the camera path>".'}
_CLIP_READERS: dict[str, Reader] = {
    "name": _name,
    "video": _existing_file,
    "depth_image": _existing_file,
    "depth_reading": _choice(DEPTH_READINGS),
    "depth_near": _positive(),
    "depth_far": _positive(),
    "depth_model": _folder_name,
    "paths": _read_paths,
}
_PATH_READERS: dict[str, Reader] = {
    "name": _name,
    "preset": _choice(PRESETS),
    "amount": _number,
    "easing": _choice(EASINGS),
    "keyframes": _text(MAX_KEYFRAMES_CHARS),
    "camera_file": _existing_file,
}
