#!/usr/bin/env bash
# The GPU figures of docs/BENCHMARKS.md in one call on a lent GPU machine (no MuJoCo needed: the world-model
# and policy benchmarks run on synthetic inputs). Each step has its own time limit so that a slow compile
# cannot starve the rest; the log goes to ${OUT:-runs/gpu-figures}/gpu_figures.log.
#
#     PYTHONPATH=src bash benchmarks/gpu_figures.sh
set -uo pipefail
out=${OUT:-runs/gpu-figures}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  wm() { timeout "$1" "$py" benchmarks/world_model_speed.py --device cuda --peak-tflops 780 --seconds 2 "${@:2}"; }
  echo "== small, eager, training batch 64"; wm 90 --preset small --batch-size 64 --batches 1,64,256,1024
  echo "== small, torch.compile, training batch 64"; wm 150 --preset small --batch-size 64 --batches 64 --compile
  echo "== small, eager, training batch 256"; wm 60 --preset small --batch-size 256 --batches 4096
  echo "== base, eager, training batch 64"; wm 90 --preset base --batch-size 64 --batches 1,64,256,1024
  echo "== tiny (the CPU headline's model), eager"; wm 60 --preset tiny --batch-size 64 --batches 1,64,1024
  echo "== behaviour-cloning policies"; timeout 90 "$py" benchmarks/policy_speed.py --device cuda --seconds 2
  date -u
} 2>&1 | tee "$out/gpu_figures.log"
