#!/usr/bin/env bash
# max-parallel slots, with the job specs `bkc build` writes, run by bkc-run on this machine:
#
#   benches/slots.sh [ROUNDS]     (default 30; builds target/release/bkc and bkc-run if missing)
#
# 1. Hand-over: with max-parallel 1, a run holds the slot and another queues for it; the time
#    from the holder's after hook (its last act before it lets go) to the waiter's before hook
#    (its first act with the slot), median and spread over ROUNDS rounds. It covers the
#    holder's release and state write and the waiter's wake-up (inotify), take, state write and
#    the start of its hook.
# 2. Makespan: 50 jobs whose work is `sleep 0.2`, started together with max-parallel 4. The
#    ideal is ceil(50/4) x 0.2 s = 2.6 s plus one run's own start-up and end; the figure says
#    how far the queue is from it.
# No root needed: every path is under a temporary directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-30}
for b in bkc bkc-run; do
  [ -x "$root/target/release/$b" ] || (cd "$root" && cargo build --release --bin bkc --bin bkc-run)
done
bkc=$root/target/release/bkc
run=$root/target/release/bkc-run
work=$(mktemp -d /tmp/bkc-slots.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/gate"
echo data > "$work/src/f"

# A topology of local jobs on one host with `max-parallel $1`; the rest of the jobs from stdin.
topology() {
  cat > "$work/bench.kdl" <<KDL
defaults {
    lock-dir "$work/locks"
    state-dir "$work/state"
    runner "$run"
    lock-wait "1s"
    max-parallel $1
}
host "bench"
KDL
  cat >> "$work/bench.kdl"
  rm -rf "$work/out" "$work/locks" "$work/state"
  "$bkc" build -q "$work/bench.kdl" -o "$work/out"
}
spec() { echo "$work/out/bench/etc/bkc/jobs/$1.json"; }
now() { date +%s%N; }
# Wait until a command succeeds (10 s at most).
until_ok() { for _ in $(seq 1000); do if "$@"; then return 0; fi; sleep 0.01; done; echo "timed out: $*" >&2; exit 1; }

echo "# 1. hand-over of a freed slot, $rounds rounds"
topology 1 <<KDL
job "holder" on="bench" {
    hook "before" "until [ -e $work/gate/go ]; do sleep 0.005; done"
    hook "after" "date +%s%N > $work/freed"
    sync "$work/src/" "$work/holder/"
}
job "waiter" on="bench" {
    hook "before" "date +%s%N > $work/entered"
    sync "$work/src/" "$work/waiter/"
}
KDL
: > "$work/gaps"
for _ in $(seq "$rounds"); do
  rm -f "$work/gate/go" "$work/freed" "$work/entered"
  "$run" "$(spec holder)" > /dev/null 2>&1 &
  until_ok test -s "$work/locks/slots/0"
  "$run" "$(spec waiter)" > /dev/null 2>&1 &
  until_ok test -e "$work/locks/slots/queue/waiter"
  touch "$work/gate/go"
  wait
  echo $(( ($(cat "$work/entered") - $(cat "$work/freed")) / 1000 )) >> "$work/gaps"
done
sort -n "$work/gaps" | awk '{a[NR]=$1} END {printf "freed slot -> next start: median %.2f ms, min %.2f ms, max %.2f ms (%d rounds)\n", a[int((NR+1)/2)]/1000, a[1]/1000, a[NR]/1000, NR}'

echo "# 2. makespan of 50 jobs of 0.2 s with max-parallel 4"
for i in $(seq -w 0 49); do
  cat <<KDL
job "j$i" on="bench" {
    hook "before" "sleep 0.2"
    sync "$work/src/" "$work/j$i/"
}
KDL
done | topology 4
makespan() {
  local t0 t1
  t0=$(now)
  for i in $(seq -w 0 49); do "$run" "$(spec "j$i")" > /dev/null 2>&1 & done
  wait
  t1=$(now)
  echo $(( (t1 - t0) / 1000000 ))
}
# One job alone: the start-up and end a run adds to its 0.2 s of work.
t0=$(now); "$run" "$(spec j00)" > /dev/null 2>&1; one=$(( ($(now) - t0) / 1000000 ))
: > "$work/spans"
for _ in 1 2 3 4 5; do makespan >> "$work/spans"; done
median=$(sort -n "$work/spans" | sed -n 3p)
ideal=$(( 13 * one ))
echo "one run alone: $one ms; ideal for 50 (13 rounds of 4): $ideal ms"
echo "makespan: median $median ms of 5 ($(sort -n "$work/spans" | tr '\n' ' ')); $(awk -v m="$median" -v i="$ideal" 'BEGIN {printf "%.2f", m / i}') x the ideal"
