#!/usr/bin/env bash
# Create bench/.venv with the PyTorch reference used by mtrec's benchmarks.
#
#   bash bench/setup_reference.sh
#
# Idempotent: does nothing when the venv already imports torch and numpy.
# Installs through pip as the machine configures it (no index address in the
# project); the default torch wheel brings its CUDA libraries (about 3 GB).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
req="$here/reference/requirements.txt"
py="$venv/bin/python"

if [[ -x "$py" ]] && "$py" -c 'import torch, numpy' 2>/dev/null; then
    echo "reference ready: $py (torch $("$py" -c 'import torch; print(torch.__version__)'))"
    exit 0
fi

if [[ ! -x "$py" ]]; then
    echo "creating $venv"
    python3 -m venv "$venv"
fi
"$py" -m pip install --quiet --upgrade pip

echo "installing torch and numpy with the machine's pip configuration"
"$py" -m pip install -r "$req"

"$py" -c 'import torch, numpy; print("reference ready:", torch.__version__, "numpy", numpy.__version__)'
echo "python: $py"
