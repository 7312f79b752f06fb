"""recapture_farm/shotlist.py: shot lists (TOML or JSON) parsed, checked, and their errors placed.

Most error cases run on the same document written both ways (``render``), and expect the line
that a plain text search of the written file finds, so each case checks both locators; a few
hand-written files pin exact line numbers.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import math
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load_module():
    # By file, not as recapture_farm.shotlist: the package's __init__ (the lead's) may import Ray;
    # this module must stand alone.
    spec = importlib.util.spec_from_file_location("farm_shotlist_under_test", REPO / "recapture_farm" / "shotlist.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


shotlist = _load_module()
ShotListError = shotlist.ShotListError
FORMATS = ["toml", "json"]


# --- documents ----------------------------------------------------------------------------------

def base_doc() -> dict:
    return {
        "backbone": "svd", "output": "reshoots", "seed": 7, "train_steps": 300, "sample_steps": 20,
        "rank": 8, "learning_rate": 1e-4,
        "models": {"checkpoint": "svd_xt.safetensors"},
        "clips": [
            {"name": "box", "video": "clips/box.mp4", "depth_image": "clips/box_depth.png",
             "depth_near": 1.5, "depth_far": 6.0,
             "paths": [{"name": "orbit", "preset": "orbit left", "amount": 10.0},
                       {"name": "push", "keyframes": "0:\n13: dolly_in=0.2"},
                       {"name": "tracked", "camera_file": "clips/cams.json"}]},
            {"name": "cup", "video": "clips/cup.mp4", "depth_model": "depth-anything-v2-small",
             "paths": [{"name": "arc", "preset": "arc left", "amount": 0.3, "easing": "linear"}]},
        ],
    }


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value == math.inf else repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string for these characters
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return "{" + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + "}"


def is_tables(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def toml_table(table: dict, prefix: str, indent: str) -> list[str]:
    """Keys first (TOML needs them before sub-tables), then [table]s and [[arrays of tables]]."""
    out = [f"{indent}{key} = {toml_value(value)}" for key, value in table.items()
           if not isinstance(value, dict) and not is_tables(value)]
    for key, value in table.items():
        if isinstance(value, dict):
            out += ["", f"{indent}[{prefix}{key}]"] + toml_table(value, f"{prefix}{key}.", indent)
        elif is_tables(value):
            for item in value:
                out += ["", f"{indent}[[{prefix}{key}]]"] + toml_table(item, f"{prefix}{key}.", indent + "  ")
    return out


def render(doc, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2) + "\n"
    return "\n".join(toml_table(doc, "", "")) + "\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("box.mp4", "box_depth.png", "cams.json", "cup.mp4"):
        (clips / name).write_bytes(b"not really media")
    return tmp_path


def write(folder: Path, doc, fmt: str, name: str = "shots") -> tuple[Path, str]:
    text = render(doc, fmt)
    path = folder / f"{name}.{fmt}"
    path.write_text(text, encoding="utf-8")
    return path, text


def error_of(folder: Path, doc, fmt: str) -> tuple[ShotListError, str]:
    path, text = write(folder, doc, fmt)
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(path)
    return caught.value, text


def line_of(text: str, needle: str, nth: int = 0) -> int:
    """1-based line of the nth line containing ``needle``: a plain search, independent of the locators."""
    hits = [number for number, line in enumerate(text.split("\n"), 1) if needle in line]
    assert len(hits) > nth, f"{needle!r} occurs {len(hits)} times"
    return hits[nth]


def header_line(text: str, fmt: str, clip: int, path: int | None = None) -> int:
    """Line of a clip's (or a clip's path's) table: [[clips]] / [[clips.paths]], or the JSON object's {."""
    if fmt == "toml":
        if path is None:
            return line_of(text, "[[clips]]", clip)
        clip_line = line_of(text, "[[clips]]", clip)
        hits = [n for n, line in enumerate(text.split("\n"), 1) if "[[clips.paths]]" in line and n > clip_line]
        return hits[path]
    # json.dumps(indent=2): a clip's { alone on a line at indent 4, a path's at indent 8
    lines = text.split("\n")
    clip_line = [n for n, line in enumerate(lines, 1) if line == "    {"][clip]
    if path is None:
        return clip_line
    return [n for n, line in enumerate(lines, 1) if line == "        {" and n > clip_line][path]


def assert_error(err: ShotListError, field: str, line: int | None, *fragments: str) -> None:
    message = str(err)
    assert err.field == field, message
    assert err.line == line, message
    expected_start = f"{err.source.name}: " + (f"line {line}: " if line is not None else "") + f"{field}: "
    assert message.startswith(expected_start), message
    if line is None:
        assert ": line " not in message, message
    for fragment in fragments:
        assert fragment in message, message


# --- valid shot lists ---------------------------------------------------------------------------

def test_toml_and_json_give_equal_jobs(folder):
    toml_job = shotlist.load_job(write(folder, base_doc(), "toml")[0])
    json_job = shotlist.load_job(write(folder, base_doc(), "json")[0])
    assert toml_job.source == (folder / "shots.toml").resolve()
    assert json_job.source == (folder / "shots.json").resolve()
    assert dataclasses.replace(json_job, source=toml_job.source) == toml_job
    assert toml_job.backbone == "svd" and toml_job.seed == 7 and toml_job.train_steps == 300
    assert toml_job.sample_steps == 20 and toml_job.rank == 8 and toml_job.learning_rate == 1e-4
    assert toml_job.models == (("checkpoint", "svd_xt.safetensors"),)
    box, cup = toml_job.clips
    assert (box.depth_near, box.depth_far, box.depth_model) == (1.5, 6.0, None)
    assert (cup.depth_image, cup.depth_model) == (None, "depth-anything-v2-small")
    assert box.paths[1].keyframes == "0:\n13: dolly_in=0.2"
    assert cup.paths[0].easing == "linear"
    hash(toml_job)  # frozen all the way down: usable as a key, safe to share between threads


def test_clip_and_path_lines_are_their_table_headers(folder):
    path, text = write(folder, base_doc(), "toml")
    job = shotlist.load_job(path)
    assert [clip.line for clip in job.clips] == [header_line(text, "toml", 0), header_line(text, "toml", 1)]
    assert [p.line for p in job.clips[0].paths] == [header_line(text, "toml", 0, i) for i in range(3)]
    path, text = write(folder, base_doc(), "json")
    job = shotlist.load_job(path)
    assert [clip.line for clip in job.clips] == [header_line(text, "json", 0), header_line(text, "json", 1)]
    assert [p.line for p in job.clips[0].paths] == [header_line(text, "json", 0, i) for i in range(3)]


def test_defaults(folder):
    doc = {"backbone": "wan", "output": "out",
           "clips": [{"name": "box", "video": "clips/box.mp4", "depth_image": "clips/box_depth.png",
                      "paths": [{"name": "o", "preset": "orbit left", "amount": 5}]}]}
    job = shotlist.load_job(write(folder, doc, "toml")[0])
    assert (job.seed, job.train_steps, job.sample_steps, job.rank) == (0, 400, None, 16)
    assert job.learning_rate == 5e-4 and job.prompt is None and job.models == ()
    clip = job.clips[0]
    assert (clip.depth_reading, clip.depth_near, clip.depth_far, clip.depth_model) == (
        "metric: near..far, bright = far", 0.5, 20.0, None)
    path = clip.paths[0]
    assert path.easing == "ease-in-out" and path.keyframes is None and path.camera_file is None
    assert path.amount == 5.0 and isinstance(path.amount, float)  # an integer is accepted as a float


def test_relative_paths_resolve_against_the_shot_list_folder(folder, tmp_path_factory, monkeypatch):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.chdir(elsewhere)  # the current folder must not matter
    doc = base_doc()
    doc["clips"][1]["video"] = str(folder / "clips" / "cup.mp4")  # absolute paths are kept
    job = shotlist.load_job(write(folder, doc, "toml")[0])
    box, cup = job.clips
    assert job.output == (folder / "reshoots").resolve()
    assert box.video == (folder / "clips" / "box.mp4").resolve()
    assert box.depth_image == (folder / "clips" / "box_depth.png").resolve()
    assert box.paths[2].camera_file == (folder / "clips" / "cams.json").resolve()
    assert cup.video == (folder / "clips" / "cup.mp4").resolve()
    for value in (job.source, job.output, box.video, box.depth_image, box.paths[2].camera_file):
        assert value.is_absolute()


def test_parse_job_takes_the_format_and_folder_from_source(folder):
    text = render(base_doc(), "json")
    job = shotlist.parse_job(text, folder / "anything.JSON")  # suffix case does not matter
    assert job.clips[0].video == (folder / "clips" / "box.mp4").resolve()


def test_shots_in_file_order(folder):
    job = shotlist.load_job(write(folder, base_doc(), "json")[0])
    assert [(clip.name, path.name) for clip, path in job.shots()] == [
        ("box", "orbit"), ("box", "push"), ("box", "tracked"), ("cup", "arc")]


def test_wan_prompt_and_models(folder):
    doc = base_doc()
    doc.update(backbone="wan", prompt="a red box on a table",
               models={"vae": "wan_2.1_vae.safetensors", "diffusion_model": "wan/t2v_1.3B.safetensors"})
    job = shotlist.load_job(write(folder, doc, "toml")[0])
    assert job.prompt == "a red box on a table"
    assert dict(job.models) == {"vae": "wan_2.1_vae.safetensors", "diffusion_model": "wan/t2v_1.3B.safetensors"}
    assert job.models == tuple(sorted(job.models))  # sorted by key: equal jobs whatever the file order


# --- errors, in both formats --------------------------------------------------------------------

def mutate(**changes):
    """A document edit: keys like 'clips.0.paths.1.amount'; value DELETE removes the key."""
    def edit(doc):
        for dotted, value in changes.items():
            *parents, last = [int(part) if part.isdigit() else part for part in dotted.split("__")]
            target = doc
            for part in parents:
                target = target[part]
            if value is DELETE:
                del target[last]
            else:
                target[last] = value
        return doc
    return edit


DELETE = object()


def rename(where: str, old: str, new: str):
    """A document edit renaming a key, keeping its place."""
    def edit(doc):
        target = doc
        for part in where.split("__") if where else []:
            target = target[int(part) if part.isdigit() else part]
        items = [(new if key == old else key, value) for key, value in target.items()]
        target.clear()
        target.update(items)
        return doc
    return edit


# (id, edit, field, where, message fragments); where: (needle, nth), ('key', key, value) or ('header', clip, path)
CASES = [
    ("typo-in-path", rename("clips__0__paths__0", "amount", "ammount"), "clips[0].paths[0].ammount",
     ("ammount", 0), ["Did you mean 'amount'?", "Allowed here: name, preset, amount"]),
    ("typo-top-level", rename("", "seed", "sed"), "sed", ("sed", 0), ["Did you mean 'seed'?"]),
    ("typo-in-clip", rename("clips__1", "depth_model", "depth_modle"), "clips[1].depth_modle",
     ("depth_modle", 0), ["Did you mean 'depth_model'?"]),
    ("bool-is-not-int", mutate(seed=True), "seed", ("seed", 0), ["whole number", "true (a boolean)"]),
    ("string-is-not-int", mutate(rank="16"), "rank", ("rank", 0), ["whole number", "'16'"]),
    ("float-is-not-int", mutate(train_steps=300.5), "train_steps", ("train_steps", 0), ["whole number"]),
    ("bool-is-not-float", mutate(learning_rate=False), "learning_rate", ("learning_rate", 0), ["number"]),
    ("train-steps-zero", mutate(train_steps=0), "train_steps", ("train_steps", 0), ["from 1 to 100000, got 0"]),
    ("rank-too-big", mutate(rank=257), "rank", ("rank", 0), ["from 1 to 256"]),
    ("seed-too-big", mutate(seed=2 ** 63), "seed", ("seed", 0), ["from 0 to"]),
    ("seed-negative", mutate(seed=-1), "seed", ("seed", 0), ["from 0 to"]),
    ("sample-steps-too-big", mutate(sample_steps=1001), "sample_steps", ("sample_steps", 0), ["from 1 to 1000"]),
    ("learning-rate-above-one", mutate(learning_rate=1.5), "learning_rate", ("learning_rate", 0), ["at most 1"]),
    ("learning-rate-zero", mutate(learning_rate=0), "learning_rate", ("learning_rate", 0), ["larger than 0"]),
    ("amount-nan", mutate(clips__0__paths__0__amount=math.nan), "clips[0].paths[0].amount", ("amount", 0),
     ["finite"]),
    ("depth-far-inf", mutate(clips__0__depth_far=math.inf), "clips[0].depth_far", ("depth_far", 0), ["finite"]),
    ("depth-far-not-beyond-near", mutate(clips__0__depth_far=1.5), "clips[0].depth_far", ("depth_far", 0),
     ["larger than depth_near (1.5)"]),
    ("depth-near-beyond-default-far", mutate(clips__0__depth_near=30.0, clips__0__depth_far=DELETE),
     "clips[0].depth_near", ("depth_near", 0), ["smaller than depth_far (default 20)"]),
    ("depth-near-zero", mutate(clips__0__depth_near=0), "clips[0].depth_near", ("depth_near", 0), ["larger than 0"]),
    ("duplicate-clip-name", mutate(clips__1__name="box"), "clips[1].name", ('"box"', 1),
     ["already the name of another clip", "clips[0]"]),
    ("duplicate-path-name-by-case", mutate(clips__0__paths__2__name="ORBIT"), "clips[0].paths[2].name",
     ('"ORBIT"', 0), ["'orbit', which differs only in case", "clips[0].paths[0]"]),
    ("both-depth-sources", mutate(clips__0__depth_model="dav2"), "clips[0].depth_model", ("depth_model", 0),
     ["given together with depth_image"]),
    ("no-depth-source", mutate(clips__1__depth_model=DELETE), "clips[1]", ("header", 1, None),
     ["needs one of depth_image or depth_model"]),
    ("preset-and-keyframes", mutate(clips__0__paths__1__preset="pan left"), "clips[0].paths[1].preset",
     ("pan left", 0), ["given together with keyframes"]),
    ("no-path-kind", mutate(clips__0__paths__2__camera_file=DELETE), "clips[0].paths[2]", ("header", 0, 2),
     ["needs one of preset, keyframes or camera_file"]),
    ("preset-without-amount", mutate(clips__1__paths__0__amount=DELETE), "clips[1].paths[0].amount",
     ("header", 1, 0), ["is missing (a preset needs one)", "subject distances"]),
    ("amount-with-keyframes", mutate(clips__0__paths__1__amount=2.0), "clips[0].paths[1].amount",
     ("amount", 1), ["only applies to a preset"]),
    ("depth-range-with-model", mutate(clips__1__depth_far=9.0), "clips[1].depth_far", ("depth_far", 1),
     ["only applies to a depth_image"]),
    ("unknown-preset", mutate(clips__0__paths__0__preset="orbit lft"), "clips[0].paths[0].preset",
     ("orbit lft", 0), ["Did you mean 'orbit left'?"]),
    ("unknown-easing", mutate(clips__1__paths__0__easing="smooth"), "clips[1].paths[0].easing",
     ("smooth", 0), ["'ease-in-out'"]),
    ("unknown-depth-reading", mutate(clips__0__depth_reading="metric"), "clips[0].depth_reading",
     ('"metric"', 0), ["'metric: near..far, bright = far'"]),
    ("negative-amount", mutate(clips__0__paths__0__amount=-10.0), "clips[0].paths[0].amount",
     ("amount", 0), ["must not be negative", "orbit right"]),
    ("dolly-into-subject", mutate(clips__0__paths__0__preset="dolly in", clips__0__paths__0__amount=1.0),
     "clips[0].paths[0].amount", ("amount", 0), ["reaches or passes the subject"]),
    ("missing-video", mutate(clips__1__video="clips/nope.mp4"), "clips[1].video", ("nope.mp4", 0),
     ["'clips/nope.mp4'", "does not exist"]),
    ("video-is-a-folder", mutate(clips__1__video="clips"), "clips[1].video", ("key", "video", '"clips"'),
     ["'clips'", "not a regular file (it is a folder)"]),
    ("missing-camera-file", mutate(clips__0__paths__2__camera_file="cams/nope.json"),
     "clips[0].paths[2].camera_file", ("nope.json", 0), ["'cams/nope.json'", "does not exist"]),
    ("missing-depth-image", mutate(clips__0__depth_image="nope.png"), "clips[0].depth_image", ("nope.png", 0),
     ["does not exist"]),
    ("empty-video-path", mutate(clips__0__video=""), "clips[0].video", ("key", "video", '""'), ["is empty"]),
    ("output-is-a-file", mutate(output="clips/box.mp4"), "output", ("output", 0), ["not a folder"]),
    ("empty-clips", mutate(clips=[]), "clips", ("clips", 0), ["has no clips"]),
    ("empty-paths", mutate(clips__1__paths=[]), "clips[1].paths", ("key", "paths", "[]"), ["has no camera paths"]),
    ("clips-not-a-list", mutate(clips="box"), "clips", ("clips", 0), ["must be a list of clip tables"]),
    ("prompt-with-svd", mutate(prompt="a box"), "prompt", ("prompt", 0), ["only used by the wan backbone"]),
    ("wan-model-with-svd", mutate(models={"vae": "v.safetensors"}), "models.vae", ("vae", 0),
     ["not a model of the svd backbone", "Allowed here: checkpoint"]),
    ("model-as-a-path", mutate(models={"checkpoint": "../../etc/svd.safetensors"}), "models.checkpoint",
     ("etc/svd", 0), ["not a model name"]),
    ("unknown-backbone", mutate(backbone="sdv"), "backbone", ("backbone", 0), ["Did you mean 'svd'?"]),
    ("missing-clip-video", mutate(clips__1__video=DELETE), "clips[1].video", ("header", 1, None),
     ["is missing (a clip needs one)"]),
    ("missing-path-name", mutate(clips__0__paths__1__name=DELETE), "clips[0].paths[1].name", ("header", 0, 1),
     ["is missing"]),
    ("bad-clip-name", mutate(clips__0__name="my clip"), "clips[0].name", ("my clip", 0), ["cannot be used as a name"]),
    ("dot-dot-name", mutate(clips__0__paths__0__name=".."), "clips[0].paths[0].name", ('".."', 0),
     ["cannot be used as a name"]),
    ("empty-keyframes", mutate(clips__0__paths__1__keyframes="  "), "clips[0].paths[1].keyframes",
     ('"  "', 0), ["is empty"]),
    ("keyframes-too-long", mutate(clips__0__paths__1__keyframes="0:" + " " * 65535), "clips[0].paths[1].keyframes",
     ("keyframes", 0), ["65537 characters long, more than 65536"]),
    ("depth-model-path", mutate(clips__1__depth_model="models/depth/x"), "clips[1].depth_model",
     ("models/depth/x", 0), ["not a folder name"]),
    ("path-not-a-table", mutate(clips__1__paths=["a-string"]), "clips[1].paths[0]", ("a-string", 0),
     ["must be a table"]),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_error_names_field_and_line(folder, fmt, case):
    _, edit, field, where, fragments = case
    doc = edit(copy.deepcopy(base_doc()))
    err, text = error_of(folder, doc, fmt)
    if where[0] == "header":
        line = header_line(text, fmt, where[1], where[2])
    elif where[0] == "key":  # ('key', name, value as written): `name = value` / `"name": value`
        line = line_of(text, f"{where[1]} = {where[2]}" if fmt == "toml" else f'"{where[1]}": {where[2]}')
    else:
        line = line_of(text, where[0], where[1])
    assert_error(err, field, line, *fragments)


@pytest.mark.parametrize("fmt", FORMATS)
def test_duplicate_names_report_both_lines(folder, fmt):
    err, text = error_of(folder, mutate(clips__1__name="box")(base_doc()), fmt)
    first, second = line_of(text, '"box"', 0), line_of(text, '"box"', 1)
    assert err.line == second and f"line {first}" in str(err)


@pytest.mark.parametrize("fmt", FORMATS)
def test_both_choices_name_the_other_line(folder, fmt):
    err, text = error_of(folder, mutate(clips__0__depth_model="dav2")(base_doc()), fmt)
    assert f"depth_image (line {line_of(text, 'depth_image')})" in str(err)


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_top_level_key(folder, fmt):
    err, _ = error_of(folder, mutate(backbone=DELETE)(base_doc()), fmt)
    # TOML's root has no header line; JSON's root is the { on line 1
    assert_error(err, "backbone", None if fmt == "toml" else 1, "is missing", 'backbone = "svd"')


@pytest.mark.parametrize("fmt", FORMATS)
def test_first_problem_in_file_order_is_reported(folder, fmt):
    # Each pair is found in the other order (cross-field checks run after a table's own keys,
    # the backbone's models after the clips); the one higher up the file must win.
    doc = base_doc()
    doc["clips"][0]["depth_far"] = 1.0  # not beyond depth_near: found after the clip's paths
    doc["clips"][0]["paths"][2]["camera_file"] = "nope.json"  # later in the file, found first
    err, text = error_of(folder, doc, fmt)
    assert_error(err, "clips[0].depth_far", line_of(text, "depth_far"))
    doc["models"] = {"vae": "v.safetensors"}  # svd has no vae: found after all the clips
    err, text = error_of(folder, doc, fmt)
    assert_error(err, "models.vae", line_of(text, "vae"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_typo_wins_over_the_missing_key_it_causes(folder, fmt):
    # The missing amount is reported at the path's header, above the typo; the typo is the cause.
    err, text = error_of(folder, rename("clips__0__paths__0", "amount", "amout")(base_doc()), fmt)
    assert_error(err, "clips[0].paths[0].amout", line_of(text, "amout"), "Did you mean 'amount'?")


# --- hand-written files: exact lines ------------------------------------------------------------

TOML_TEXT = '''\
# a shot list
backbone = "svd"
output = "reshoots"

[[clips]]
name = "box"
video = "clips/box.mp4"
depth_image = "clips/box_depth.png"

  [[clips.paths]]
  name = "orbit"
  preset = "orbit left"
  amount = 10.0

  [[clips.paths]]
  name = "push"
  keyframes = """0:
[[clips]]
amount = 3
13: dolly_in=0.2"""   # the lines above are text, not TOML
  easing = "linear"
'''


def test_toml_exact_lines(folder):
    path = folder / "shots.toml"
    path.write_text(TOML_TEXT)
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(path)
    # easing (line 21) with keyframes; the header-like and key-like lines inside the string are skipped
    assert_error(caught.value, "clips[0].paths[1].easing", 21, "only applies to a preset")
    path.write_text(TOML_TEXT.replace('  easing = "linear"\n', "").replace("  amount = 10.0", "  ammount = 10.0"))
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(path)
    assert_error(caught.value, "clips[0].paths[0].ammount", 13, "'amount'")
    path.write_text(TOML_TEXT.replace('  easing = "linear"\n', ""))
    job = shotlist.load_job(path)
    assert [clip.line for clip in job.clips] == [5]
    assert [p.line for p in job.clips[0].paths] == [10, 15]
    assert job.clips[0].paths[1].keyframes == "0:\n[[clips]]\namount = 3\n13: dolly_in=0.2"


BRIEF_EXAMPLE = """\
backbone = "svd"
output = "reshoots"

[[clips]]
name = "box"
video = "clips/box.mp4"
depth_model = "depth-anything-v2-small"

  [[clips.paths]]
  keyframes = "0:"
  name = "first"
  [[clips.paths]]  # comment with "quotes" = and [[brackets]]
  preset = 'orbit left'
  ammount = 10.0
"""


def test_toml_brief_example_line_14(folder):
    path = folder / "shots.toml"
    path.write_text(BRIEF_EXAMPLE)
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(path)
    message = str(caught.value)
    assert "line 14" in message and "clips[0].paths[1].ammount" in message and "'amount'" in message


def test_toml_locator_follows_quoted_and_dotted_keys_and_multiline_arrays():
    text = '\n'.join([
        'backbone = "svd"',                 # 1
        'misc = [',                         # 2
        '  "x = 1",',                       # 3  not a key
        '  """',                            # 4
        '[[clips]]',                        # 5  inside a string in an array
        '""",',                             # 6
        ']',                                # 7
        '"out put" = "x"',                  # 8
        'a.b = 1',                          # 9
        "[models]",                         # 10
        "'check point' = 'x'  # c",         # 11
        "[[clips]]",                        # 12
        "[[clips]]",                        # 13
        "name = 'b'",                       # 14
        "[[clips.paths]]",                  # 15
        "x = '''",                          # 16
        "y = 2'''",                         # 17
        "z = 3",                            # 18
    ])
    lines = shotlist._toml_lines(text)
    assert lines[("misc",)] == 2 and lines[("out put",)] == 8 and lines[("a", "b")] == 9 and lines[("a",)] == 9
    assert lines[("models", "check point")] == 11
    assert lines[("clips", 0)] == 12 and lines[("clips", 1)] == 13 and lines[("clips", 1, "name")] == 14
    assert lines[("clips", 1, "paths", 0)] == 15 and lines[("clips", 1, "paths", 0, "z")] == 18
    assert ("clips", 1, "paths", 0, "y") not in lines and ("x = 1",) not in lines


