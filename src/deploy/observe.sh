# bkc plan: read in one round trip everything needed to find changes and drift: the manifest,
# the hash and mode of every file it lists and of every bkc file present, the state of the bkc
# timers, the runner's hash, the generations kept. Arguments: the runner paths the units expect.
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
    ls -d etc/systemd/system/bkc-* etc/bkc/jobs/*.json etc/bkc/known_hosts 2>/dev/null
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
# Whether each bkc timer is enabled: one systemctl call, and none on a host without timers
# (asking systemd is the slowest step here).
set --
for f in etc/systemd/system/bkc-*.timer; do
    [ -f "$f" ] && set -- "$@" "${f##*/}"
done
if [ $# -gt 0 ]; then
    systemctl is-enabled -- "$@" 2>/dev/null | for u in "$@"; do
        IFS= read -r st || st=unknown
        echo "unit $u $st"
    done
fi
echo end
