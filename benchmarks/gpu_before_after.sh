#!/usr/bin/env bash
# A change's effect on imagination speed on one GPU: closed-loop imagination with learned policies
# (evaluate_throughput.py) and the synthetic rate (world_model_speed.py), before and after, alternating, two
# rounds. BEFORE_SRC is the `src/` of the commit before the change; CARRY the folder `gpu_carry.py` packs.
#
#     mkdir -p .devold && git archive REV src | tar -x -C .devold              # here (.devold git-ignored)
#     bash benchmarks/gpu_before_after.sh .devold/src .devcarry                  # on the GPU machine
set -uo pipefail
BEFORE=${1:?the src/ folder of the commit before the change}
D=${2:-.devcarry}
export MUJOCO_GL=egl PYTHONUNBUFFERED=1
date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print(torch.__version__)"
ev() { timeout 150 python3 benchmarks/evaluate_throughput.py --zoo "$D/zoo.toml" --store "$D/store" --policies 'bc-*' \
  --starts 8 --device cuda --model "$D/wm-tiny" --batches 64,256,1024 --episodes 1024 --rounds 4 --scaling '' 2>&1 | grep '^|'; }
sp() { timeout 120 python3 benchmarks/world_model_speed.py --preset tiny --latent-channels 8 --codec-width 32 \
  --batches 64,1024 --seconds 2 --device cuda 2>&1 | grep -v -i warn | grep 'matmul\|^| [0-9]\|train:'; }
for r in 1 2; do
  echo "== round $r: before"; PYTHONPATH="$BEFORE" ev; PYTHONPATH="$BEFORE" sp
  echo "== round $r: after"; PYTHONPATH=src ev; PYTHONPATH=src sp
done
date -u