JSON_TEXT = '''{
  "backbone": "svd", "output": "reshoots",
  "clips": [
    {"name": "box", "video": "clips/box.mp4",
     "depth_image": "clips/box_depth.png",
     "paths": [
       {"name": "a\\"b", "preset": "orbit left", "amount": 1},
       {
         "name": "push",
         "keyframes": "0:\\n13: dolly_in=0.2 {[,\\"",
         "ammount": 3
       }
     ]}
  ]
}
'''


def test_json_exact_lines(folder):
    path = folder / "shots.json"
    path.write_text(JSON_TEXT)
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(path)
    # the path name 'a"b' fails first (line 7); the escaped quote and brackets in strings are skipped
    assert_error(caught.value, "clips[0].paths[0].name", 7, "cannot be used as a name")
    path.write_text(JSON_TEXT.replace('a\\"b', "orbit"))
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(path)
    assert_error(caught.value, "clips[0].paths[1].ammount", 11, "'amount'")
    path.write_text(JSON_TEXT.replace('a\\"b', "orbit").replace(',\n         "ammount": 3', ""))
    job = shotlist.load_job(path)
    assert job.clips[0].line == 4 and [p.line for p in job.clips[0].paths] == [7, 8]


def test_json_on_one_line_still_finds_duplicates(folder):
    doc = mutate(clips__1__name="box")(base_doc())
    path = folder / "shots.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(path)
    assert_error(caught.value, "clips[1].name", 1, "already the name of another clip (clips[0], line 1)")


