#!/usr/bin/env bash
# "Your own robot", end to end on data this script makes itself (README: "Your own robot"). The simulator
# stands in twice: for the robot that recorded your logs (steps 1-2) and for your real trials (step 6).
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${WMEVAL:-.venv/bin/wmeval}
OUT=${OUT:-runs/your-robot}
EPISODES=${EPISODES:-10}
# 1-2. your robot's logs as a LeRobot dataset: a scripted expert and its degradations, successes and failures
$W collect --zoo default --tasks drawer-open --episodes "$EPISODES" --out "$OUT/sim-logs"
[ -d "$OUT/lerobot" ] || $W export lerobot "$OUT/sim-logs" "$OUT/lerobot"
# 3. import it (each row's action is a chunk of 4 control actions, as the export wrote it)
$W import lerobot "$OUT/lerobot" --out "$OUT/store" --action-chunk 4 --suite metaworld
# 4. train the world model on it
$W train --store "$OUT/store" --out "$OUT/wm" --preset tiny --steps "${STEPS:-3000}" --val-fraction 0.2
# 5. judge your policies in imagination
$W evaluate --model "$OUT/wm/model" --zoo examples/your_robot/zoo.toml --out "$OUT/eval" --episodes 20 --seed 0
# 6. your real trials of the same policies, as a CSV (policy,task,successes,trials)
$W collect --zoo examples/your_robot/zoo.toml --tasks drawer-open --episodes 20 --out "$OUT/trials"
$W table "$OUT/trials" --csv "$OUT/trials.csv"
# 7. how well the verdicts agree with your trials
$W align "$OUT/eval" --true "$OUT/trials.csv"
