#!/usr/bin/env bash
# Builds mmcv 2.1.0 (compiled ops, CPU) from the PyPI source into a wheel, for stacks where no prebuilt
# wheel exists (PyPI ships only the sdist). Recipe and reasons: README "Install" / shared STACK notes.
#   VENV     environment holding the torch to build against (required)
#   OUT_DIR  where the wheel goes (default ~/.cache/mmdet-adasap/wheels)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${VENV:?set VENV to the environment with torch installed}"
OUT_DIR="${OUT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mmdet-adasap/wheels}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

# mmcv's setup.py imports pkg_resources (gone from setuptools >= 81) and must see the installed torch,
# hence an older setuptools inside the venv and no build isolation.
"${PIP[@]}" install "setuptools<70" wheel ninja
# --no-build-isolation: even fetching the sdist runs its setup.py, which needs pkg_resources and torch
"${PIP[@]}" download --no-deps --no-binary :all: --no-build-isolation -d "$WORK" mmcv==2.1.0
tar -xzf "$WORK"/mmcv-2.1.0.tar.gz -C "$WORK"
"$VENV/bin/python" "$ROOT/tools/patch_mmcv_cxx_std.py" "$WORK/mmcv-2.1.0/setup.py"
mkdir -p "$OUT_DIR"
# -g0: no debug info (halves the build time, 40x smaller .so); MAX_JOBS: use every core via ninja.
(cd "$WORK/mmcv-2.1.0" && MMCV_WITH_OPS=1 FORCE_CUDA=0 CFLAGS="-g0" CXXFLAGS="-g0" MAX_JOBS="$(nproc)" \
   "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$OUT_DIR" .)
echo "[build_mmcv_wheel] wheel written to $OUT_DIR"
