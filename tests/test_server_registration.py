"""The real ComfyUI server lists every node of the pack, fully described."""
from __future__ import annotations

import json

import pytest

from helpers import FOLDER_LISTS

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def object_info(comfy_server):
    return comfy_server.object_info()


def test_server_loaded_the_pack_without_import_failure(comfy_server):
    log = comfy_server.log_text()
    assert "Import times for custom nodes" in log
    pack_lines = [line for line in log.splitlines() if line.rstrip().endswith("custom_nodes/recapture")]
    assert pack_lines, log
    assert all("IMPORT FAILED" not in line for line in pack_lines), pack_lines


def test_every_pack_node_is_listed_and_nothing_else_claims_the_pack(pack, object_info):
    ours = {name for name, info in object_info.items() if info.get("python_module") == "custom_nodes.recapture"}
    assert ours == set(pack.NODE_CLASS_MAPPINGS)


def test_listed_types_equal_the_declared_types(pack, object_info):
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        info = object_info[name]
        declared = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            served = info["input"].get(section, {})
            assert set(served) == set(declared.get(section, {})), (name, section)
            for input_name, spec in declared.get(section, {}).items():
                if input_name in FOLDER_LISTS.get(name, ()):
                    # Lists of files depend on the server's own folders, not this process's.
                    assert isinstance(served[input_name][0], list), (name, input_name)
                    continue
                # JSON round trip: tuples become lists on the wire.
                assert served[input_name][0] == json.loads(json.dumps(spec[0])), (name, input_name)
        assert info["output"] == list(cls.RETURN_TYPES), name
        assert info["output_name"] == list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)), name


def test_every_node_has_category_description_and_tooltips(pack, object_info):
    for name in pack.NODE_CLASS_MAPPINGS:
        info = object_info[name]
        assert info["category"].split("/")[0] == "ReCapture", (name, info["category"])
        assert len(info["description"]) > 20, name
        assert info["display_name"] and info["display_name"] != name, name
        for section in ("required", "optional"):
            for input_name, spec in info["input"].get(section, {}).items():
                options = spec[1] if len(spec) > 1 else {}
                assert len(options.get("tooltip", "")) > 10, f"{name}.{input_name} has no tooltip"
        tooltips = info.get("output_tooltips") or []
        assert len(tooltips) == len(info["output"]) and all(tooltips), f"{name} lacks output tooltips"
