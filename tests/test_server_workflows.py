"""Every sample workflow's API graph runs to completion on the real server with tiny models."""
from __future__ import annotations

import pytest

from workflow_defs import all_workflows, with_tiny_models

pytestmark = pytest.mark.server


@pytest.mark.parametrize("workflow", all_workflows(), ids=lambda w: w.name)
def test_workflow_graph_runs_on_tiny_models(comfy_server, workflow):
    entry = comfy_server.run(with_tiny_models(workflow.graph), timeout_s=900)
    saved = [node for node, data in workflow.graph.items() if data["class_type"] == "SaveVideo"]
    for node in saved:
        assert entry["outputs"][node]["images"], node  # SaveVideo reports its file under "images"
