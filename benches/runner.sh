#!/usr/bin/env bash
# bkc-run against bare rsync on the same local trees: what the runner adds in time and memory.
#
#   benches/runner.sh [path/to/bkc-run]     (default: target/release/bkc-run, built if missing)
#
# Cases: the runner alone (a job with one lock and no sync: start-up, lock, state, metrics), a
# no-change sync of 10,000 small files, and a 1 GiB copy. Times come from hyperfine when it is
# installed (else a plain loop with `date`); max RSS from GNU time. The rsync side gets the same
# flags the runner adds (--stats --mkpath), so the difference is the runner's own cost.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/bkc-run}
if [ ! -x "$bin" ]; then
  (cd "$root" && cargo build --release --bin bkc-run)
fi
work=$(mktemp -d /tmp/bkc-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "# trees"
mkdir -p "$work/small/src"
for d in $(seq 0 99); do
  mkdir -p "$work/small/src/d$d"
  for f in $(seq 0 99); do echo "file $d/$f" > "$work/small/src/d$d/f$f"; done
done
mkdir -p "$work/big/src"
head -c 1G /dev/urandom > "$work/big/src/blob"
rsync -a "$work/small/src/" "$work/small/dst/"

spec() { # name, syncs json
  cat > "$work/$1.json" <<JSON
{"version":1,"job":"$1","host":"bench","state-dir":"$work/state","metrics-dir":"$work/metrics",
 "known-hosts":"/dev/null","identity":null,"hosts":{},"every":null,"timeout-secs":null,"nice":null,
 "io-class":null,"retries":0,"retry-delay-secs":1,
 "locks":[{"host":"bench","path":"$work/locks/$1.lock","mode":"exclusive","owner":"$1","wait-secs":1,"timeout-secs":10}],
 "lock-files":[],"wait-files":[],"hooks":[],"syncs":[$2]}
JSON
}
sync() { # src, dst
  echo "{\"source\":{\"host\":\"bench\",\"path\":\"$1\"},\"dest\":{\"host\":\"bench\",\"path\":\"$2\"},\"opts\":[\"-a\"],\"exclude\":[],\"bwlimit\":null,\"deletes\":false,\"allow-empty-source\":false,\"snapshot\":null}"
}
spec empty ""
spec small "$(sync "$work/small/src/" "$work/small/dst/")"
spec big "$(sync "$work/big/src/" "$work/big/dst/")"

timing() { # runs, prepare, name=cmd ...
  local runs=$1 prepare=$2
  shift 2
  if command -v hyperfine > /dev/null; then
    local args=(--runs "$runs" --warmup 1 -N --time-unit millisecond --export-json "$work/t.json")
    [ -n "$prepare" ] && args+=(--prepare "$prepare")
    local cmds=()
    for c in "$@"; do cmds+=(-n "${c%%=*}" "${c#*=}"); done
    hyperfine "${args[@]}" "${cmds[@]}" > /dev/null
    # Wall time suffers from whatever else the machine runs; user+sys CPU much less.
    python3 - "$work/t.json" << 'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    ms = lambda v: "%.1f" % (v * 1000)
    print("| %s | %s ± %s | %s | %s | %s |" % (r["command"], ms(r["mean"]), ms(r["stddev"] or 0), ms(r["min"]),
          ms(r["median"]), ms(r["user"] + r["system"])))
PY
  else
    for c in "$@"; do
      local t0 t1
      t0=$(date +%s%N)
      for _ in $(seq "$runs"); do
        [ -n "$prepare" ] && sh -c "$prepare"
        sh -c "${c#*=}" > /dev/null 2>&1
      done
      t1=$(date +%s%N)
      echo "| ${c%%=*} | $(((t1 - t0) / runs / 1000000)) | - | - | - |"
    done
  fi
}

rss() { # name cmd...
  local name=$1
  shift
  /usr/bin/time -f "%M KiB | %U s | %S s" -o "$work/rss" "$@" > /dev/null 2>&1 || true
  echo "| $name | $(cat "$work/rss") |"
}

rsync_flags=(-a --stats --mkpath)
echo
echo "# time"
echo "| case | wall mean ± σ [ms] | wall min [ms] | wall median [ms] | CPU user+sys mean [ms] |"
echo "|---|---|---|---|---|"
timing 100 "" "runner alone (lock, state, metrics)=$bin $work/empty.json" "process start (true)=/bin/true"
timing 10 "" "no-change 10k files: rsync=rsync ${rsync_flags[*]} $work/small/src/ $work/small/dst/" \
  "no-change 10k files: bkc-run=$bin $work/small.json"
timing 5 "rm -rf $work/big/dst" "1 GiB copy: rsync=rsync ${rsync_flags[*]} $work/big/src/ $work/big/dst/" \
  "1 GiB copy: bkc-run=$bin $work/big.json"

echo
echo "# max RSS and CPU (the runner's own when alone; with a sync, RSS is the largest of the"
echo "# runner's and rsync's processes, CPU their sum)"
echo "| case | max RSS | user | sys |"
echo "|---|---|---|---|"
rss "runner alone" "$bin" "$work/empty.json"
rss "no-change 10k files: rsync" rsync "${rsync_flags[@]}" "$work/small/src/" "$work/small/dst/"
rss "no-change 10k files: bkc-run" "$bin" "$work/small.json"
rm -rf "$work/big/dst"
rss "1 GiB copy: rsync" rsync "${rsync_flags[@]}" "$work/big/src/" "$work/big/dst/"
rm -rf "$work/big/dst"
rss "1 GiB copy: bkc-run" "$bin" "$work/big.json"
