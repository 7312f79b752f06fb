"""Numbers typed into the real frontend (Debian's Chromium) reach the graph as typed.

ComfyUI's frontend rounds a FLOAT widget's value to as many decimals as its ``step`` has (its
``round`` option does not add any), so a step of 0.01 turns a typed 0.025 into 0.03 and a near plane
of 0.0005 into the minimum. Every FLOAT widget of the pack declares the step it must keep, and this
test types values at that precision, its limits, and values users do type.
"""
from __future__ import annotations

import pytest

from browser import frontend

pytestmark = pytest.mark.server

#: Values people type that a coarser rounding lost (the issue that led here quotes the first three).
TYPED = {"amount": [0.025, 12.345], "hfov_deg": [53.13, 39.6], "near": [0.005, 0.05], "far": [12.345],
         "subject_distance": [2.345, 0.005], "translation_scale": [0.0005, 0.001234], "edge_threshold": [0.035],
         "learning_rate": [5e-6, 2.5e-4, 1.2e-5], "noise_aug_strength": [0.005], "cfg": [4.25], "alpha": [12.5, 0.25],
         "min_guidance": [2.25], "max_guidance": [3.75], "source_elevation": [12.25], "opacity": [0.35]}

TYPE_INTO_WIDGETS = """(cases) => {
    const results = [];
    for (const [nodeType, widgetName, value] of cases) {
        const node = LiteGraph.createNode(nodeType);
        app.graph.add(node);
        const widget = node.widgets.find(w => w.name === widgetName);
        // What the frontend does with a value typed into the widget's prompt.
        widget.setValue(value, {e: new MouseEvent("click"), node, canvas: app.canvas});
        results.push([nodeType, widgetName, value, widget.value]);
        app.graph.remove(node);
    }
    return results;
}"""


def float_widget_cases(pack) -> list[tuple[str, str, float]]:
    cases = []
    for node_type, cls in sorted(pack.NODE_CLASS_MAPPINGS.items()):
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, entry in spec.get(section, {}).items():
                if entry[0] != "FLOAT":
                    continue
                options = entry[1]
                low, high, step = options["min"], options["max"], options["step"]
                values = [low, high, options["default"], *TYPED.get(name, [])]
                values += [round(low + k * step, 12) for k in (1, 37, 1234) if low + k * step <= high]
                cases += [(node_type, name, float(v)) for v in values]
    return cases


def test_every_float_widget_keeps_what_is_typed(comfy_server, pack):
    cases = float_widget_cases(pack)
    assert len({(n, w) for n, w, _ in cases}) >= 25  # every FLOAT widget of the pack is covered
    with frontend(comfy_server.url) as page:
        results = page.evaluate(TYPE_INTO_WIDGETS, cases)
        assert page.page_errors == []
    lost = [(node, widget, typed, kept) for node, widget, typed, kept in results
            if abs(kept - typed) > 1e-9 * max(1.0, abs(typed))]
    assert not lost, "\n".join(f"{node}.{widget}: typed {typed!r}, kept {kept!r}" for node, widget, typed, kept in lost)
