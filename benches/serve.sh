#!/usr/bin/env bash
# What `bkc-run serve` costs: the seed chain's no-change runs with every remote step through serve,
# against the same runs with the remote shell scripts the runner used before serve; and how fast
# a remote lock is handed to a runner waiting for it, both ways.
#
#   benches/serve.sh [old-commit]     (default 590ff86, the last commit before serve)
#
# The old runner is built from `git archive <old-commit>` into target/bench-old/ (once). Both talk
# to one sshd of this script's own on 127.0.0.1, in a private mount namespace whose /etc is an
# overlay holding the serve files, with root's login by a fresh key (no forced command, so the
# shell path and serve get the same login; docs/SECURITY.md covers the forced command). Needs
# root, /usr/sbin/sshd, GNU time and python3.
#
# Cases, 10,000 small files, nothing changed since the last run:
#   desktop-to-a: its own lock here, its own and a-to-b's (shared) on the peer in one session,
#                 a deleting push;
#   a-to-b:       the same locks, a push into a new hardlinked snapshot (list, rsync with
#                 --link-dest, complete, prune by keep-last 2), so each run makes a snapshot.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
old_commit=${1:-590ff86}
if [ "$(id -u)" != 0 ] || [ ! -x /usr/sbin/sshd ] || [ ! -x /usr/bin/time ]; then
  echo "benches/serve.sh needs root, /usr/sbin/sshd and GNU time (/usr/bin/time)" >&2
  exit 1
fi
(cd "$root" && cargo build --quiet --release -p bkc-runner --bin bkc-run)
new=$root/target/release/bkc-run
old_dir=$root/target/bench-old/$old_commit
old=$old_dir/target/release/bkc-run
if [ ! -x "$old" ]; then
  rm -rf "$old_dir/src"
  mkdir -p "$old_dir/src"
  git -C "$root" archive "$old_commit" | tar -x -C "$old_dir/src"
  (cd "$old_dir/src" && cargo build --quiet --release --offline -p bkc-runner --bin bkc-run \
    --target-dir "$old_dir/target")
fi

