"""How long GET /object_info takes while heavy camera editor requests run, next to the same GET with none running,
in one run, on a real ComfyUI on the CPU.

    .venv/bin/python bench/route_latency.py [--frames 4096] [--heavy 3] [--samples 10]
                                            [--out bench/results/route_latency_cpu.json]

A heavy request is the 40-byte ``{"preset":"orbit left","num_frames":4096}`` to POST /recapture/camera_path: its
work grows with the frame count. Computed on the server's event loop, it kept every other request waiting until it
was done (issue 28: 6-8 s each, 24 s for three at once); computed in the routes' worker threads, the server goes on
answering while they run. Reported: GET /object_info's seconds idle and while ``--heavy`` such requests run (one GET
every ``--interval`` seconds until they are all answered; a GET is itself a second of Python work, which the heavy
requests' threads share the interpreter with), and each heavy request's status and seconds.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "scripts"))

from comfy_host import ComfyServer, host_paths, make_base_directory  # noqa: E402

from _common import machine, write_result  # noqa: E402

#: GET /object_info's median while the heavy requests run is at most this many times its idle median: the server
#: shares its time with them (their threads and its event loop take turns for the interpreter), it does not wait for them.
GOAL_FACTOR = 3.0


def seconds_of_get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url + "/object_info", timeout=600) as reply:
        reply.read()
    return time.perf_counter() - start


def heavy_request(url: str, body: bytes, results: list) -> None:
    request = urllib.request.Request(url + "/recapture/camera_path", data=body, headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=1800) as reply:
            reply.read()
            status = reply.status
    except urllib.error.HTTPError as err:
        status = err.code
    results.append({"status": status, "seconds": time.perf_counter() - start})


def summary(samples: list[float]) -> dict:
    return {"median_s": statistics.median(samples), "max_s": max(samples), "samples": len(samples)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4096, help="frames of each heavy path (the widget allows 4096)")
    parser.add_argument("--heavy", type=int, default=3, help="heavy requests sent at once")
    parser.add_argument("--samples", type=int, default=10, help="idle GET /object_info samples")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between GETs while the heavy requests run")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "route_latency_cpu.json")
    args = parser.parse_args()
    body = json.dumps({"preset": "orbit left", "num_frames": args.frames}, separators=(",", ":")).encode()
    with tempfile.TemporaryDirectory() as tmp:
        base = make_base_directory(Path(tmp))
        with ComfyServer(comfy_dir=Path(host_paths()["COMFYUI_DIR"]), base_dir=base, python=sys.executable) as server:
            seconds_of_get(server.url)  # first use: ComfyUI builds what it caches
            heavy_request(server.url, json.dumps({"preset": "orbit left", "num_frames": 2}).encode(), [])
            idle = [seconds_of_get(server.url) for _ in range(args.samples)]
            heavy: list[dict] = []
            threads = [threading.Thread(target=heavy_request, args=(server.url, body, heavy)) for _ in range(args.heavy)]
            for thread in threads:
                thread.start()
            during = [seconds_of_get(server.url)]
            while any(thread.is_alive() for thread in threads):
                time.sleep(args.interval)
                during.append(seconds_of_get(server.url))
            for thread in threads:
                thread.join()
    result = {"bench": "route_latency", "machine": machine(),
              "heavy_request": {"route": "/recapture/camera_path", "body": body.decode(), "bytes": len(body),
                                "at_once": args.heavy},
              "object_info_idle": summary(idle), "object_info_during_heavy": summary(during),
              "during_over_idle_median": statistics.median(during) / statistics.median(idle),
              "heavy": sorted(heavy, key=lambda h: h["seconds"]),
              "goal": f"GET /object_info's median while the heavy requests run is at most {GOAL_FACTOR:g}x its idle median "
                      "(issue 28: a GET waited for all of them, 24 s for three)",
              "goal_met": statistics.median(during) <= GOAL_FACTOR * statistics.median(idle)}
    print(f"GET /object_info: idle median {result['object_info_idle']['median_s'] * 1000:.0f} ms; while {args.heavy} "
          f"heavy requests run median {result['object_info_during_heavy']['median_s'] * 1000:.0f} ms, max "
          f"{max(during) * 1000:.0f} ms; heavy requests {[round(h['seconds'], 1) for h in result['heavy']]} s")
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
