#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, against a real ComfyUI server.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k camera -x`.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/scripts/setup.sh" || exit $?
cd "$REPO"
"$REPO/.venv/bin/python" -m pytest --durations=10 "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "[test] pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit "$rc"
