# bkc apply, on the host: stage a new generation, then switch to it only when bkc says
# "commit". Before the commit nothing outside $B/staging changes, so a lost link leaves the host
# as it was. The switch itself runs detached (activate.sh under setsid, its own session, output
# to a file): once started it finishes, or rolls back, whatever happens to the link.
# Set by bkc before this text: EXPECT (the manifest's sha256, or -), ACT (activate.sh's text).
set -u
umask 022
B="$R/var/lib/bkc"
say() { printf '%s\n' "$*"; }
die() { say "error $*"; exit 1; }
mkdir -p "$B/staging" "$B/generations" || die "cannot create $B/staging"
chmod 0700 "$B/staging" "$B/generations" || die "cannot protect $B/staging"
# One apply at a time. The detached activation inherits this descriptor, so the lock stays
# held until it ends, even if this script is gone.
exec 9>>"$B/deploy.lock" || die "cannot open $B/deploy.lock"
if ! flock -n 9; then
    say "progress waiting for another bkc apply on this host to finish"
    flock -w 120 9 || die "another bkc apply held $B/deploy.lock for 2 minutes"
fi
# Leftovers: a staging directory that never committed is dropped; an activation that started
# and died (a reboot, a kill) is rolled back, or finished if it had already switched.
# Only what an apply made is run: a directory and activate.sh owned by this user and writable
# by no one else (no job's sandbox can write here, and this makes sure of it).
ours() { [ -O "$1" ] && [ ! -L "$1" ] && case $(stat -c %a "$1") in *[2367]? | *[2367]) false ;; *) true ;; esac; }
for d in "$B"/staging/*; do
    [ -d "$d" ] || continue
    if ! ours "$d" || { [ -e "$d/activate.sh" ] && ! ours "$d/activate.sh"; }; then
        say "progress removing $d, which no bkc apply made (owner or mode); nothing in it was run"
    elif [ -f "$d/committed" ] && [ ! -f "$d/done" ]; then
        say "progress finishing the interrupted activation of ${d##*/}"
        sh "$d/activate.sh" recover >>"$B/activate.log" 2>&1 ||
            die "could not recover the interrupted activation in $d; see $B/activate.log"
    fi
    rm -rf "$d"
done
cur=-
[ -f "$R/etc/bkc/manifest.json" ] && cur=$(sha256sum < "$R/etc/bkc/manifest.json" | cut -c1-64)
[ "$cur" = "$EXPECT" ] || die "stale: the host's manifest changed since it was read; plan again"
g=$(cat "$B/generations/current" 2>/dev/null) || g=0
case $g in '' | *[!0-9]*) g=0 ;; esac
n=$((g + 1))
while [ -e "$B/generations/$n" ]; do n=$((n + 1)); done
S="$B/staging/$n"
mkdir -m 0700 "$S" && mkdir -p "$S/files" "$S/prev" || die "cannot create $S"
# The runner's state files moved from $B to $B/state (out of apply's way; see the sandbox): a
# host upgraded from before keeps each job's last run.
for f in "$B"/*.json; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    mkdir -p "$B/state" && [ ! -e "$B/state/${f##*/}" ] && mv "$f" "$B/state/"
done
# Until the commit, a lost session takes its staging directory with it (the next apply would
# drop it anyway).
trap 'rm -rf "$S"; exit 1' HUP PIPE TERM
say "progress staging generation $n"
# recv SIZE SHA256 MODE NAME: exactly SIZE bytes of stdin into $S/NAME, checked.
recv() {
    t="$S/$4"
    mkdir -p "${t%/*}" || return 1
    dd of="$t" bs=65536 iflag=fullblock,count_bytes count="$1" status=none || return 1
    [ "$(sha256sum < "$t" | cut -c1-64)" = "$2" ] || {
        say "error $4 arrived damaged (its sha256 differs)"
        return 1
    }
    chmod "$3" "$t"
}
# keep PATH: remember PATH as it is now (or that it is absent), for a rollback.
keep() {
    if [ -e "$R$1" ]; then
        mkdir -p "$S/prev${1%/*}" && cp -p "$R$1" "$S/prev$1" && echo "1 $1" >>"$S/prev.list"
    else
        echo "0 $1" >>"$S/prev.list"
    fi
}
# timer NAME: remember whether a unit a deploy starts (a timer, path unit or watcher) is enabled
# and active now.
timer() {
    e=$(systemctl is-enabled "$1" 2>/dev/null) || :
    a=$(systemctl is-active "$1" 2>/dev/null) || :
    echo "$1 ${e:-absent} ${a:-inactive}" >>"$S/prev.timers"
}
: >"$S/prev.list"
: >"$S/prev.timers"