def test_json_duplicate_key_is_an_error(folder):
    path = folder / "shots.json"
    text = render(base_doc(), "json").replace('"rank": 8,', '"rank": 8,\n  "rank": 9,')
    path.write_text(text)
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(path)
    first = line_of(text, '"rank"')
    assert_error(caught.value, "rank", first + 1, f"given twice (lines {first} and {first + 1})")


def test_json_root_must_be_an_object(folder):
    path = folder / "shots.json"
    path.write_text("\n[1, 2]\n")
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(path)
    assert_error(caught.value, "(top level)", 2, "must be a table")


# --- syntax and the file itself -----------------------------------------------------------------

def test_toml_syntax_error_has_its_line(folder):
    path = folder / "shots.toml"
    path.write_text('backbone = "svd"\noutput = "x"\n\n[[clips]]\nname = "box\n')
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(path)
    assert_error(caught.value, "(syntax)", 5, "Fix the TOML")
    assert "(at line" not in str(caught.value)  # tomllib's own position text is replaced by ours


def test_toml_duplicate_key_is_a_syntax_error_with_its_line(folder):
    path = folder / "shots.toml"
    path.write_text('backbone = "svd"\nseed = 1\nseed = 2\n')
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(path)
    assert_error(caught.value, "(syntax)", 3)


