#!/usr/bin/env bash
# The distributed robustness evaluation N times in a row on 2 CPU processes (gloo), each run's exit status printed:
# the check that a finished multi-process run also exits cleanly (rank exits used to abort now and then; see
# destroy_the_process_group_at_exit in mmdet_adasap/upstream_fixes.py). Data: a tiny synthetic VOC in a temp dir;
# model: the committed demo dense start.
#   bash tools/stress_dist_exit.sh [N=20]   (PYTHON: the interpreter, default python; KEEP_LOGS=DIR keeps failed runs' logs)
set -uo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}
PY=${PYTHON:-python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PY" -c "from mmdet_adasap.datasets import SyntheticVOCSpec, make_synthetic_voc
make_synthetic_voc('$TMP/voc', SyntheticVOCSpec(trainval={'VOC2007': 4, 'VOC2012': 2},
                   test={'VOC2007': 6, 'VOC2012': 2}, min_side=160, max_side=224, seed=3), show_progress=False)"
failed=0
for i in $(seq 1 "$N"); do
  PYTHON="$PY" PORT=$((${PORT_BASE:-29600} + i)) OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore bash tools/dist_launch.sh \
    test_robustness.py 2 configs/demo/ssd-r18mini_synthvoc_dense.py docs/results/demo/dense_start.pth \
    --out "$TMP/out$i" --corruptions gaussian_noise --severities 2 --no-plots --cfg-options \
    test_dataloader.dataset.data_root="$TMP/voc/VOCdevkit/" test_dataloader.num_workers=0 \
    test_dataloader.persistent_workers=False > "$TMP/log$i" 2>&1
  rc=$?
  if [[ $rc != 0 ]]; then
    failed=$((failed + 1))
    echo "run $i: rc $rc"; grep -E 'terminate called|Error|error:|Signal' "$TMP/log$i" | head -5
    [[ -n "${KEEP_LOGS:-}" ]] && mkdir -p "$KEEP_LOGS" && cp "$TMP/log$i" "$KEEP_LOGS/"
  else
    echo "run $i: rc 0 ($(grep -o 'P [0-9.]*  mPC [0-9.]*' "$TMP/log$i" | tail -1))"
  fi
done
echo "$((N - failed)) of $N runs exited with rc 0"
[[ $failed == 0 ]]
