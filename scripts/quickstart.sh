#!/usr/bin/env bash
# The main job end to end on a fresh machine: set up, train a small MNIST GAN and the oracle classifier,
# write sample grids. Usage: bash scripts/quickstart.sh [DATA_ROOT] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-${GAN_UNLEARN_DATA:-../shared/datasets}}
OUT=${2:-runs/quickstart}
bash scripts/setup_env.sh
mkdir -p "$OUT"
GU=.venv/bin/gan-unlearn
$GU train-gan --dataset mnist --data-root "$DATA" --epochs 1 --out "$OUT/gan.pt"
$GU train-classifier --dataset mnist --data-root "$DATA" --epochs 2 --out "$OUT/oracle.pt"
$GU sample --gan "$OUT/gan.pt" --num 64 --out "$OUT/samples.png"
echo "done: $OUT/samples.png"
