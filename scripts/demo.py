"""The main job: start ComfyUI headless with the pack, run a sample workflow on the bundled clip, say where the output went.

With a Stable Video Diffusion model in the model folders it runs the full ReCapture (sample workflow 1 or 2);
without one it runs the anchor stage alone (sample workflow 6) and says which files to put where.

Run through `bash scripts/demo.sh` (which sets everything up first). Options:
    --keep-running   leave the server up afterwards (open the printed URL in a browser)
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import workflow_defs
from comfy_host import ComfyServer, copy_assets, host_paths

log = logging.getLogger("recapture.demo")


def find_svd(base_dir: Path) -> tuple[str, str] | None:
    """("diffusers", folder) or ("checkpoint", file) of a real SVD in the base directory's model folders."""
    diffusers = base_dir / "models" / "diffusers"
    for index in sorted(diffusers.glob("*/model_index.json")) if diffusers.is_dir() else []:
        if "StableVideoDiffusionPipeline" in index.read_text(errors="replace"):
            return "diffusers", index.parent.name
    checkpoints = base_dir / "models" / "checkpoints"
    for path in sorted(checkpoints.glob("*.safetensors")) if checkpoints.is_dir() else []:
        if path.name.lower().startswith("svd"):
            return "checkpoint", path.name
    return None


def choose_graph(base_dir: Path) -> tuple[str, dict]:
    """The full ReCapture on real models when they are there, else the anchor stage alone."""
    found = find_svd(base_dir)
    if found is None:
        workflow = workflow_defs.anchor_preview()
        log.info("No Stable Video Diffusion model found in %s/models/diffusers or %s/models/checkpoints.",
                 base_dir, base_dir)
        log.info("Running the anchor stage only (depth -> point cloud -> new camera, no diffusion). For the full "
                 "ReCapture put SVD-XT as a diffusers folder into models/diffusers/%s/ or the single file into "
                 "models/checkpoints/%s.", workflow_defs.SVD_FOLDER, workflow_defs.SVD_CHECKPOINT)
        return workflow.title, workflow.graph
    kind, name = found
    workflow = workflow_defs.full_diffusers() if kind == "diffusers" else workflow_defs.full_checkpoint()
    graph = dict(workflow.graph)
    graph["backbone"] = {**graph["backbone"], "inputs": {**graph["backbone"]["inputs"],
                                                         ("model" if kind == "diffusers" else "ckpt_name"): name}}
    log.info("Found %s (%s): running the full ReCapture. On a CPU this takes hours; on a GPU minutes.", name, kind)
    return workflow.title, graph


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep-running", action="store_true", help="leave ComfyUI running after the graph finished")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[demo] %(message)s")

    paths = host_paths()
    base_dir = Path(paths["RECAPTURE_BASE_DIR"])
    copy_assets(base_dir)
    title, graph = choose_graph(base_dir)
    server = ComfyServer(comfy_dir=Path(paths["COMFYUI_DIR"]), base_dir=base_dir, python=paths["RECAPTURE_PYTHON"])
    log.info("starting ComfyUI from %s (base directory %s)", paths["COMFYUI_DIR"], base_dir)
    server.start()
    try:
        log.info("ComfyUI answered after %.1f s at %s", server.ready_after_s, server.url)
        for line in server.log_text().splitlines():
            if line.rstrip().endswith("custom_nodes/recapture"):
                log.info("pack import: %s", line.strip())
        log.info("running %s on the bundled sample clip (assets/)", title)
        entry = server.run(graph, timeout_s=24 * 3600)
        for node_id, outputs in entry["outputs"].items():
            for path in server.output_files(entry, node_id):
                log.info("wrote %s", path)
            for text in outputs.get("text", []):
                log.info("%s: %s", graph[node_id]["class_type"], text.strip().replace("\n", "\n    "))
        if args.keep_running:
            log.info("ComfyUI keeps running at %s; press Ctrl+C to stop it", server.url)
            server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        log.info("server log: %s", server.log_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
