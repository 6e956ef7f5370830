#!/usr/bin/env bash
# Create bench/.venv with the PyTorch reference used by mtrec's benchmarks.
#
#   bash bench/setup_reference.sh
#
# Idempotent: does nothing when the venv already imports torch and numpy.
# Tries the CPU-only wheel index first (about 200 MB); when that index is not
# reachable, falls back to plain PyPI (about 3 GB with the CUDA libraries the
# default wheel needs even to import).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
req="$here/reference/requirements.txt"
py="$venv/bin/python"
cpu_index="https://download.pytorch.org/whl/cpu"

if [[ -x "$py" ]] && "$py" -c 'import torch, numpy' 2>/dev/null; then
    echo "reference ready: $py (torch $("$py" -c 'import torch; print(torch.__version__)'))"
    exit 0
fi

if [[ ! -x "$py" ]]; then
    echo "creating $venv"
    python3 -m venv "$venv"
fi
"$py" -m pip install --quiet --upgrade pip

if curl -fsS --max-time 15 -o /dev/null "$cpu_index/torch/" 2>/dev/null; then
    echo "installing torch (CPU wheels from $cpu_index) and numpy"
    "$py" -m pip install --index-url "$cpu_index" --extra-index-url https://pypi.org/simple -r "$req"
else
    echo "CPU wheel index unreachable; installing torch and numpy from PyPI (~3 GB)"
    "$py" -m pip install -r "$req"
fi

"$py" -c 'import torch, numpy; print("reference ready:", torch.__version__, "numpy", numpy.__version__)'
echo "python: $py"
