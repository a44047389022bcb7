#!/usr/bin/env bash
# The CUDA paths in one run of a few minutes, on a machine with an NVIDIA GPU (never needed by the tests or CI):
#   1. the card, torch and CUDA versions;
#   2. AMP training through tools/train.py (AmpSAMOptimWrapper, fp16 with dynamic loss scaling) on the demo
#      detector, a few iterations on a small synthetic VOC;
#   3. a CUDA latency lookup table (isolated layer grids, in-graph module timing, calibration), and a latency
#      target prune with it (the fingerprint's device check included);
#   4. SSD300 at batch 32: SGD / SAM / ASAM / AdaSAP steps, their times and peak GPU memory (benchmark_step).
#
#   bash tools/gpu_check.sh [WHEELS_DIR]   # WHEELS_DIR: needed only where the mm stack is not installed
#
# Where mmcv / mmdet / mmengine / torch-pruning are missing, they are installed from WHEELS_DIR (no registry)
# into a private folder put on PYTHONPATH. The prebuilt mmcv there has CPU ops only: nothing here runs an mmcv
# op on a CUDA tensor (no NMS-based validation, no two-stage detector).
# Everything is written under ${GPU_CHECK_DIR:-/tmp/gpu_check}; the summary is also saved as summary.txt there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
WHEELS="${1:-}"
WORK="${GPU_CHECK_DIR:-/tmp/gpu_check}"
mkdir -p "$WORK"
export PYTHONUNBUFFERED=1

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi finds none): these checks need one; nothing was run." >&2
  exit 2
fi
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: a GPU is present but $PY's torch cannot use it (no torch, or a CPU-only build):" \
       "install a CUDA build of torch first; nothing was run." >&2
  exit 2
fi

# -- the mm stack, from the wheels folder where it is missing
if ! "$PY" -c 'import mmcv, mmdet, mmengine, torch_pruning, imagecorruptions' 2>/dev/null; then
  if [[ ! -d "$WHEELS" ]]; then
    echo "gpu_check: the mm stack is not installed and the wheels folder '${WHEELS}' does not exist:" \
         "pass the folder holding the device wheels (mmcv, mmdet, mmengine, torch-pruning, ...)." >&2
    exit 2
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" "$WHEELS"/*.whl
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
SUMMARY="$WORK/summary.txt"
: > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
check() {  # check NAME COMMAND...: runs it, keeps its log, says ok / FAILED with the log's tail
  local name=$1; shift
  local start=$SECONDS
  if "$@" > "$WORK/$name.log" 2>&1; then
    say "[ok]     $name ($((SECONDS - start)) s)"
  else
    say "[FAILED] $name ($((SECONDS - start)) s), log $WORK/$name.log:"
    grep -v 'it/s\|task/s' "$WORK/$name.log" | tail -15 | tee -a "$SUMMARY"
  fi
}

say "== gpu_check $(date -u +%FT%TZ)"
"$PY" - <<'EOF' | tee -a "$SUMMARY"
import torch
p = torch.cuda.get_device_properties(0)
print(f'card: {torch.cuda.get_device_name(0)} ({p.total_memory / 2**30:.0f} GiB, sm_{p.major}{p.minor}); '
      f'torch {torch.__version__}, CUDA {torch.version.cuda}')
EOF

# -- data: a small synthetic VOC where the configs expect it (the checkout's data/ may be a dangling link)
if [[ ! -d data/synthetic_voc/VOCdevkit ]]; then
  [[ -L data && ! -e data ]] && rm data
  check synthetic_voc "$PY" tools/make_synthetic_voc.py data/synthetic_voc --trainval-2007 64 --test-2007 16 \
    --trainval-2012 64 --test-2012 0 --workers 4
fi

DEMO=configs/demo/ssd-r18mini_synthvoc_dense.py
# 2. AMP through tools/train.py: one epoch of the small set, no validation (mmcv's NMS has no CUDA kernel in
#    these wheels)
check train_amp "$PY" tools/train.py configs/demo/ssd-r18mini_synthvoc_sam.py --amp --work-dir "$WORK/train_amp" \
  --cfg-options train_cfg.max_epochs=1 train_cfg.val_interval=1000
grep -h "Epoch(train)" "$WORK/train_amp.log" | tail -2 | tee -a "$SUMMARY" || true

# 3. a CUDA latency table (batch 1, 128 px, small grid) and a latency-target prune with it
check latency_table_cuda "$PY" tools/build_latency_table.py "$DEMO" --device cuda --batch 1 --input-size 128 \
  --points 3 --repeats 10 --out "$WORK/latency_cuda.json"
grep -h "build\|error\|predict" "$WORK/latency_table_cuda.log" | tail -4 | tee -a "$SUMMARY" || true
check prune_latency_cuda "$PY" tools/prune.py "$DEMO" --target latency --ratio 0.6 --ranking knapsack \
  --input-size 128 --latency-table "$WORK/latency_cuda.json" --out "$WORK/pruned_latency_cuda.pth"
tail -3 "$WORK/prune_latency_cuda.log" | tee -a "$SUMMARY"

# 4. SSD300 at batch 32 on the GPU: step times and peak memory per optimiser variant
check ssd300_batch32 "$PY" tools/benchmark_step.py --detectors ssd300 --size-ssd300 300 --batch-ssd300 32 \
  --iters 5 --warmup 2 --device cuda --clock wall
grep -v 'it/s\|task/s' "$WORK/ssd300_batch32.log" | tail -10 | tee -a "$SUMMARY"

say "== done: $SUMMARY"
if grep -q '^\[FAILED\]' "$SUMMARY"; then exit 1; fi
