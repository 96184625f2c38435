# bkc apply, the switch: runs detached from the SSH session (setsid, output to a file), so a
# lost link cannot stop it halfway. `activate` moves staged files into place, writes the
# manifest last, reloads systemd and starts the timers; on any failure it restores what was
# there before (`rollback`). `recover`, run by the next apply after a crash, rolls back, or
# finishes the bookkeeping if the switch had completed.
# Set by bkc before this text: S (the staging directory), n (the generation), KEEP, DROPIN (the
# sshd drop-in), PATTERN (bkc's AuthorizedKeysFile entry), and the function `steps`, which does
# the generation's own work through `put`, `drop`, `sshd_check`, `sshd_reload` and `systemctl`.
set -u
B="$R/var/lib/bkc"
trap '' HUP PIPE
say() { printf '%s\n' "$*"; }
# put NAME PATH MODE: install $S/NAME at PATH by rename (never written in place, so a running
# bkc-run keeps its old binary and a reader never sees half a file).
put() {
    d="$R$2"
    mkdir -p "${d%/*}" && cp "$S/$1" "$d.bkc-new" && chmod "$3" "$d.bkc-new" && mv -f "$d.bkc-new" "$d"
}
# drop PATH [SERVICE...]: remove PATH, unless one of SERVICES is running a backup right now (a
# file every job may read, such as known_hosts, names them all); then it stays until the next
# apply: the manifest no longer owns it, so the next plan removes it. `running` comes from bkc
# (deploy::running_sh), the one definition of a running unit.
drop() {
    p=$1
    shift
    for u in "$@"; do
        if running "$u"; then
            say "kept $u $p"
            return 0
        fi
    done
    rm -f "$R$p"
}
# services: every bkc service unit on the host, for a file that any of their runs may read.
services() {
    for f in "$R"/etc/systemd/system/bkc-*.service; do
        [ -f "$f" ] && printf '%s\n' "${f##*/}"
    done
}
# sshd_check WANTED: after the drop-in changed, sshd must accept its whole configuration
# (`sshd -t`, before anything reloads it), and with WANTED=1 read bkc's authorized keys:
# otherwise the switch fails and rolls back, and sshd goes on with what it had.
sshd_check() {
    PATH="$PATH:/usr/sbin:/sbin"
    touch "$S/sshd" || return 1
    if ! out=$(sshd -t 2>&1); then
        say "sshd -t refuses the configuration with the new $DROPIN: $out"
        return 1
    fi
    [ "$1" = 1 ] || return 0
    # -T prints what sshd would use; an earlier file or a missing Include wins over the drop-in.
    if ! sshd -T 2>/dev/null | grep -qi "^authorizedkeysfile .*$PATTERN"; then
        say "sshd does not read $PATTERN with $DROPIN in place: another file sets AuthorizedKeysFile before it, or sshd_config does not Include sshd_config.d/*.conf"
        return 1
    fi
}
# sshd_reload: tell a running sshd to read its configuration again (existing sessions stay).
# One started per connection (socket activation) reads it anyway.
sshd_reload() {
    for u in ssh.service sshd.service; do
        if systemctl is-active --quiet "$u"; then
            systemctl reload "$u"
            return
        fi
    done
}
rollback() {
    say "rolling back"
    while read -r t e a; do
        [ "$e" = enabled ] || systemctl disable --now "$t" >/dev/null 2>&1
    done <"$S/prev.timers"
    while read -r had p; do
        if [ "$had" = 1 ]; then
            mkdir -p "$R${p%/*}" && cp -p "$S/prev$p" "$R$p.bkc-new" && mv -f "$R$p.bkc-new" "$R$p"
        else
            rm -f "$R$p"
        fi
    done <"$S/prev.list"
    systemctl daemon-reload
    # sshd may have read the new drop-in already: it reads the old one again.
    if [ -f "$S/sshd" ] && PATH="$PATH:/usr/sbin:/sbin" sshd -t >/dev/null 2>&1; then
        sshd_reload
    fi
    while read -r t e a; do
        [ "$e" = enabled ] && systemctl enable "$t" >/dev/null 2>&1
        [ "$a" = active ] && systemctl start "$t"
    done <"$S/prev.timers"
    touch "$S/done"
    say "rolled back"
}
# The generation is live: keep its files for rollback, point `current` at it, prune.
finish() {
    mkdir -p "$B/generations/$n" || return 1
    if [ -d "$S/files" ]; then
        rm -rf "$B/generations/$n/files" && mv "$S/files" "$B/generations/$n/files" || return 1
    fi
    cp "$R/etc/bkc/manifest.json" "$B/generations/$n/manifest.json" || return 1
    echo "$n" >"$B/generations/current.new" && mv -f "$B/generations/current.new" "$B/generations/current" || return 1
    ls "$B/generations" | grep -E '^[0-9]+$' | sort -n | head -n "-$KEEP" | while read -r old; do
        rm -rf "${B:?}/generations/$old"
    done
    touch "$S/done"
}
case ${1:-} in
activate)
    touch "$S/committed" || exit 1
    if steps; then
        touch "$S/switched"
        finish || say "warning: generation $n is live but could not be recorded under $B/generations"
        say "activated $n"
        exit 0
    fi
    rollback
    exit 1
    ;;
recover)
    if [ -f "$S/switched" ]; then
        finish
    else
        rollback
    fi
    ;;
esac
