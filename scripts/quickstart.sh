#!/usr/bin/env bash
# The main job end to end on a fresh machine: set up, train a small MNIST GAN and the oracle classifier,
# unlearn one digit by cascaded unlearning, evaluate original against unlearned side by side, write sample
# grids. Usage: bash scripts/quickstart.sh [DATA_ROOT] [OUT_DIR]   (about 5 minutes on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-${GAN_UNLEARN_DATA:-../shared/datasets}}
OUT=${2:-runs/quickstart}
bash scripts/setup_env.sh
mkdir -p "$OUT"
GU=.venv/bin/gan-unlearn
$GU train-gan --dataset mnist --data-root "$DATA" --epochs 1 --out "$OUT/gan.pt"
$GU train-classifier --dataset mnist --data-root "$DATA" --epochs 2 --out "$OUT/oracle.pt"
$GU unlearn --gan "$OUT/gan.pt" --oracle "$OUT/oracle.pt" --forget-class 3 --data-root "$DATA" --out "$OUT/gan_without_3.pt"
$GU evaluate "$OUT/gan.pt" "$OUT/gan_without_3.pt" --oracle "$OUT/oracle.pt" --data-root "$DATA" --out-dir "$OUT"
$GU sample --gan "$OUT/gan_without_3.pt" --num 64 --out "$OUT/samples_without_3.png"
echo "done: $OUT/report.md, $OUT/gan_samples.png, $OUT/gan_without_3_samples.png"
