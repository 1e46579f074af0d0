#!/usr/bin/env bash
# Closed-loop evaluation throughput on a GPU (learned policies acting on generated frames: the CPU headline's
# trained `tiny` world model, and a `small` one trained for 100 steps on the carried starts, for its cost only)
# and humanoid collection with 16 workers. Needs the folder `python benchmarks/gpu_carry.py` packs, and MuJoCo.
#
#     PYTHONPATH=src MUJOCO_GL=egl bash benchmarks/gpu_closed_loop.sh [.devcarry]
set -uo pipefail
D=${1:-.devcarry}
out=${OUT:-runs/gpu-closed-loop}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
ev() {
  timeout "$1" python3 benchmarks/evaluate_throughput.py --zoo "$D/zoo.toml" --store "$D/store" --policies 'bc-*' \
    --starts 8 --device cuda --batches 1,16,64,256,1024 --episodes 1024 --rounds 4 "${@:2}"
}
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "== tiny (the CPU headline's model)"; ev 150 --model "$D/wm-tiny" --scaling 256,1024,2048
  echo "== small: 100 codec + 100 dynamics steps, for a checkpoint of its size"
  timeout 200 python3 -m wmeval.cli train --store "$D/store" --out /tmp/wm-small --preset small --codec-steps 100 \
    --steps 100 --eval-every 100 --save-every 100 --device cuda --no-progress 2>&1 | tail -3
  echo "== small"; ev 150 --model /tmp/wm-small/model --scaling ''
  echo "== humanoid collection"
  timeout 100 python3 benchmarks/collect_throughput.py --suite humanoid --episodes 96 --sizes 64 --workers 1,16
  date -u
} 2>&1 | tee "$out/gpu_closed_loop.log"
