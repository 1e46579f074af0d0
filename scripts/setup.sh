#!/usr/bin/env bash
# Set up wmeval on a fresh Debian/Ubuntu machine: system libraries for headless
# MuJoCo rendering, a virtual environment in .venv, PyTorch (CPU build where no
# GPU is present) and the package itself. Safe to run again: it skips what is done.
#
#   bash scripts/setup.sh            # runtime + dev tools (pytest, ruff)
#   WMEVAL_TORCH='torch==2.11.*' bash scripts/setup.sh   # pick another torch
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${WMEVAL_VENV:-.venv}
PY=${PYTHON:-python3}

# 1. Headless OpenGL (EGL + OSMesa) from Debian's Mesa packages, and headless Chromium (the test that
#    renders `wmeval report`'s HTML page takes a screenshot with it).
need_apt=()
for pkg in libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 libgles2 chromium; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  echo "[setup] installing system packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# 2. Virtual environment.
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"

# 3. PyTorch: a CPU build unless a GPU is present (a plain 'torch' pulls a multi-GB CUDA build).
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if [ -n "${WMEVAL_TORCH:-}" ]; then spec=$WMEVAL_TORCH
  elif command -v nvidia-smi >/dev/null 2>&1; then spec="torch>=2.4"
  else spec="torch==2.13.0"; fi
  echo "[setup] installing $spec"
  $PIP install "$spec"
fi

# 4. The package (editable) with its test tools, the importers' readers (HDF5, parquet, mp4) and matplotlib.
echo "[setup] installing wmeval"
$PIP install -e ".[dev,import,plots]"
echo "[setup] done: activate with 'source $VENV/bin/activate' or call $VENV/bin/wmeval"
