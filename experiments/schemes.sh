#!/usr/bin/env bash
# MMoE alone against MMoE with each loss weighting and sharing scheme (issue 6) on Census
# groups 1 and 2: same data, model, seed and epochs, only `[weighting]` or `[scheme]` differ.
# Prints a table of test figures (mean ± std over seeds) and wall times, also written as CSV.
#
#   experiments/schemes.sh                      # census-g1 and census-g2, seed 2018
#   SEEDS="1 2 3" experiments/schemes.sh census-g1
#
# Runs land in $OUT (default runs/schemes-experiment); an existing run is kept, so an
# interrupted experiment resumes where it stopped. MTREC=path/to/mtrec skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${MTREC:-}" ]; then
    cargo build --release --locked --quiet
    MTREC="${CARGO_TARGET_DIR:-target}/release/mtrec"
fi
mtrec=$MTREC
seeds=${SEEDS:-2018}
out=${OUT:-runs/schemes-experiment}
mkdir -p "$out"
for data in ${@:-census-g1 census-g2}; do
    for seed in $seeds; do
        for variant in "" -uncertainty -metabalance -cross-distil -lt4rec -csm; do
            run="$out/$data-mmoe$variant-s$seed"
            [ -f "$run/metrics.json" ] || "$mtrec" train --config "configs/$data-mmoe$variant.toml" --seed "$seed" --out "$run" --json > /dev/null
        done
    done
    echo "== $data"
    "$mtrec" compare "$out/$data"-*-s* --csv "$out/$data.csv"
done
