#!/usr/bin/env bash
# One command for the training-throughput benchmark: sets up the PyTorch reference (once),
# builds mtrec in release mode and runs every workload at the given thread count.
#   bash bench/run.sh            # 2 threads
#   THREADS=1 bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c 'import torch' 2>/dev/null; then
  bash bench/setup_reference.sh || echo "reference setup failed: mtrec figures only" >&2
fi
cargo run --release --locked -p mtrec-bench -- --threads "${THREADS:-2}" "$@"
