#!/usr/bin/env python3
"""Write the hostile corpus: topologies (*.kdl) and job specs (*.json) whose names, paths,
addresses and other values are what an attacker, a typo or an odd file system would give bkc.

    tests/hostile/generate.py        (rewrites tests/hostile/cases/; run from anywhere)

tests/hostile.rs reads every file in cases/: each is refused with a diagnostic that names a line,
or built, verified and run on namespace hosts with a canary (see that file). Payloads that would
run a command if a value ever reached a shell touch a file whose name holds CANARY; the test
looks for such files afterwards.

In a topology, `@alpha@` and `@beta@` stand for the two hosts' addresses: the test puts the
namespace hosts' own addresses there (an IPv6 one where the case writes `[@alpha6@]`). In a
spec, `@...@` placeholders name the test's known_hosts, key and host addresses.
"""
import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "cases")
CANARY = "BKCPWN"

# Values that must never become code, options, other files or other lines.
PAYLOADS = [
    ("dquote", 'we"ird'),
    ("squote", "it's"),
    ("subst", f"$(touch /tmp/{CANARY}-subst)"),
    ("backtick", f"`touch /tmp/{CANARY}-tick`"),
    ("semicolon", f"a;touch /tmp/{CANARY}-semi"),
    ("pipe", f"a|touch /tmp/{CANARY}-pipe"),
    ("amp", f"a&&touch /tmp/{CANARY}-amp"),
    ("redirect", f"a>/tmp/{CANARY}-redir"),
    ("relative", f"$(touch {CANARY}-rel)"),
    ("newline", f"a\ntouch /tmp/{CANARY}-nl"),
    ("cr", "a\rb"),
    ("tab", "a\tb"),
    ("percent", "100%h%n%%"),
    ("sshtoken", "%C%d%u%r"),
    ("dash", "-rf"),
    ("option", f"--rsh=touch /tmp/{CANARY}-rsh"),
    ("dotdot", ".."),
    ("unicode", "ünïcødé-日本-🗄"),
    ("bidi", "abc\u202efdp"),
    ("escape", "a\x1b]52;c;aGk=\x07b"),
    ("space", "two  words"),
    ("glob", "*?[a]"),
    ("backslash", "a\\b"),
    ("hash", "#not-a-comment"),
    ("tilde", "~root"),
    ("dollar", "$HOME${PATH}"),
    ("nix", '${builtins.abort "x"}'),
    ("nixindent", "''${x}''"),
    ("colon", "x:y"),
    ("equals", "a=b"),
    ("long", "L" * 200 + "/" + "o" * 200 + "/" + "n" * 200),
]

# Payloads that are fine inside a file name on Linux (no NUL, no slash-only trickery): the ones a
# path slot may accept and the run then has to handle.
def kdl_str(s):
    """A KDL v2 quoted string holding exactly `s`."""
    out = ['"']
    for c in s:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20 or ord(c) == 0x7F or 0x80 <= ord(c) < 0xA0 or c in "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff":
            out.append("\\u{%x}" % ord(c))
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


DEFAULTS = """defaults {
    lock-dir "/srv/bkc/locks"
    state-dir "/srv/bkc/state"
    metrics-dir "/srv/bkc/metrics"
}
"""
HOSTS = """host "alpha" address="@alpha@"
host "beta" address="@beta@"
"""

cases = {}


def topo(name, body, defaults=DEFAULTS, hosts=HOSTS):
    cases[f"{name}.kdl"] = f"// {name}\n{defaults}{hosts}{body}"


def job(case, lines, on="alpha"):
    inner = "".join(f"    {l}\n" for l in lines)
    return f'job "{case}" on="{on}" {{\n{inner}}}\n'


# 1. Names: hosts, jobs, tags become unit names, file names and lock files.
for key, p in PAYLOADS:
    topo(f"job-name-{key}", job("x", []).replace('job "x"', f"job {kdl_str(p)}", 1)
         + job(f"jn-{key}", [f'sync "/srv/{key}/src/" "beta:/srv/{key}/dst/"']))
