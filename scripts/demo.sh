#!/usr/bin/env bash
# Set up (idempotent), start ComfyUI headless with the pack, run the sample graph, print where the output went.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/scripts/setup.sh"
exec "$REPO/.venv/bin/python" "$REPO/scripts/demo.py" "$@"