def test_json_syntax_error_has_its_line(folder):
    path = folder / "shots.json"
    path.write_text('{\n  "backbone": "svd",\n  "output": "x"\n  "clips": []\n}\n')
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(path)
    assert_error(caught.value, "(syntax)", 4, "Fix the JSON", "column 3")


def test_not_utf8_gives_the_line(folder):
    path = folder / "shots.toml"
    path.write_bytes(b'backbone = "svd"\n\noutput = "\xff"\n')
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(path)
    assert_error(caught.value, "(syntax)", 3, "UTF-8")


def test_byte_order_mark_is_accepted(folder):
    path = folder / "shots.json"
    path.write_bytes(b"\xef\xbb\xbf" + render(base_doc(), "json").encode())
    assert shotlist.load_job(path).backbone == "svd"


def test_unsupported_suffix(folder):
    path = folder / "shots.yaml"
    path.write_text("backbone: svd\n")
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(path)
    assert_error(caught.value, "(file)", None, "'.yaml'", "neither .toml nor .json")
    with pytest.raises(ShotListError):
        shotlist.parse_job("{}", folder / "shots")


def test_missing_shot_list(folder):
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(folder / "nope.toml")
    assert_error(caught.value, "(file)", None, "cannot be read")


def test_oversized_shot_list_is_refused_unread(folder):
    path = folder / "shots.toml"
    with open(path, "wb") as handle:
        handle.truncate(shotlist.MAX_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(ShotListError) as caught:
        shotlist.load_job(path)
    assert_error(caught.value, "(file)", None, "larger than 16 MiB")


def _load_within(seconds: float, target):
    """load_job(target) in a thread; fails (instead of hanging the suite) if it blocks."""
    result = {}

    def run():
        try:
            result["job"] = shotlist.load_job(target)
        except ShotListError as err:
            result["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "load_job blocked on a FIFO"
    assert time.monotonic() - start < seconds
    return result


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_as_shot_list_is_refused_without_blocking(folder):
    fifo = folder / "shots.toml"
    os.mkfifo(fifo)
    result = _load_within(5.0, fifo)
    assert_error(result["error"], "(file)", None, "not a regular file", "FIFO")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("fmt", FORMATS)
def test_fifo_as_video_is_refused_without_blocking(folder, fmt):
    os.mkfifo(folder / "clips" / "pipe.mp4")
    path, text = write(folder, mutate(clips__1__video="clips/pipe.mp4")(base_doc()), fmt)
    result = _load_within(5.0, path)
    assert_error(result["error"], "clips[1].video", line_of(text, "pipe.mp4"), "'clips/pipe.mp4'",
                 "not a regular file (it is a FIFO")


def test_error_pickles_whole():
    err = ShotListError(Path("/x/shots.toml"), 3, "seed", "must be a whole number", "Give a number.")
    again = pickle.loads(pickle.dumps(err))
    assert (str(again), again.source, again.line, again.field) == (str(err), err.source, 3, "seed")
    assert str(err) == "shots.toml: line 3: seed: must be a whole number. Give a number."
    assert isinstance(err, ValueError)


# --- the module stands alone, and its copied lists match the pack's -----------------------------

def test_module_imports_nothing_heavy():
    code = f"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("m", {str(REPO / "recapture_farm" / "shotlist.py")!r})
module = importlib.util.module_from_spec(spec); sys.modules["m"] = module; spec.loader.exec_module(module)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in
      ("torch", "ray", "numpy", "recapture_core", "nodes", "comfy", "recapture_farm"))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_copied_lists_match_the_pack():
    sys.path.insert(0, str(REPO))
    try:
        from recapture_core.camera import poses, presets
        from recapture_core import depth
    finally:
        sys.path.remove(str(REPO))
    assert list(shotlist.PRESETS) == list(presets.PRESETS)
    assert set(shotlist.EASINGS) == set(poses.EASINGS)
    assert set(shotlist.DEPTH_READINGS) == set(depth.IMAGE_READINGS)
    assert shotlist._DEFAULT_READING in depth.IMAGE_READINGS
    # the amount rules: the pack's check and ours agree on a grid of cases
    for preset in ("dolly in", "dolly out", "orbit left", "static"):
        for amount in (-0.5, 0.0, 0.5, 0.999, 1.0, 30.0):
            try:
                presets.check_preset_amount(preset, amount)
                pack_ok = True
            except ValueError:
                pack_ok = False
            checker = shotlist._Checker(Path("/x/s.toml"), {})
            try:
                shotlist._check_preset_amount(checker, preset, amount, ("amount",))
                ours_ok = True
            except ShotListError:
                ours_ok = False
            assert ours_ok == pack_ok, (preset, amount)