work=$(mktemp -d /tmp/bkc-serve-bench.XXXXXX)
sshd_pid=
cleanup() {
  [ -n "$sshd_pid" ] && kill "$sshd_pid" 2> /dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "# trees"
mkdir -p "$work/src" "$work/locks" "$work/rlocks"
for d in $(seq 0 99); do
  mkdir -p "$work/src/d$d"
  for f in $(seq 0 99); do echo "file $d/$f" > "$work/src/d$d/f$f"; done
done
for side in old new; do rsync -a "$work/src/" "$work/d2a-$side/"; done

port=$((20000 + RANDOM % 20000))
ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$work/id"
cp "$work/id.pub" "$work/authorized_keys"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$work/hostkey.pub")" > "$work/known_hosts"
cat > "$work/sshd_config" << CFG
ListenAddress 127.0.0.1:$port
HostKey $work/hostkey
PidFile none
UsePAM no
PasswordAuthentication no
PermitRootLogin prohibit-password
AuthorizedKeysFile $work/authorized_keys
StrictModes no
MaxStartups 100
CFG

# One spec per runner and shape. The old spec format has no `runner` per host and a bare
# retention as `snapshot`.
spec() { # file, job, runner-field, snapshot-or-null, dest
  local ep='"address":"127.0.0.1","port":'$port',"user":"root"'
  cat > "$work/$1.json" << JSON
{"version":1,"job":"$2","host":"here","state-dir":"$work/state","metrics-dir":null,
 "known-hosts":"$work/known_hosts","identity":"$work/id","hosts":{"peer":{$ep$3}},
 "every":null,"timeout-secs":null,"nice":null,"io-class":null,"retries":0,"retry-delay-secs":1,
 "locks":[{"host":"here","path":"$work/locks/$2.lock","mode":"exclusive","owner":"$2","wait-secs":1,"timeout-secs":60},
          {"host":"peer","path":"$work/rlocks/$2-other.lock","mode":"shared","owner":"other","wait-secs":1,"timeout-secs":60},
          {"host":"peer","path":"$work/rlocks/$2.lock","mode":"exclusive","owner":"$2","wait-secs":1,"timeout-secs":60}],
 "lock-files":[],"wait-files":[],"hooks":[],
 "syncs":[{"source":{"host":"here","path":"$work/src/"},"dest":{"host":"peer","path":"$5"},
   "opts":["-a","--delete"],"exclude":[],"bwlimit":null,"deletes":true,"allow-empty-source":false,
   "snapshot":$4}]}
JSON
}
keep='{"keep-last":2,"keep-daily":null,"keep-weekly":null,"keep-monthly":null}'
with_runner=',"runner":"'$new'"'
spec d2a-old d2a-old "" null "$work/d2a-old/"
spec d2a-new d2a-new "$with_runner" null "$work/d2a-new/"
spec a2b-old a2b-old "" "$keep" "$work/a2b-old/"
spec a2b-new a2b-new "$with_runner" '{"retention":'"$keep"',"append-only":false}' "$work/a2b-new/"
# The remote lock alone, for the hand-off.
cat > "$work/lk.json" << JSON
{"version":1,"job":"JOB","host":"here","state-dir":"$work/state","metrics-dir":null,
 "known-hosts":"$work/known_hosts","identity":"$work/id","hosts":{"peer":{EP}},
 "every":null,"timeout-secs":null,"nice":null,"io-class":null,"retries":0,"retry-delay-secs":1,
 "locks":[{"host":"peer","path":"$work/rlocks/lk.lock","mode":"exclusive","owner":"lk","wait-secs":1,"timeout-secs":60}],
 "lock-files":[],"wait-files":[],"hooks":[],"syncs":[]}
JSON
ep='"address":"127.0.0.1","port":'$port',"user":"root"'
sed -e "s|JOB|lk-old|; s|EP|$ep|" "$work/lk.json" > "$work/lk-old.json"
sed -e "s|JOB|lk-new|; s|EP|$ep$with_runner|" "$work/lk.json" > "$work/lk-new.json"

# The serve files bkc would emit on the peer, in its own /etc.
mkdir -p "$work/etc-up/bkc/serve" "$work/etc-work"
serve_file() { # job, write, snapshots, locks
  echo '{"version":1,"job":"'"$1"'","host":"peer","from":"here","read":[],"write":'"$2"',"snapshots":'"$3"',"locks":'"$4"',"lock-files":[],"wait-files":[],"hooks":[]}' \
    > "$work/etc-up/bkc/serve/$1.json"
}
locks_of() {
  echo '[{"path":"'"$work/rlocks/$1-other.lock"'","mode":"shared"},{"path":"'"$work/rlocks/$1.lock"'","mode":"exclusive"}]'
}
serve_file d2a-new '[{"path":"'"$work/d2a-new/"'","delete":true}]' '[]' "$(locks_of d2a-new)"
serve_file a2b-new '[]' '[{"path":"'"$work/a2b-new/"'","retention":'"$keep"',"append-only":false}]' "$(locks_of a2b-new)"
serve_file lk-new '[]' '[]' '[{"path":"'"$work/rlocks/lk.lock"'","mode":"exclusive"}]'

mkdir -p /run/sshd
unshare --mount --propagation private sh -c \
  "mount -t overlay overlay -o lowerdir=/etc,upperdir=$work/etc-up,workdir=$work/etc-work /etc && exec /usr/sbin/sshd -D -f $work/sshd_config -E $work/sshd.log" &
sshd_pid=$!
for _ in $(seq 100); do grep -q "Server listening" "$work/sshd.log" 2> /dev/null && break; sleep 0.05; done

# One run of each first: the destinations then hold everything, and both paths work.
for s in d2a-old d2a-new a2b-old a2b-new; do
  r=old
  case $s in *new) r=new ;; esac
  if ! "${!r}" "$work/$s.json" > "$work/first-$s.out" 2> "$work/first-$s.err"; then
    echo "the first run of $s failed:" >&2
    cat "$work/first-$s.err" >&2
    exit 1
  fi
  sleep 1.1
