# bkc apply, first, on a host whose jobs have keys of their own (ssh-keys "restricted"): make
# each job's key where it is missing, with ssh-keygen here, so that the private half never
# leaves this host, and print the public half for the authorized keys of the hosts the job
# reaches. A key that is there is never replaced.
# Set by bkc before this text: H (the host's name in the topology). Arguments: the jobs.
set -u
K="$R/etc/bkc/keys"
B="$R/var/lib/bkc"
say() { printf '%s\n' "$*"; }
die() { say "error $*"; exit 1; }
mkdir -p "$B" || die "cannot create $B"
umask 077
mkdir -p "$K" && chmod 0700 "$K" || die "cannot create $K"
# Not while an apply switches this host.
exec 9>>"$B/deploy.lock" || die "cannot open $B/deploy.lock"
flock -w 120 9 || die "another bkc apply held $B/deploy.lock for 2 minutes"
for j in "$@"; do
    if [ ! -e "$K/$j" ]; then
        rm -f "$K/$j.new" "$K/$j.new.pub"
        ssh-keygen -q -t ed25519 -N '' -C "bkc:$j@$H" -f "$K/$j.new" </dev/null >/dev/null ||
            die "ssh-keygen could not make $K/$j"
        mv -f "$K/$j.new.pub" "$K/$j.pub" && mv -f "$K/$j.new" "$K/$j" || die "cannot put $K/$j in place"
        say "made $j"
    fi
    p=$(ssh-keygen -y -P '' -f "$K/$j" </dev/null 2>/dev/null) || die "$K/$j cannot be read by ssh-keygen"
    say "key $j $p"
done
say end
