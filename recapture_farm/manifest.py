"""The output folder of a farm run: its manifest and the files it holds, written so nothing half-done shows.

``manifest.json`` records, per clip, the spatial LoRA (file, hash, key, worker, seconds) and, per shot,
its status, key, attempts, timings, worker and output files with their hashes. A re-run reads it: a shot
whose key is unchanged and whose files are all there with their recorded hashes is skipped; a clip whose
spatial LoRA is there is not trained again. Every file (the manifest too) is written to a temporary name in
the same folder and renamed into place, and a shot's files are gathered in a staging folder that is renamed
as a whole, so a shot's folder is complete or absent.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

from .files import atomic_write, file_sha256, sha256_bytes

MANIFEST = "manifest.json"
FORMAT = 1




class Manifest:
    """``manifest.json`` of an output folder; :meth:`save` after every change."""

    def __init__(self, output: Path, data: dict | None = None):
        self.output = output
        self.data = data or {"format": FORMAT, "clips": {}, "shots": {}, "runs": []}

    @classmethod
    def load(cls, output: Path) -> "Manifest":
        path = output / MANIFEST
        if not path.is_file():
            return cls(output)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{path} cannot be read ({err}); move it away to start the job afresh") from None
        if data.get("format") != FORMAT:
            raise ValueError(f"{path} has format {data.get('format')!r}, this farm writes {FORMAT}: use another output folder")
        return cls(output, data)

    def save(self) -> None:
        atomic_write(self.output / MANIFEST, json.dumps(self.data, indent=2, sort_keys=True).encode())

    # --- what is done --------------------------------------------------------------------
    def _files_intact(self, files: dict) -> bool:
        return all((self.output / item["path"]).is_file() and file_sha256(self.output / item["path"]) == item["sha256"]
                   for item in files.values())

    def shot_done(self, label: str, key: str) -> bool:
        shot = self.data["shots"].get(label)
        return bool(shot and shot.get("status") == "done" and shot.get("key") == key and self._files_intact(shot["files"]))

    def clip_lora(self, clip: str, key: str) -> dict | None:
        """The clip's spatial LoRA (and depth) entries when made for ``key`` and still intact, else None."""
        entry = self.data["clips"].get(clip)
        if entry and entry.get("status") == "done" and entry.get("key") == key and self._files_intact(entry["files"]):
            return entry
        return None

    # --- recording -----------------------------------------------------------------------
    def shot(self, label: str) -> dict:
        return self.data["shots"].setdefault(label, {"status": "pending", "attempts": []})

    def clip(self, clip: str) -> dict:
        return self.data["clips"].setdefault(clip, {"status": "pending", "attempts": []})

    def store(self, folder: str, files: dict[str, tuple[str, bytes]]) -> dict:
        """Put ``files`` (stem -> (file name, bytes)) into ``<output>/<folder>/`` as one rename: the folder is whole
        or the old one stays. Returns stem -> {"path", "sha256", "bytes"} for the manifest."""
        target = self.output / folder
        staging = self.output / ".staging" / uuid.uuid4().hex
        staging.mkdir(parents=True)
        entries = {}
        for stem, (name, data) in files.items():
            (staging / name).write_bytes(data)
            entries[stem] = {"path": f"{folder}/{name}", "sha256": sha256_bytes(data), "bytes": len(data)}
        if target.exists():
            # Replaced only by a complete folder: the old one moves aside first, then goes.
            old = self.output / ".staging" / f"old-{uuid.uuid4().hex}"
            os.replace(target, old)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, target)
        return entries

    def start_run(self, info: dict) -> dict:
        run = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **info}
        self.data["runs"].append(run)
        return run

    def clean_staging(self) -> None:
        shutil.rmtree(self.output / ".staging", ignore_errors=True)