for key in ["subst", "dash", "dotdot", "unicode", "space", "newline", "long", "option", "percent"]:
    p = dict(PAYLOADS)[key]
    topo(f"host-name-{key}", job(f"hn-{key}", [f'sync "/srv/hn/src/" "beta:/srv/hn/dst/"']),
         hosts=HOSTS + f'host {kdl_str(p)} address="h.example"\n')
    topo(f"tag-{key}", job(f"tg-{key}", [f'sync "/srv/tg/src/" "beta:/srv/tg/dst/"']),
         hosts=HOSTS.replace('address="@beta@"', f'address="@beta@" {{\n    tag {kdl_str(p)}\n}}'))
topo("job-name-300-chars", job("j" * 300, ['sync "/srv/long/src/" "beta:/srv/long/dst/"']))

# 2. Addresses and users: they reach ssh's command line and ssh_config's token expansion.
ADDRESSES = [
    ("option", f"-oProxyCommand=touch /tmp/{CANARY}-proxy"),
    ("dash", "-v"),
    ("token", "%h"),
    ("tokens", "%C.example"),
    ("user-at", "root@evil.example"),
    ("port-suffix", "10.0.0.1:2222"),
    ("space", "a b.example"),
    ("slash", "tmp/x"),
    ("subst", f"$(touch /tmp/{CANARY}-addr)"),
    ("semicolon", f"a;touch /tmp/{CANARY}-addr2"),
    ("newline", "a.example\nProxyCommand x"),
    ("v6-bare", "fd00::1"),
    ("v6-open", "[fd00::1"),
    ("v6-zone", "[fe80::1%eth0]"),
    ("v6-junk", "[fd00::1]x"),
    ("empty", ""),
    ("dot", "."),
    ("unicode", "bäckup.example"),
    ("long-label", "a" * 64 + ".example"),
    ("long-name", ".".join(["abcdefghi"] * 30)),
    ("ssh-config-word", "Host"),
    ("star", "*"),
    ("bang", "!a.example"),
]
for key, a in ADDRESSES:
    topo(f"address-{key}", job(f"ad-{key.replace('_', '-')}", ['sync "/srv/ad/src/" "beta:/srv/ad/dst/"']),
         hosts=HOSTS.replace('address="@beta@"', f"address={kdl_str(a)}"))
USERS = [
    ("option", f"-oProxyCommand=touch /tmp/{CANARY}-user"),
    ("at", "root@evil"),
    ("space", "a b"),
    ("subst", f"$(touch /tmp/{CANARY}-user2)"),
    ("token", "%u"),
    ("colon", "a:b"),
    ("newline", "a\nb"),
    ("unicode", "ünï"),
]
for key, u in USERS:
    topo(f"user-{key}", job(f"us-{key}", ['sync "/srv/us/src/" "beta:/srv/us/dst/"']),
         hosts=HOSTS.replace('address="@beta@"', f'address="@beta@" user={kdl_str(u)}'))
for port in ["0", "65536", "-22", '"22"', "22.5"]:
    topo(f"port-{port.strip(chr(34)).replace('.', '_')}", job("po", ['sync "/srv/po/src/" "beta:/srv/po/dst/"']),
         hosts=HOSTS.replace('address="@beta@"', f'address="@beta@" port={port}'))
# Written as a bracketed IPv6 address, run over IPv6 for real.
topo("address-v6", job("v6", ['sync "/srv/v6/src/" "beta:/srv/v6/dst/"']),
     hosts=HOSTS.replace('address="@beta@"', 'address="[@beta6@]"'))
topo("address-v6-pull", job("v6pull", ['sync "alpha:/srv/v6p/src/" "/srv/v6p/dst/"'], on="beta"),
     hosts=HOSTS.replace('address="@alpha@"', 'address="[@alpha6@]"'))

