# bkc plan: read in one round trip everything needed to find changes and drift: the manifest,
# the hash and mode of every file it lists and of every bkc file present, the state of the bkc
# timers, the runner's hash, the generations kept, the jobs' own keys, and (with SSHD_FILES set)
# what sshd reads as AuthorizedKeysFile. Arguments: the runner paths the units expect.
# Output: one fact per line; a file's content as "F <size> <path>" and exactly that many bytes.
M="$R/etc/bkc/manifest.json"
B="$R/var/lib/bkc"
echo "arch $(uname -m)"
g=$(cat "$B/generations/current" 2>/dev/null) || g=0
echo "gen $g"
for d in "$B"/generations/*; do
    [ -f "$d/manifest.json" ] && echo "kept ${d##*/}"
done
for d in "$B"/staging/*; do
    [ -f "$d/committed" ] && [ ! -f "$d/done" ] && echo "interrupted ${d##*/}"
done
for p in "$@"; do
    if [ -f "$R$p" ]; then
        echo "runner $(sha256sum < "$R$p" | cut -c1-64) $p"
    else
        echo "runner - $p"
    fi
done
if [ -f "$M" ]; then
    echo "F $(wc -c < "$M") /etc/bkc/manifest.json"
    cat "$M"
fi
cd "$R/" || exit 1
# Paths relative to /, so that the output is the same under a stand-in root. bkc's own paths
# hold no blanks or newlines (job names are checked), so one per line is safe.
list=$({
    [ -f "$M" ] && sed -n 's|^    "/\([^"]*\)": {$|\1|p' "$M"
    ls -d etc/systemd/system/bkc-* etc/bkc/jobs/*.json etc/bkc/known_hosts \
        etc/bkc/authorized_keys/* etc/ssh/sshd_config.d/bkc.conf 2>/dev/null
} | sort -u)
set --
set -f
IFS='
'
for f in $list; do
    [ -f "$f" ] && set -- "$@" "$f"
done
IFS=' 	
'
set +f
if [ $# -gt 0 ]; then
    sha256sum -- "$@" | sed 's/^/sha /'
    stat -c 'mode %a %n' -- "$@"
fi
# Whether each bkc timer, path unit and watcher is enabled: one systemctl call, and none on a
# host without them (asking systemd is the slowest step here).
set --
for f in etc/systemd/system/bkc-*.timer etc/systemd/system/bkc-*.path etc/systemd/system/bkc-watch@*.service; do
    [ -f "$f" ] && set -- "$@" "${f##*/}"
done
if [ $# -gt 0 ]; then
    systemctl is-enabled -- "$@" 2>/dev/null | for u in "$@"; do
        IFS= read -r st || st=unknown
        echo "unit $u $st"
    done
fi
# Each job's own key as its private half says it (a .pub beside it could say anything), or
# "-" when ssh-keygen cannot read it (mode, passphrase, damage).
for k in "$R"/etc/bkc/keys/*; do
    j=${k##*/}
    case $j in *.pub | *.new | *[!A-Za-z0-9_.-]* | [!A-Za-z0-9]*) continue ;; esac
    [ -f "$k" ] || continue
    if p=$(ssh-keygen -y -P '' -f "$k" </dev/null 2>/dev/null); then
        printf 'key %s %s\n' "$j" "$p" | head -n 1
    else
        echo "key $j -"
    fi
done
# The files sshd reads authorized keys from, which bkc's drop-in keeps.
if [ -n "${SSHD_FILES:-}" ]; then
    PATH="$PATH:/usr/sbin:/sbin"
    if t=$(sshd -T 2>/dev/null) && f=$(printf '%s\n' "$t" | sed -n 's/^authorizedkeysfile //p') && [ -n "$f" ]; then
        echo "sshd-files $f"
    else
        echo "sshd-files -"
    fi
fi
echo end
