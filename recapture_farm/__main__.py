"""``python -m recapture_farm run shots.toml``: render a shot list on Ray (see the README, "Many clips on Ray")."""
from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recapture_farm",
                                     description="Re-shoot a shot list across ComfyUI servers on Ray.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="render every shot not finished yet (a re-run resumes)")
    run.add_argument("shots", help="the shot list (.toml or .json)")
    run.add_argument("--address", default=None, help="a Ray cluster (ray://head:10001, or 'auto' on a cluster node); "
                                                     "default: start Ray on this machine")
    run.add_argument("--workers", type=int, default=None, help="ComfyUI servers to start (default: one per GPU, or one)")
    run.add_argument("--gpu", action="store_true", help="one GPU per worker, one worker per GPU (default: CPU workers)")
    run.add_argument("--models", default=None, help="the models/ folder the workers use (default: this checkout's)")
    run.add_argument("--scratch", default=None, help="where workers make their ComfyUI base folders (on each machine)")
    run.add_argument("--attempts", type=int, default=3, help="tries per task when a worker's ComfyUI dies or hangs")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[farm] %(message)s")

    from .driver import FarmError, default_worker_spec, run as run_job
    from .shotlist import ShotListError, load_job

    try:
        job = load_job(args.shots)
        spec = default_worker_spec(args.scratch, args.models, gpu=args.gpu)
        manifest = run_job(job, address=args.address, workers=args.workers, worker_spec=spec,
                           max_attempts=args.attempts, progress=not args.no_progress)
    except (ShotListError, FarmError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished shots are in the output folder; run the same command again to resume",
              file=sys.stderr)
        return 130
    shots = manifest.data["shots"]
    print(f"{sum(s.get('status') == 'done' for s in shots.values())} of {len(shots)} shots done: "
          f"{job.output / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