# 3. Host keys and schedules: each lands on its own line of known_hosts or a unit.
for key, hk in [
    ("newline", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\n@cert-authority * ssh-ed25519 AAAA"),
    ("marker", "@revoked ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA"),
    ("comment", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA # x"),
    ("option", "-oProxyCommand=x"),
]:
    topo(f"host-key-{key}", job(f"hk-{key}", ['sync "/srv/hk/src/" "beta:/srv/hk/dst/"']),
         hosts=HOSTS.replace('address="@beta@"', f'address="@beta@" {{\n    host-key {kdl_str(hk)}\n}}'))
for key, s in [
    ("newline", "daily\nExecStartPre=/bin/touch /tmp/" + CANARY + "-unit"),
    ("semicolon", "daily; touch"),
    ("percent", "%h"),
    ("subst", "$(date)"),
]:
    topo(f"schedule-{key}", job(f"sc-{key}", [f"schedule {kdl_str(s)}", 'sync "/srv/sc/src/" "beta:/srv/sc/dst/"']))
topo("cron-injection", job("cr", ['cron "0 3 * * * touch /tmp/BKCPWN-cron"', 'sync "/srv/cr/src/" "beta:/srv/cr/dst/"']))

# 4. Free text that reaches unit files and the NixOS module.
for key in ["percent", "dollar", "nix", "nixindent", "backslash", "newline", "cr", "escape", "bidi", "unicode", "dquote", "squote", "long"]:
    p = dict(PAYLOADS)[key]
    topo(f"description-{key}", job(f"de-{key}", [f"description {kdl_str(p)}", f'sync "/srv/de-{key}/src/" "beta:/srv/de-{key}/dst/"']))
topo("description-trailing-backslash", job("de-bs", ['description "ends in \\\\"', 'sync "/srv/debs/src/" "beta:/srv/debs/dst/"']))
topo("description-unit-line", job("de-ul", ['description "x\\nExecStartPre=/bin/touch /tmp/BKCPWN-desc"', 'sync "/srv/deul/src/" "beta:/srv/deul/dst/"']))

# 5. Paths: every slot that names a file on a host, with each payload. The run must touch only
# these paths. One case per payload puts it into every path slot at once.
for key, p in PAYLOADS:
    d = f"/srv/p-{key}/{p}"
    topo(f"paths-{key}", job(f"pa-{key}", [
        f"sync {kdl_str(d + '/src/')} {kdl_str('beta:' + d + '/dst/')} {{",
        '    opts "-a" "--delete"',
        f"    exclude {kdl_str(p)}",
        "}",
        f"lock-file {kdl_str(d + '/lock')} host=\"beta\"",
        f"blocks-on-file {kdl_str(d + '/wait')} wait=1 timeout=\"5s\"",
        f'hook "before" "touch" {kdl_str(d + "/hook")} host="beta"',
        f'hook "after" "printf" "%s\\n" {kdl_str(p)}',
    ]))
# The same with snapshots on the far side, and pulled instead of pushed.
for key in ["dquote", "subst", "space", "unicode", "percent", "dash", "backslash", "glob"]:
    p = dict(PAYLOADS)[key]
    d = f"/srv/s-{key}/{p}"
    topo(f"snapshot-{key}", job(f"sn-{key}", [
        f"sync {kdl_str(d + '/src/')} {kdl_str('beta:' + d + '/dst')} {{",
        "    snapshot keep-last=2",
        "}",
    ]))
    topo(f"pull-{key}", job(f"pl-{key}", [
        f"sync {kdl_str('alpha:' + d + '/src/')} {kdl_str(d + '/pulled/')}",
    ], on="beta"))
# The runner's own directories.
for key in ["dquote", "subst", "space", "unicode", "percent", "dotdot", "newline", "dash"]:
    p = dict(PAYLOADS)[key]
    topo(f"dirs-{key}", job(f"di-{key}", ['sync "/srv/di/src/" "beta:/srv/di/dst/"']),
         defaults=f"defaults {{\n    lock-dir {kdl_str('/srv/bkc/' + p + '/locks')}\n"
                  f"    state-dir {kdl_str('/srv/bkc/' + p + '/state')}\n"
                  f"    metrics-dir {kdl_str('/srv/bkc/' + p + '/metrics')}\n}}\n")
# Options that would hand rsync a shell, and writable paths that cover the system.
for key, o in [("rsh", "--rsh=sh -c 'touch /tmp/BKCPWN-o'"), ("e", "-e"), ("dry", "-n"),
               ("joined", "-a;touch /tmp/BKCPWN-o2"), ("exclude", "--exclude=*"),
               ("bwlimit", "--bwlimit=1"), ("newline", "-a\n-e")]:
    topo(f"opts-{key}", job(f"op-{key}", [f'sync "/srv/op/src/" "beta:/srv/op/dst/" {{', f"    opts {kdl_str(o)}", "}"]))
for key, lf in [("root", "/j.lock"), ("etc", "/etc/bkc.lock"), ("relative", "j.lock"),
                ("dotdot", "/srv/../etc/x.lock"), ("trailing", "/srv/lk/"), ("double", "//etc/x")]:
    topo(f"lock-file-{key}", job(f"lf-{key}", [f"lock-file {kdl_str(lf)}", 'sync "/srv/lf/src/" "beta:/srv/lf/dst/"']))
for key, r in [("space", "/usr/local/bin/bkc run"), ("subst", "/usr/bin/$(x)"), ("percent", "/opt/%h/bkc-run"),
               ("relative", "bkc-run")]:
    topo(f"runner-{key}", job(f"rn-{key}", ['sync "/srv/rn/src/" "beta:/srv/rn/dst/"']),
         defaults=DEFAULTS.replace("}\n", f"    runner {kdl_str(r)}\n}}\n", 1))
for key in ["dquote", "squote", "subst", "space", "newline", "percent", "sshtoken", "dash"]:
    p = dict(PAYLOADS)[key]
    topo(f"identity-{key}", job(f"id-{key}", ['sync "/srv/idn/src/" "beta:/srv/idn/dst/"']),
         defaults=DEFAULTS.replace("}\n", f"    identity {kdl_str('/srv/keys/' + p)}\n}}\n", 1))

# 6. Job specs from somewhere else than bkc: the runner is their last check.
KH, ID = "@known_hosts@", "@identity@"


def spec(name, **kw):
    s = {
        "version": 1, "job": name, "host": "alpha", "state-dir": "/srv/bkc/state",
        "metrics-dir": "/srv/bkc/metrics", "known-hosts": KH, "identity": ID,
        "hosts": {"beta": {"address": "@beta@", "port": 22, "user": "root", "runner": "/usr/local/bin/bkc-run"}},
        "every": None, "timeout-secs": 60, "nice": None, "io-class": None, "retries": 0,
        "retry-delay-secs": 1, "locks": [], "lock-files": [], "wait-files": [], "hooks": [],
        "syncs": [],
    }
    s.update(kw)
    cases[f"spec-{name}.json"] = json.dumps(s, indent=2, ensure_ascii=False) + "\n"


def sync(src, dst, **kw):
    s = {"source": src, "dest": dst, "opts": ["-a"], "exclude": [], "bwlimit": None,
         "deletes": False, "allow-empty-source": False, "snapshot": None}
    s.update(kw)
    return s


def at(host, path):
    return {"host": host, "path": path}


push = [sync(at("alpha", "/srv/sp/src/"), at("beta", "/srv/sp/dst/"))]
for key, j in [("dotdot", "../escape"), ("slash", "a/b"), ("dot", ".hidden"), ("dash", "-x"),
               ("newline", "a\nb"), ("empty", ""), ("subst", "$(touch /tmp/BKCPWN-sj)")]:
    s_name = f"job-{key}"
    s = json.loads(json.dumps({"syncs": push}))
    spec(s_name, syncs=s["syncs"])
    cases[f"spec-{s_name}.json"] = cases[f"spec-{s_name}.json"].replace(f'"job": "{s_name}"', f'"job": {json.dumps(j, ensure_ascii=False)}', 1)
for key, a in [("option", f"-oProxyCommand=touch /tmp/{CANARY}-sa"), ("token", "%h"),
               ("space", "a b"), ("subst", f"$(touch /tmp/{CANARY}-sa2)"), ("user-at", "root@@beta@")]:
    spec(f"address-{key}", syncs=push,
         hosts={"beta": {"address": a, "port": 22, "user": "root", "runner": "/usr/local/bin/bkc-run"}})
for key, u in [("option", f"-oProxyCommand=touch /tmp/{CANARY}-su"), ("subst", f"$(touch /tmp/{CANARY}-su2)"),
               ("space", "a b")]:
    spec(f"user-{key}", syncs=push, hosts={"beta": {"address": "@beta@", "port": 22, "user": u, "runner": "/usr/local/bin/bkc-run"}})
spec("host-option", syncs=[sync(at("alpha", "/srv/sh/src/"), at("-oProxyCommand=x", "/srv/sh/dst/"))],
     hosts={"-oProxyCommand=x": {"address": "@beta@", "port": 22, "user": "root", "runner": "/usr/local/bin/bkc-run"}})
spec("port-zero", syncs=push, hosts={"beta": {"address": "@beta@", "port": 0, "user": "root", "runner": "/usr/local/bin/bkc-run"}})
for key in ["dquote", "squote", "subst", "backtick", "semicolon", "newline", "percent", "dash", "option",
            "unicode", "space", "glob", "backslash", "dollar", "long"]:
    p = dict(PAYLOADS)[key]
    d = f"/srv/sp-{key}/{p}"
    spec(f"paths-{key}", syncs=[sync(at("alpha", d + "/src/"), at("beta", d + "/dst/"),
                                     exclude=[p], opts=["-a", "--delete"], deletes=True)],
         hooks=[{"when": "before", "host": "beta", "command": {"argv": ["touch", d + "/hook"]}, "on-failure": "break"}],
         **{"lock-files": [at("beta", d + "/lock")]})
spec("relative-dest", syncs=[sync(at("alpha", "/srv/rel/src/"), at("alpha", "dst"))])
spec("relative-source", syncs=[sync(at("alpha", "src"), at("beta", "/srv/rel/dst/"))])
spec("relative-state", syncs=push, **{"state-dir": "state"})
spec("nul-path", syncs=[sync(at("alpha", "/srv/nul/src/\u0000x"), at("beta", "/srv/nul/dst/"))])
spec("opts-rsh", syncs=[sync(at("alpha", "/srv/or/src/"), at("beta", "/srv/or/dst/"),
                              opts=["-a", f"--rsh=sh -c 'touch /tmp/{CANARY}-rsh2'"])])
spec("opts-e", syncs=[sync(at("alpha", "/srv/oe/src/"), at("beta", "/srv/oe/dst/"),
                            opts=["-a", "-e", f"touch /tmp/{CANARY}-e"])])
spec("opts-rsync-path-in-exclude", syncs=[sync(at("alpha", "/srv/ox/src/"), at("beta", "/srv/ox/dst/"),
                                                exclude=[f"--rsync-path=touch /tmp/{CANARY}-rp"])])
spec("key-paths-odd", syncs=push, **{"known-hosts": "@known_hosts_odd@", "identity": "@identity_odd@"})
spec("key-paths-quoted", syncs=push, **{"known-hosts": "/srv/k/known 'hosts' -oProxyCommand=x",
                                        "identity": '/srv/k/i"d'})
spec("key-paths-token", syncs=push, **{"known-hosts": "/srv/k/%h", "identity": "/srv/k/%d/id"})
spec("two-remotes", syncs=[sync(at("beta", "/srv/tr/src/"), at("gamma", "/srv/tr/dst/"))],
     hosts={"beta": {"address": "@beta@", "port": 22, "user": "root", "runner": "/usr/local/bin/bkc-run"},
            "gamma": {"address": "@beta@", "port": 22, "user": "root", "runner": "/usr/local/bin/bkc-run"}})
spec("unknown-host", syncs=[sync(at("alpha", "/srv/uh/src/"), at("nowhere", "/srv/uh/dst/"))])

if os.path.isdir(OUT):
    shutil.rmtree(OUT)
os.makedirs(OUT)
for name, text in sorted(cases.items()):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        f.write(text)
print(f"{len(cases)} cases in {OUT}")
