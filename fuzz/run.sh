#!/usr/bin/env bash
# Run every fuzz target for a bounded time and print a table of executions and coverage
# (the table in docs/FUZZING.md comes from here).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 20 seconds, every target)
#
# BKC_FUZZ_SEED=N fixes libFuzzer's seed, and BKC_FUZZ_RUNS=N stops each target after N inputs
# (the seconds then only cap it): the run then tries the same inputs in the same order on any
# machine, however fast, so a run that passed once passes again. Without them every run explores
# afresh.
# Each target starts from its seeds in fuzz/corpus/<target>/ and grows its corpus in a scratch
# directory, so a run never changes the repository. A crash stops the script with libFuzzer's
# report; the input is in fuzz/artifacts/<target>/ and becomes a regression test (FUZZING.md).
# No sanitizer: the targets are safe Rust, where AddressSanitizer finds nothing more and costs
# half the speed and a longer build.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
fuzz=(cargo +nightly fuzz)
"${fuzz[@]}" build -O -s none >&2
scratch=$(mktemp -d /tmp/bkc-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
echo "| target | seconds | executions | exec/s | coverage (edges) | features | corpus (seeds) |"
echo "|---|---|---|---|---|---|---|"
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    seeds=$(find "corpus/$t" -type f | wc -l)
    # -timeout: an input slower than this is a finding too (an exponential parse, say).
    if ! "${fuzz[@]}" run -O -s none "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 ${BKC_FUZZ_SEED:+-seed="$BKC_FUZZ_SEED"} \
        ${BKC_FUZZ_RUNS:+-runs="$BKC_FUZZ_RUNS"} > "$scratch/$t.log" 2>&1; then
        tail -n 40 "$scratch/$t.log" >&2
        echo "fuzz target $t failed; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$scratch/$t.log" | tail -n 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t.log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$scratch/$t.log")
    cov=$(sed -E 's/.* cov: ([0-9]+).*/\1/' <<< "$done_line")
    ft=$(sed -E 's/.* ft: ([0-9]+).*/\1/' <<< "$done_line")
    corp=$(sed -E 's/.* corp: ([0-9]+)\/.*/\1/' <<< "$done_line")
    echo "| $t | $secs | $execs | $rate | $cov | $ft | $corp ($seeds) |"
done
