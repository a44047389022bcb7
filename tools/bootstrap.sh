#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment with the verified stack.
# Idempotent: does nothing when the environment already matches requirements/ and setup.py.
#
#   ADASAP_VENV     where the environment lives (default: .venv inside the clone, git-ignored)
#   MMCV_WHEEL_DIR  a folder holding a prebuilt mmcv-2.1.0 wheel for this Python/torch; without one
#                   (or without a matching one) mmcv is built from the PyPI source once per machine
#                   by tools/build_mmcv_wheel.sh and cached in ~/.cache/mmdet-adasap/wheels.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ADASAP_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
CACHE_WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/mmdet-adasap/wheels"

stamp_of() { cat "$ROOT/requirements/"*.txt "$ROOT/setup.py" "$ROOT/tools/bootstrap.sh" | sha256sum | cut -c1-16; }
STAMP="$(stamp_of)"
if [[ -f "$VENV/.adasap-stamp" && "$(cat "$VENV/.adasap-stamp")" == "$STAMP" ]]; then
  exit 0
fi

echo "[bootstrap] setting up $VENV (first run: ~3 min with a prebuilt mmcv wheel, ~20-40 min building mmcv)"
start=$SECONDS
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
CONSTRAINTS=(-c "$ROOT/requirements/constraints.txt")

# 1. torch first: mmcv's build and several packages' metadata need it present.
"${PIP[@]}" install "${CONSTRAINTS[@]}" torch torchvision setuptools

# 2. mmcv 2.1.0 with compiled ops: a matching prebuilt wheel if one is offered, else a cached source build.
install_mmcv_from() {  # $1: folder with wheels
  [[ -d "$1" ]] && "${PIP[@]}" install --no-index --no-deps --find-links "$1" mmcv==2.1.0 >/dev/null 2>&1
}
if ! "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  if install_mmcv_from "${MMCV_WHEEL_DIR:-/nonexistent}"; then
    echo "[bootstrap] mmcv from prebuilt wheel in $MMCV_WHEEL_DIR"
  elif install_mmcv_from "$CACHE_WHEELS"; then
    echo "[bootstrap] mmcv from this machine's cache $CACHE_WHEELS"
  else
    echo "[bootstrap] no matching mmcv wheel: building mmcv 2.1.0 from source (once per machine)"
    VENV="$VENV" OUT_DIR="$CACHE_WHEELS" bash "$ROOT/tools/build_mmcv_wheel.sh"
    install_mmcv_from "$CACHE_WHEELS" || { echo "[bootstrap] mmcv build produced no installable wheel" >&2; exit 1; }
  fi
fi

# 3. the rest, pinned, plus this package (editable) and the test tools.
"${PIP[@]}" install "${CONSTRAINTS[@]}" -r "$ROOT/requirements/pinned.txt" -e "$ROOT"
"$VENV/bin/python" -c "import mmcv.ops, mmdet, torch_pruning, imagecorruptions, mmdet_adasap" \
  || { echo "[bootstrap] import check failed" >&2; exit 1; }
echo "$STAMP" > "$VENV/.adasap-stamp"
echo "[bootstrap] ready in $((SECONDS - start)) s"
