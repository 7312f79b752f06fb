"""The main job: start ComfyUI headless with the pack, run the sample graph, say where the output went.

Run through `bash scripts/demo.sh` (which sets everything up first). Options:
    --keep-running   leave the server up afterwards (open the printed URL in a browser)
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from comfy_host import ComfyServer, host_paths

log = logging.getLogger("recapture.demo")


def sample_graph() -> dict:
    """API-format graph run by the demo: a camera path (orbit + dolly), its preview and camera file.

    Grows into the full ReCapture workflow as the anchor and diffusion nodes land.
    """
    move = {"easing": "ease-in-out", "num_frames": 25, "hfov_deg": 60.0, "subject_distance": 1.0}
    return {
        "1": {"class_type": "ReCaptureCameraTrajectory", "inputs": {"preset": "orbit left", "amount": 20.0, **move}},
        "2": {"class_type": "ReCaptureCameraTrajectory", "inputs": {"preset": "dolly in", "amount": 0.15, **move}},
        "3": {"class_type": "ReCaptureCameraCompose", "inputs": {"first": ["1", 0], "second": ["2", 0]}},
        "4": {"class_type": "ReCaptureCameraPreview", "inputs": {"trajectory": ["3", 0], "width": 960, "height": 480}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "recapture_demo/camera_preview"}},
        "6": {"class_type": "ReCaptureCameraExport",
              "inputs": {"trajectory": ["3", 0], "filename_prefix": "recapture_demo/camera", "format": "recapture json",
                         "width": 1024, "height": 576}},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep-running", action="store_true", help="leave ComfyUI running after the graph finished")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[demo] %(message)s")

    paths = host_paths()
    base_dir = Path(paths["RECAPTURE_BASE_DIR"])
    server = ComfyServer(comfy_dir=Path(paths["COMFYUI_DIR"]), base_dir=base_dir, python=paths["RECAPTURE_PYTHON"])
    log.info("starting ComfyUI from %s (base directory %s)", paths["COMFYUI_DIR"], base_dir)
    server.start()
    try:
        log.info("ComfyUI answered after %.1f s at %s", server.ready_after_s, server.url)
        for line in server.log_text().splitlines():
            if line.rstrip().endswith("custom_nodes/recapture"):
                log.info("pack import: %s", line.strip())
        entry = server.run(sample_graph())
        for node_id, outputs in entry["outputs"].items():
            for path in server.output_files(entry, node_id):
                log.info("wrote %s", path)
            for text in outputs.get("text", []):
                log.info("wrote %s", text)
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
