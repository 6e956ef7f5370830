#!/usr/bin/env bash
# Runs every fuzz target (or those named) for TARGET_SECONDS each, one after another, and
# prints a table of executions per target from libFuzzer's final stats.
#
#   fuzz/run-all.sh 600                 # every target, 10 minutes each
#   fuzz/run-all.sh 60 csv_reader       # one target, 1 minute
#
# New inputs go to fuzz/work/TARGET (git-ignored), the committed seeds in fuzz/corpus/TARGET
# are only read; a crash is written to fuzz/artifacts/TARGET/ and its log kept in
# fuzz/work/TARGET.log. Exits 1 when any target crashed. Needs the nightly toolchain and
# cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail

seconds=${1:?usage: fuzz/run-all.sh TARGET_SECONDS [TARGET...]}
shift
cd "$(dirname "$0")"

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

nice -n 19 cargo +nightly fuzz build

# One thread per run: the tensor backend would otherwise spread each tiny model over every
# core, which costs more than it gains and makes runs depend on the machine.
export RAYON_NUM_THREADS=1

# A value of libFuzzer's final stats (`stat::NAME: VALUE`) in log $1.
final_stat() { grep -h "^stat::$2:" "$1" | tail -1 | awk '{print $2}' || true; }

failed=0
printf '%-20s %12s %10s %8s  %s\n' target executions exec/s rss_mb result
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "corpus/$t" "artifacts/$t"
    log="work/$t.log"
    # Keywords and edge values of the text formats, which byte mutations rarely spell.
    dict=()
    if [ -f "dicts/$t.dict" ]; then dict=("-dict=dicts/$t.dict"); fi
    # -malloc_limit_mb: a single allocation above 512 MB is a finding (a forged length
    # believed); no input here needs a hundredth of it.
    if nice -n 19 cargo +nightly fuzz run "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -print_final_stats=1 "${dict[@]}" >"$log" 2>&1; then
        result=ok
    else
        result="CRASH: $(grep -ho 'artifacts/[^ ]*' "$log" | tail -1 || true) (see $log)"
        failed=1
    fi
    # Each fuzzing process wrote its inputs to a scratch folder of its own (see
    # `scratch_dir` in src/lib.rs, named by process id), left behind when libFuzzer exits.
    # Only folders of finished processes go, so several run-all.sh can run side by side.
    for d in /dev/shm/mtrec-fuzz-* "${TMPDIR:-/tmp}"/mtrec-fuzz-*; do
        [ -e "$d" ] || continue
        kill -0 "${d##*-}" 2>/dev/null || rm -rf "$d"
    done
    printf '%-20s %12s %10s %8s  %s\n' "$t" "$(final_stat "$log" number_of_executed_units)" \
        "$(final_stat "$log" average_exec_per_sec)" "$(final_stat "$log" peak_rss_mb)" "$result"
done
exit "$failed"
