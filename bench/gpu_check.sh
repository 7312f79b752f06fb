#!/usr/bin/env bash
# The device checks, as one prepared script for a session that is lent a GPU (see the developers' guide):
# full-size architectures with random weights in their default dtypes, step time, peak memory, finite losses,
# and the warp at 576x1024. Each writes its JSON into bench/results/ (and a copy under $OUT when set).
#   bash bench/gpu_check.sh            # about 5-8 minutes on one H200
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
status=0
run() { echo "== $*"; timeout "${PY_TIMEOUT:-240}" "$PY" "$@" || { echo "!! failed: $*"; status=1; }; }
run bench/train.py --full-size --device cuda --steps 6               # SVD-XT, 14 frames 576x1024, bf16 (diffusers path)
run bench/train_model_path.py --device cuda --steps 6                # Wan 2.1 1.3B, 33 frames 480x832, bf16 (MODEL path)
PY_TIMEOUT=420 run bench/long_clip.py --device cuda                 # Wan 2.1 1.3B, 241 frames 480x832 fp16 in windows (MODEL path)
run bench/sample.py --full-size --device cuda
run bench/warp.py --device cuda --frames 25
PY_TIMEOUT=600 run bench/fullsize_cpu.py --device cuda          # the full-size files through ComfyUI's loaders (tests/fullsize)
if [ -n "${OUT:-}" ]; then cp bench/results/*gpu*.json bench/results/*cuda*.json "$OUT"/ 2>/dev/null; fi
exit $status
