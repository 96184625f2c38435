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
  (cd "$root" && cargo build --release -p bkc-runner --bin bkc-run)
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

# Over SSH: an sshd of our own on loopback (127.0.0.1 only), root's login with a fresh key,
# and specs whose destination is that "host". Skipped without sshd or root.
ssh_ok=false
if [ "$(id -u)" = 0 ] && [ -x /usr/sbin/sshd ]; then
  port=$((20000 + RANDOM % 20000))
  ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
  ssh-keygen -q -t ed25519 -N '' -f "$work/id"
  cp "$work/id.pub" "$work/authorized_keys"
  echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$work/hostkey.pub")" > "$work/known_hosts"
  cat > "$work/sshd_config" <<CFG
ListenAddress 127.0.0.1:$port
HostKey $work/hostkey
PidFile none
UsePAM no
PasswordAuthentication no
PermitRootLogin prohibit-password
AuthorizedKeysFile $work/authorized_keys
StrictModes no
CFG
  mkdir -p /run/sshd
  /usr/sbin/sshd -D -f "$work/sshd_config" -E "$work/sshd.log" &
  sshd_pid=$!
  trap 'kill $sshd_pid 2>/dev/null; rm -rf "$work"' EXIT
  sleep 0.5
  remote_spec() { # name, src, dst
    sed -e 's|"known-hosts":"/dev/null","identity":null,"hosts":{}|"known-hosts":"'"$work"'/known_hosts","identity":"'"$work"'/id","hosts":{"peer":{"address":"127.0.0.1","port":'"$port"',"user":"root"}}|' \
      "$work/$1.json" > "$work/$1-ssh.json"
    sed -i 's|"dest":{"host":"bench","path":"[^"]*"}|"dest":{"host":"peer","path":"'"$3"'"}|' "$work/$1-ssh.json"
  }
  remote_spec small "$work/small/src/" "$work/small/dst-ssh/"
  remote_spec big "$work/big/src/" "$work/big/dst-ssh/"
  rsync -a "$work/small/src/" "$work/small/dst-ssh/"
  ssh_e="ssh -i $work/id -o UserKnownHostsFile=$work/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes -p $port"
  ssh_ok=true
fi

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
if $ssh_ok; then
  timing 10 "" "over SSH, no-change 10k files: rsync=rsync ${rsync_flags[*]} -e '$ssh_e' $work/small/src/ root@127.0.0.1:$work/small/dst-ssh/" \
    "over SSH, no-change 10k files: bkc-run=$bin $work/small-ssh.json"
  timing 3 "rm -rf $work/big/dst-ssh" "over SSH, 1 GiB copy: rsync=rsync ${rsync_flags[*]} -e '$ssh_e' $work/big/src/ root@127.0.0.1:$work/big/dst-ssh/" \
    "over SSH, 1 GiB copy: bkc-run=$bin $work/big-ssh.json"
else
  echo "(over SSH skipped: needs root and /usr/sbin/sshd)"
fi

# A freed local lock must wake a waiting runner at once, not at its next re-check. Another
# process holds the job's lock; the runner waits; the holder notes the time and exits (the
# kernel frees the lock); the runner, with nothing else to do, exits. From the release to the
# runner's exit, less the runner's own run time measured above, is the wake-up.
echo
echo "# wake-up of a waiting runner when a local lock is freed (10 tries)"
echo "| try | release to runner exit [ms] |"
echo "|---|---|"
mkdir -p "$work/locks"
wakes=()
for i in $(seq 10); do
  flock -x "$work/locks/empty.lock" -c "sleep 0.3; date +%s%N > $work/released" &
  holder=$!
  sleep 0.1
  "$bin" "$work/empty.json" > /dev/null 2>&1
  end=$(date +%s%N)
  # Only the holder: a bare `wait` would also wait for the sshd above, which never ends.
  wait "$holder"
  ms=$(awk -v r="$(cat "$work/released")" -v e="$end" 'BEGIN { printf "%.1f", (e - r) / 1e6 }')
  wakes+=("$ms")
  echo "| $i | $ms |"
done
printf '%s\n' "${wakes[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "| median | %.1f |\n", (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2 }'

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
