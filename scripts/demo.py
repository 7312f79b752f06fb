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
    """API-format graph run by the demo: a mask preview on a generated clip."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 256, "height": 144, "batch_size": 4, "color": 0x4A6FA5}},
        "2": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 96, "height": 144}},
        "3": {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "red"}},
        "4": {"class_type": "ReCaptureMaskOverlay",
              "inputs": {"frames": ["1", 0], "mask": ["3", 0], "color": "magenta", "opacity": 0.5}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "recapture_demo/overlay"}},
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
