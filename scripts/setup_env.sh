#!/usr/bin/env bash
# Create .venv in the repository and install gan-unlearn with its test and plot extras.
# torch and torchvision are pinned to a matching pair first (override with TORCH_SPEC="torch==X torchvision==Y"):
# a lone `pip install torchvision` may pull a torch that the installed torch cannot load beside.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if [ -z "${TORCH_SPEC:-}" ]; then
  case "$(uname -m)" in
    x86_64) TORCH_SPEC="torch==2.14.1 torchvision==0.29.1" ;;
    aarch64) TORCH_SPEC="torch==2.9.1 torchvision==0.24.1" ;;
    *) TORCH_SPEC="torch torchvision" ;;
  esac
fi
# shellcheck disable=SC2086
quiet() { { grep -v "is ignored: it is neither" || true; } >&2; }  # this machine's pip config is noisy
.venv/bin/python -m pip install -q $TORCH_SPEC 2>&1 | quiet
.venv/bin/python -m pip install -q -e ".[test,plots]" 2>&1 | quiet
.venv/bin/python -c "import torch, torchvision, gan_unlearn; print('gan-unlearn', gan_unlearn.__version__, 'torch', torch.__version__, 'torchvision', torchvision.__version__)"