done

# Old and new alternate run by run (the order flipping each round), so that whatever else the
# machine does weighs on both alike; each run's wall time from the clock, its CPU from GNU time.
# Printed: mean, min and median wall time, mean CPU, and the ratio serve / shell of each.
compare() { # runs, pause, name, old-spec, new-spec
  local runs=$1 pause=$2 name=$3
  : > "$work/times"
  for i in $(seq "$runs"); do
    local order="old new"
    [ $((i % 2)) = 0 ] && order="new old"
    for side in $order; do
      local bin=$old spec=$4
      [ "$side" = new ] && bin=$new spec=$5
      sleep "$pause"
      local t0 t1
      t0=$(date +%s%N)
      /usr/bin/time -f "%U %S" -o "$work/cpu" "$bin" "$work/$spec.json" > /dev/null 2>&1 ||
        { echo "$name: a $side run failed" >&2; exit 1; }
      t1=$(date +%s%N)
      echo "$side $(((t1 - t0) / 1000)) $(cat "$work/cpu")" >> "$work/times"
    done
  done
  python3 - "$work/times" "$name" << 'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
stat = {}
for side in ("old", "new"):
    wall = [int(r[1]) / 1000 for r in rows if r[0] == side]
    cpu = [(float(r[2]) + float(r[3])) * 1000 for r in rows if r[0] == side]
    stat[side] = (statistics.mean(wall), statistics.stdev(wall), min(wall), statistics.median(wall),
                  statistics.mean(cpu))
    label = "shell" if side == "old" else "serve"
    print("| %s: %s | %.1f ± %.1f | %.1f | %.1f | %.1f |" % ((sys.argv[2], label) + stat[side]))
o, n = stat["old"], stat["new"]
print("| %s: serve / shell | %.3f | %.3f | %.3f | %.3f |" % (sys.argv[2], n[0] / o[0], n[2] / o[2],
      n[3] / o[3], n[4] / o[4]))
PY
}

echo
echo "# no-change runs, shell scripts (old) against serve (new), alternating"
echo "| case | wall mean ± σ [ms] | wall min [ms] | wall median [ms] | CPU user+sys mean [ms] |"
echo "|---|---|---|---|---|"
compare 20 0 "desktop-to-a" d2a-old d2a-new
# Snapshot names have a resolution of one second: a pause before each run, not timed.
compare 10 1.1 "a-to-b (snapshot)" a2b-old a2b-new

# The hand-off: another process holds the remote lock file; the runner waits for it through
# its session; the holder notes the time and exits. From the release to the runner's `locked`
# event (read as it comes) is the hand-off.
echo
echo "# remote lock hand-off, 15 tries each"
echo "| runner | hand-off min [ms] | median [ms] | max [ms] |"
echo "|---|---|---|---|"
for side in old new; do
  bin=$old
  [ "$side" = new ] && bin=$new
  rm -f "$work/handoff"
  for _ in $(seq 15); do
    flock -x "$work/rlocks/lk.lock" -c "sleep 0.5; date +%s%N > $work/released" &
    holder=$!
    sleep 0.1
    "$bin" "$work/lk-$side.json" 2> /dev/null | while read -r line; do
      case $line in *'"event":"locked"'*) date +%s%N > "$work/got" ;; esac
    done
    wait "$holder"
    echo $((($(cat "$work/got") - $(cat "$work/released")) / 1000)) >> "$work/handoff"
  done
  sort -n "$work/handoff" | awk -v s="$side" '{ v[NR] = $1 / 1000 } END {
    printf "| %s | %.1f | %.1f | %.1f |\n", (s == "new" ? "serve" : "shell"), v[1],
      (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2, v[NR] }'
done
