#!/usr/bin/env bash
# AutoMTL against hand-made MMoE, PLE and AdaTT (issues 5 and 11): for every data set and seed,
# one search + finetune, one training of the found architecture from scratch (same [train] and
# early stopping, for the cost ratio; first seed only unless SCRATCH_SEEDS="..."), and one training of each baseline; then a table of test
# figures (mean ± std over seeds) and wall times, also written as CSV, and `mtrec arch score`:
# the searches' agreement across seeds and, on the planted data, recall and precision of the
# planted relevant fields.
#
#   experiments/automtl.sh                          # planted, census-g1, census-g2; seeds 1-5
#   SEEDS="1 2" experiments/automtl.sh census-g1    # one data set, two seeds
#   experiments/automtl.sh synthetic-c05            # the MMoE synthetic data
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
seeds=${SEEDS:-"1 2 3 4 5"}
out=${OUT:-runs/automtl-experiment}
mkdir -p "$out"
for data in ${@:-planted census-g1 census-g2}; do
    truth=()
    if [ "$data" = planted ]; then
        # The planted benchmark's file (configs/planted-*.toml read it from here).
        [ -f runs/data/planted-100k.parquet ] ||
            "$mtrec" data synth --kind recsys --rows 100000 --seed 7 --out runs/data/planted-100k.parquet > /dev/null
        truth=(--truth runs/data/planted-100k.truth.json)
    fi
    for seed in $seeds; do
        run="$out/$data-automtl-s$seed"
        [ -f "$run/metrics.json" ] || "$mtrec" search --config "configs/$data-automtl.toml" --seed "$seed" --out "$run" --json > /dev/null
        scratch="$out/$data-automtl-scratch-s$seed"
        case " ${SCRATCH_SEEDS:-${seeds%% *}} " in *" $seed "*) ;; *) scratch= ;; esac
        [ -z "$scratch" ] || [ -f "$scratch/metrics.json" ] || "$mtrec" train --config "configs/$data-automtl.toml" --arch "$run/arch.json" --seed "$seed" --out "$scratch" --json > /dev/null
        for model in mmoe ple adatt; do
            run="$out/$data-$model-s$seed"
            [ -f "$run/metrics.json" ] || "$mtrec" train --config "configs/$data-$model.toml" --seed "$seed" --out "$run" --json > /dev/null
        done
    done
    echo "== $data"
    "$mtrec" compare "$out/$data"-*-s* --csv "$out/$data.csv"
    "$mtrec" arch score "$out/$data"-automtl-s*/arch.json "${truth[@]}" | tee "$out/$data-arch-score.txt"
done
