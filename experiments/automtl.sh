#!/usr/bin/env bash
# AutoMTL against hand-made MMoE, PLE and AdaTT (issue 5): for every data set and seed, one
# search + finetune and one training of each baseline, then a table of test figures
# (mean ± std over seeds) and wall times, also written as CSV.
#
#   experiments/automtl.sh                      # synthetic-c05, census-g1, census-g2; seeds 1 2 3
#   SEEDS="1 2 3 4 5" experiments/automtl.sh census-g1
#
# Runs land in $OUT (default runs/automtl-experiment); an existing run is kept, so an
# interrupted experiment resumes where it stopped. MTREC=path/to/mtrec skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${MTREC:-}" ]; then
    cargo build --release --locked --quiet
    MTREC="${CARGO_TARGET_DIR:-target}/release/mtrec"
fi
mtrec=$MTREC
seeds=${SEEDS:-"1 2 3"}
out=${OUT:-runs/automtl-experiment}
mkdir -p "$out"
for data in "${@:-synthetic-c05 census-g1 census-g2}"; do
    for data in $data; do
        for seed in $seeds; do
            run="$out/$data-automtl-s$seed"
            [ -f "$run/metrics.json" ] || "$mtrec" search --config "configs/$data-automtl.toml" --seed "$seed" --out "$run" --json > /dev/null
            for model in mmoe ple adatt; do
                run="$out/$data-$model-s$seed"
                [ -f "$run/metrics.json" ] || "$mtrec" train --config "configs/$data-$model.toml" --seed "$seed" --out "$run" --json > /dev/null
            done
        done
        echo "== $data"
        "$mtrec" compare "$out/$data"-*-s* --csv "$out/$data.csv"
    done
done
