#!/usr/bin/env bash
# Rebuild the seed corpora in fuzz/corpus/ from the project's own examples and test data: the
# topologies, what `bkc build` makes of them (job specs, manifests), what observe.sh answers for
# a built host tree, and the rsync-director configs. Small on purpose: libFuzzer grows its own
# corpus from these in a scratch directory (see docs/FUZZING.md); only seeds live in the repo.
#
#   fuzz/seeds.sh [path/to/bkc]     (default: target/debug/bkc, built if missing)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bkc=${1:-$root/target/debug/bkc}
[ -x "$bkc" ] || (cd "$root" && cargo build -q --bin bkc)
c=$root/fuzz/corpus
rm -rf "$c"
mkdir -p "$c"/{check,fmt_roundtrip,job_spec,observe,status,manifest,import}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for f in "$root"/examples/*.kdl "$root"/tests/data/*.kdl; do
    cp "$f" "$c/check/"
    cp "$f" "$c/fmt_roundtrip/"
done
for f in "$root"/examples/rsyncdirector/*.yaml "$root"/tests/data/*.yaml; do
    cp "$f" "$c/import/"
done

for f in "$root"/examples/*.kdl; do
    name=$(basename "$f" .kdl)
    "$bkc" build -q "$f" -o "$work/$name" > /dev/null
    for host in "$work/$name"/*/; do
        h=$(basename "$host")
        cp "$host/etc/bkc/manifest.json" "$c/manifest/$name-$h.json"
        for spec in "$host"/etc/bkc/jobs/*.json; do
            [ -f "$spec" ] && cp "$spec" "$c/job_spec/$name-$(basename "$spec")"
        done
        # What observe.sh answers for this host once applied (no systemd here: timers unknown).
        R=${host%/} sh "$root/src/deploy/observe.sh" /usr/local/bin/bkc-run \
            > "$c/observe/$name-$h.txt" 2> /dev/null || true
    done
done

# A status answer as src/deploy/status.rs's script writes it, around a real state file's shape.
state='{"version":1,"job":"a-to-b","run":"20260301T021500Z-42","start":"2026-03-01T02:15:00Z","end":"2026-03-01T02:20:00Z","duration_secs":300.0,"result":"failed","exit_code":1,"reason":"rsync exited 23","bytes_sent":10,"bytes_received":20,"lock_wait_secs":0.5,"syncs":[],"last_success":"2026-02-25T02:15:00Z","last_success_start":"2026-02-25T02:10:00Z","runs_total":{"success":3,"failed":1}}'
{
    echo "job a-to-b"
    echo "F ${#state} a-to-b"
    printf '%s' "$state"
    echo
    echo "next a-to-b Thu 2026-03-05 03:00:00 UTC"
    echo "service a-to-b inactive"
    echo "lock a-to-b held"
    echo "job desktop-to-a"
    echo "next desktop-to-a n/a"
    echo "service desktop-to-a activating"
    echo "end"
} > "$c/status/answer.txt"
printf '%s\n' "$state" > "$c/status/state.json"
echo '{"job":"a-to-b","host":"backup_a","pid":42,"boot_id":"0b8c","start":"2026-03-01T02:15:00Z"}' \
    > "$c/status/holder.txt"
ls "$c"/* | wc -l
