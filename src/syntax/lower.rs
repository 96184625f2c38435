//! KDL document -> AST. One function per node kind; the list of names each level accepts is
//! written once, next to the `match` that handles them, and feeds the "did you mean".

use kdl::{KdlDocument, KdlNode};
use miette::SourceSpan;

use super::ast::*;
use super::reader::Reader;
use crate::diag::{Code, Diagnostic, Diagnostics, did_you_mean};

const TOP: &[&str] = &["defaults", "host", "job"];
const DEFAULTS: &[&str] = &[
    "user",
    "port",
    "identity",
    "lock-dir",
    "state-dir",
    "metrics-dir",
    "runner",
    "lock-wait",
    "lock-timeout",
    "ssh-keys",
    "max-parallel",
];
const HOST_PROPS: &[&str] = &["address", "port", "user", "lock-dir", "max-parallel"];
const HOST: &[&str] = &[
    "host-key",
    "tag",
    "address",
    "port",
    "user",
    "lock-dir",
    "max-parallel",
];
const JOB: &[&str] = &[
    "description",
    "schedule",
    "cron",
    "every",
    "persistent",
    "random-delay",
    "accuracy",
    "blocks-on",
    "lock-file",
    "blocks-on-file",
    "sync",
    "nice",
    "io-class",
    "bwlimit",
    "timeout",
    "retries",
    "hook",
    "allow-empty-source",
    "expected-duration",
    "alert-after",
    "notify",
    "ping",
    "key",
    "restore-to",
    "verify",
    "priority",
    "queue-timeout",
    "watch",
];
const SYNC: &[&str] = &[
    "opts",
    "exclude",
    "bwlimit",
    "snapshot",
    "allow-empty-source",
    "source-snapshot",
];

pub(crate) fn file(doc: &KdlDocument, d: &mut Diagnostics) -> File {
    let mut f = File::default();
    for node in doc.nodes() {
        match node.name().value() {
            "defaults" => {
                let new = defaults(node, d);
                match &f.defaults {
                    Some(old) => d.push(duplicate_setting("defaults", new.span, old.span)),
                    None => f.defaults = Some(new),
                }
            }
            "host" => f.hosts.extend(host(node, d)),
            "job" => f.jobs.extend(job(node, d)),
            other => d.push(unknown_node(node, other, "the top level", TOP)),
        }
    }
    f
}

fn children(node: &KdlNode) -> &[KdlNode] {
    node.children().map_or(&[], |c| c.nodes())
}

fn unknown_node(node: &KdlNode, name: &str, place: &str, known: &[&str]) -> Diagnostic {
    let diag = Diagnostic::error(
        Code::UnknownNode,
        format!("unknown node `{name}` in {place}"),
    )
    .label(node.name().span(), "not a bkc node");
    match did_you_mean(name, known.iter().copied()) {
        Some(s) => diag.help(format!("did you mean `{s}`?")),
        None => diag.help(format!("{place} may contain: {}", known.join(", "))),
    }
}

fn duplicate_setting(name: &str, span: SourceSpan, first: SourceSpan) -> Diagnostic {
    Diagnostic::error(Code::DuplicateSetting, format!("`{name}` is given twice"))
        .label(span, "given again here")
        .also(first, "first given here")
        .help(format!("keep one `{name}`"))
}

/// Store a setting that may appear once, reporting a repeat with both places.
fn once<T>(
    slot: &mut Option<Spanned<T>>,
    value: Option<Spanned<T>>,
    name: &str,
    d: &mut Diagnostics,
) {
    let Some(value) = value else { return };
    match slot {
        Some(old) => d.push(duplicate_setting(name, value.span, old.span)),
        None => *slot = Some(value),
    }
}

fn set_str(slot: &mut Option<Str>, d: &mut Diagnostics, node: &KdlNode, what: &str, example: &str) {
    let v = leaf_str(d, node, what, example);
    once(slot, v, node.name().value(), d);
}

fn set_int(
    slot: &mut Option<Spanned<i128>>,
    d: &mut Diagnostics,
    node: &KdlNode,
    what: &str,
    example: &str,
) {
    let v = leaf_int(d, node, what, example);
    once(slot, v, node.name().value(), d);
}

fn set_flag(slot: &mut Option<Spanned<bool>>, d: &mut Diagnostics, node: &KdlNode) {
    let v = leaf_flag(d, node);
    once(slot, v, node.name().value(), d);
}

fn set_duration(slot: &mut Option<Str>, d: &mut Diagnostics, node: &KdlNode, example: &str) {
    let v = leaf_duration(d, node, example);
    once(slot, v, node.name().value(), d);
}

/// A leaf node holding one string, such as `user "root"`.
fn leaf_str(d: &mut Diagnostics, node: &KdlNode, what: &str, example: &str) -> Option<Str> {
    let mut r = Reader::new(node);
    let v = r.req_str(d, 0, what, example);
    r.finish(d, &[], false);
    v
}

fn leaf_int(
    d: &mut Diagnostics,
    node: &KdlNode,
    what: &str,
    example: &str,
) -> Option<Spanned<i128>> {
    let mut r = Reader::new(node);
    let v = r.req_int(d, 0, what, example);
    r.finish(d, &[], false);
    v
}

fn leaf_flag(d: &mut Diagnostics, node: &KdlNode) -> Option<Spanned<bool>> {
    let mut r = Reader::new(node);
    let v = r.flag(d);
    r.finish(d, &[], false);
    v
}

/// A leaf holding a duration, as a string ("5m") or a number of seconds.
fn leaf_duration(d: &mut Diagnostics, node: &KdlNode, example: &str) -> Option<Str> {
    let mut r = Reader::new(node);
    let args = r.rest(0);
    for e in args.iter().skip(1) {
        d.push(
            Diagnostic::error(
                Code::UnexpectedArgument,
                format!("`{}` has too many arguments", r.name()),
            )
            .label(e.span(), "not expected here")
            .help(format!("write it as: {example}")),
        );
    }
    let v = match args.first() {
        Some(e) => match e.value() {
            kdl::KdlValue::Integer(i) => Some(Spanned::new(i.to_string(), e.span())),
            kdl::KdlValue::String(s) => Some(Spanned::new(s.clone(), e.span())),
            _ => {
                d.push(
                    Diagnostic::error(Code::WrongType, "expected a duration such as \"5m\"")
                        .label(e.span(), "not a duration")
                        .help(format!("write it as: {example}")),
                );
                None
            }
        },
        None => {
            d.push(r.missing("a duration", example));
            None
        }
    };
    r.finish(d, &[], false);
    v
}

fn defaults(node: &KdlNode, d: &mut Diagnostics) -> Defaults {
    let mut out = Defaults {
        span: node.span(),
        user: None,
        port: None,
        identity: None,
        lock_dir: None,
        state_dir: None,
        metrics_dir: None,
        runner: None,
        lock_wait: None,
        lock_timeout: None,
        ssh_keys: None,
        max_parallel: None,
    };
    Reader::new(node).finish(d, &[], true);
    for c in children(node) {
        let name = c.name().value();
        match name {
            "user" => set_str(&mut out.user, d, c, "a user name", "user \"root\""),
            "port" => set_int(&mut out.port, d, c, "a port number", "port 22"),
            "identity" => set_str(
                &mut out.identity,
                d,
                c,
                "a key path",
                "identity \"/etc/bkc/id_ed25519\"",
            ),
            "lock-dir" => set_str(
                &mut out.lock_dir,
                d,
                c,
                "a directory",
                "lock-dir \"/run/bkc/locks\"",
            ),
            "state-dir" => set_str(
                &mut out.state_dir,
                d,
                c,
                "a directory",
                "state-dir \"/var/lib/bkc/state\"",
            ),
            "metrics-dir" => set_str(
                &mut out.metrics_dir,
                d,
                c,
                "a directory",
                "metrics-dir \"/var/lib/prometheus/node-exporter\"",
            ),
            "runner" => set_str(
                &mut out.runner,
                d,
                c,
                "the runner's path",
                "runner \"/usr/local/bin/bkc-run\"",
            ),
            "lock-wait" => set_duration(&mut out.lock_wait, d, c, "lock-wait \"1m\""),
            "lock-timeout" => set_duration(&mut out.lock_timeout, d, c, "lock-timeout \"6h\""),
            "ssh-keys" => set_str(
                &mut out.ssh_keys,
                d,
                c,
                "`restricted` or `operator`",
                "ssh-keys \"restricted\"",
            ),
            "max-parallel" => set_int(
                &mut out.max_parallel,
                d,
                c,
                "a number of jobs",
                "max-parallel 2",
            ),
            other => d.push(unknown_node(c, other, "`defaults`", DEFAULTS)),
        }
    }
    out
}

fn host(node: &KdlNode, d: &mut Diagnostics) -> Option<Host> {
    let mut r = Reader::new(node);
    let name = r.req_str(
        d,
        0,
        "a name",
        "host \"backup_a\" address=\"backup-a.example.com\"",
    );
    let mut h = Host {
        span: node.span(),
        name: name
            .clone()
            .unwrap_or_else(|| Spanned::new(String::new(), r.name_span())),
        address: r.prop_str(d, "address"),
        port: r.prop_int(d, "port"),
        user: r.prop_str(d, "user"),
        lock_dir: r.prop_str(d, "lock-dir"),
        max_parallel: r.prop_int(d, "max-parallel"),
        host_keys: Vec::new(),
        tags: Vec::new(),
    };
    r.finish(d, HOST_PROPS, true);
    for c in children(node) {
        let cname = c.name().value();
        match cname {
            "host-key" => h.host_keys.extend(leaf_str(
                d,
                c,
                "a public key",
                "host-key \"ssh-ed25519 AAAA…\"",
            )),
            "tag" => h.tags.extend(tags(c, d)),
            "address" => set_str(
                &mut h.address,
                d,
                c,
                "an address",
                "address \"backup-a.lan\"",
            ),
            "port" => set_int(&mut h.port, d, c, "a port number", "port 22"),
            "user" => set_str(&mut h.user, d, c, "a user name", "user \"backup\""),
            "lock-dir" => set_str(
                &mut h.lock_dir,
                d,
                c,
                "a directory",
                "lock-dir \"/run/bkc/locks\"",
            ),
            "max-parallel" => set_int(
                &mut h.max_parallel,
                d,
                c,
                "a number of jobs",
                "max-parallel 2",
            ),
            other => d.push(unknown_node(c, other, "a `host`", HOST)),
        }
    }
    name.map(|_| h)
}

fn tags(node: &KdlNode, d: &mut Diagnostics) -> Vec<Str> {
    let mut r = Reader::new(node);
    let mut tags = Vec::new();
    for e in r.rest(0) {
        match e.value() {
            kdl::KdlValue::String(s) => tags.push(Spanned::new(s.clone(), e.span())),
            _ => d.push(
                Diagnostic::error(Code::WrongType, "expected a tag name as a string in quotes")
                    .label(e.span(), "not a string")
                    .help("write it as: tag \"lan\""),
            ),
        }
    }
    r.finish(d, &[], false);
    tags
}

fn job(node: &KdlNode, d: &mut Diagnostics) -> Option<Job> {
    let mut r = Reader::new(node);
    let name = r.req_str(d, 0, "a name", "job \"desktop-to-a\" on=\"desktop\" { … }")?;
    let on = r.prop_str(d, "on");
    if on.is_none() && r.name() == "job" {
        d.push(
            Diagnostic::error(
                Code::MissingValue,
                format!("job `{}` does not say which host runs it", name.value),
            )
            .label(name.span, "no `on=` here")
            .help(format!(
                "add the host: job \"{}\" on=\"desktop\" {{ … }}",
                name.value
            )),
        );
    }
    r.finish(d, &["on"], true);
    let mut j = Job {
        span: node.span(),
        name,
        on,
        description: None,
        schedules: Vec::new(),
        crons: Vec::new(),
        every: None,
        persistent: None,
        random_delay: None,
        accuracy: None,
        blocks_on: Vec::new(),
        lock_files: Vec::new(),
        restore_to: Vec::new(),
        blocks_on_files: Vec::new(),
        syncs: Vec::new(),
        nice: None,
        io_class: None,
        bwlimit: None,
        timeout: None,
        retries: None,
        hooks: Vec::new(),
        allow_empty_source: None,
        expected_duration: None,
        alert_after: None,
        notify: Vec::new(),
        ping: None,
        key: None,
        verify: None,
        priority: None,
        queue_timeout: None,
        watch: Vec::new(),
    };
    for c in children(node) {
        job_child(&mut j, c, d);
    }
    Some(j)
}

fn job_child(j: &mut Job, c: &KdlNode, d: &mut Diagnostics) {
    match c.name().value() {
        "description" => set_str(
            &mut j.description,
            d,
            c,
            "a text",
            "description \"music to backup_a\"",
        ),
        "schedule" => j.schedules.extend(leaf_str(
            d,
            c,
            "a calendar expression",
            "schedule \"daily\"",
        )),
        "cron" => j
            .crons
            .extend(leaf_str(d, c, "a cron expression", "cron \"0 3 * * *\"")),
        "every" => set_str(&mut j.every, d, c, "an interval", "every \"4d\""),
        "persistent" => set_flag(&mut j.persistent, d, c),
        "random-delay" => set_duration(&mut j.random_delay, d, c, "random-delay \"10m\""),
        "accuracy" => set_duration(&mut j.accuracy, d, c, "accuracy \"1m\""),
        "expected-duration" => {
            set_duration(&mut j.expected_duration, d, c, "expected-duration \"2h\"")
        }
        "alert-after" => set_duration(&mut j.alert_after, d, c, "alert-after \"30h\""),
        "timeout" => set_duration(&mut j.timeout, d, c, "timeout \"6h\""),
        "blocks-on" => j.blocks_on.extend(blocks_on(c, d)),
        "lock-file" => j.lock_files.extend(path_at(
            c,
            d,
            "lock-file \"/var/run/backup.lock\" host=\"backup_a\"",
        )),
        "restore-to" => j
            .restore_to
            .extend(path_at(c, d, "restore-to \"/srv/www\" host=\"web1\"")),
        "blocks-on-file" => j.blocks_on_files.extend(blocks_on_file(c, d)),
        "sync" => j.syncs.extend(sync(c, d)),
        "nice" => set_int(&mut j.nice, d, c, "a niceness from -20 to 19", "nice 10"),
        "priority" => set_int(&mut j.priority, d, c, "a priority", "priority 10"),
        "queue-timeout" => set_duration(&mut j.queue_timeout, d, c, "queue-timeout \"2h\""),
        "io-class" => set_str(&mut j.io_class, d, c, "an I/O class", "io-class \"idle\""),
        "bwlimit" => set_str(&mut j.bwlimit, d, c, "a rate", "bwlimit \"5M\""),
        "retries" => {
            if let Some(v) = retries(c, d) {
                match &j.retries {
                    Some(old) => d.push(duplicate_setting("retries", v.span, old.span)),
                    None => j.retries = Some(v),
                }
            }
        }
        "hook" => j.hooks.extend(hook(c, d)),
        "notify" => j.notify.extend(notify(c, d)),
        "ping" => set_str(
            &mut j.ping,
            d,
            c,
            "a URL",
            "ping \"https://hc-ping.com/<uuid>\"",
        ),
        "allow-empty-source" => set_flag(&mut j.allow_empty_source, d, c),
        "verify" => {
            if let Some(v) = verify(c, d) {
                match &j.verify {
                    Some(old) => d.push(duplicate_setting("verify", v.span, old.span)),
                    None => j.verify = Some(v),
                }
            }
        }
        "watch" => j.watch.extend(watch(c, d)),
        "key" => set_str(
            &mut j.key,
            d,
            c,
            "the job's public key",
            "key \"ssh-ed25519 AAAA…\"",
        ),
        other => d.push(unknown_node(c, other, "a `job`", JOB)),
    }
}

/// `verify "weekly" checksum=#true`.
fn verify(node: &KdlNode, d: &mut Diagnostics) -> Option<Verify> {
    let mut r = Reader::new(node);
    let calendar = r.req_str(
        d,
        0,
        "a calendar expression",
        "verify \"weekly\" checksum=#true",
    );
    let checksum = r.prop_bool(d, "checksum");
    r.finish(d, &["checksum"], false);
    Some(Verify {
        span: node.span(),
        calendar: calendar?,
        checksum,
    })
}

/// `watch "/srv/data" quiet="5m"`.
fn watch(node: &KdlNode, d: &mut Diagnostics) -> Option<Watch> {
    let mut r = Reader::new(node);
    let path = r.req_str(d, 0, "a path", "watch \"/srv/data\" quiet=\"5m\"");
    let w = path.map(|path| Watch {
        span: node.span(),
        path,
        quiet: r.prop_duration(d, "quiet"),
    });
    r.finish(d, &["quiet"], false);
    w
}

fn blocks_on(node: &KdlNode, d: &mut Diagnostics) -> Option<BlocksOn> {
    let mut r = Reader::new(node);
    let job = r.req_str(
        d,
        0,
        "a job name",
        "blocks-on \"a-to-b\" wait=\"5m\" timeout=\"12h\"",
    );
    let b = job.map(|job| BlocksOn {
        span: node.span(),
        job,
        wait: r.prop_duration(d, "wait"),
        timeout: r.prop_duration(d, "timeout"),
    });
    r.finish(d, &["wait", "timeout"], false);
    b
}

/// A `lock-file` or `restore-to`: a path and the host it is on.
fn path_at(node: &KdlNode, d: &mut Diagnostics, example: &str) -> Option<LockFile> {
    let mut r = Reader::new(node);
    let path = r.req_str(d, 0, "a path", example);
    let l = path.map(|path| LockFile {
        span: node.span(),
        path,
        host: r.prop_str(d, "host"),
    });
    r.finish(d, &["host"], false);
    l
}

fn blocks_on_file(node: &KdlNode, d: &mut Diagnostics) -> Option<BlocksOnFile> {
    let mut r = Reader::new(node);
    let example =
        "blocks-on-file \"/var/run/backup.lock\" host=\"backup_a\" wait=300 timeout=\"6h\"";
    let path = r.req_str(d, 0, "a path", example);
    let b = path.map(|path| BlocksOnFile {
        span: node.span(),
        path,
        host: r.prop_str(d, "host"),
        wait: r.prop_duration(d, "wait"),
        timeout: r.prop_duration(d, "timeout"),
    });
    r.finish(d, &["host", "wait", "timeout"], false);
    b
}

fn retries(node: &KdlNode, d: &mut Diagnostics) -> Option<Retries> {
    let mut r = Reader::new(node);
    let count = r.req_int(d, 0, "a count", "retries 3 delay=\"1m\"");
    let v = count.map(|count| Retries {
        span: node.span(),
        count,
        delay: r.prop_duration(d, "delay"),
    });
    r.finish(d, &["delay"], false);
    v
}

fn sync(node: &KdlNode, d: &mut Diagnostics) -> Option<Sync> {
    let example = "sync \"/home/alice/Music/\" \"backup_a:/srv/backup/music/\"";
    let mut r = Reader::new(node);
    let source = r.req_str(d, 0, "a source path", example);
    let dest = r.req_str(d, 1, "a destination path", example);
    r.finish(d, &[], true);
    let mut s = Sync {
        span: node.span(),
        source: source?,
        dest: dest?,
        opts: None,
        exclude: Vec::new(),
        bwlimit: None,
        snapshot: None,
        allow_empty_source: None,
        source_snapshot: None,
    };
    for c in children(node) {
        let cname = c.name().value();
        match cname {
            "opts" => {
                let values = strings(c, d);
                if s.opts.is_some() {
                    d.push(
                        Diagnostic::error(Code::DuplicateSetting, "`opts` is given twice")
                            .label(c.span(), "given again here")
                            .help("put every option in one `opts`"),
                    );
                } else {
                    s.opts = Some(values);
                }
            }
            "exclude" => s.exclude.extend(strings(c, d)),
            "bwlimit" => set_str(&mut s.bwlimit, d, c, "a rate", "bwlimit \"5M\""),
            "allow-empty-source" => set_flag(&mut s.allow_empty_source, d, c),
            "source-snapshot" => {
                if let Some(v) = source_snapshot(c, d) {
                    match &s.source_snapshot {
                        Some(old) => d.push(duplicate_setting(cname, v.span, old.span)),
                        None => s.source_snapshot = Some(v),
                    }
                }
            }
            "snapshot" => {
                let snap = snapshot(c, d);
                match &s.snapshot {
                    Some(old) => d.push(duplicate_setting(cname, snap.span, old.span)),
                    None => s.snapshot = Some(snap),
                }
            }
            other => d.push(unknown_node(c, other, "a `sync`", SYNC)),
        }
    }
    Some(s)
}

/// The string arguments of `opts` or `exclude`.
fn strings(node: &KdlNode, d: &mut Diagnostics) -> Vec<Str> {
    let name = node.name().value();
    let mut r = Reader::new(node);
    let mut values = Vec::new();
    for e in r.rest(0) {
        match e.value() {
            kdl::KdlValue::String(v) => values.push(Spanned::new(v.clone(), e.span())),
            _ => d.push(
                Diagnostic::error(Code::WrongType, format!("`{name}` takes strings"))
                    .label(e.span(), "not a string")
                    .help(format!("quote it: {name} \"{}\"", e.value())),
            ),
        }
    }
    r.finish(d, &[], false);
    values
}

fn source_snapshot(node: &KdlNode, d: &mut Diagnostics) -> Option<SourceSnapshot> {
    let mut r = Reader::new(node);
    let kind = r.req_str(d, 0, "a file system", "source-snapshot \"btrfs\"");
    let v = kind.map(|kind| SourceSnapshot {
        span: node.span(),
        kind,
        dataset: r.prop_str(d, "dataset"),
        volume: r.prop_str(d, "volume"),
        size: r.prop_str(d, "size"),
    });
    r.finish(d, &["dataset", "volume", "size"], false);
    v
}

fn snapshot(node: &KdlNode, d: &mut Diagnostics) -> Snapshot {
    let mut r = Reader::new(node);
    let snap = Snapshot {
        span: node.span(),
        keep_last: r.prop_int(d, "keep-last"),
        keep_daily: r.prop_int(d, "keep-daily"),
        keep_weekly: r.prop_int(d, "keep-weekly"),
        keep_monthly: r.prop_int(d, "keep-monthly"),
        append_only: r.prop_bool(d, "append-only"),
    };
    r.finish(
        d,
        &[
            "keep-last",
            "keep-daily",
            "keep-weekly",
            "keep-monthly",
            "append-only",
        ],
        false,
    );
    snap
}

fn hook(node: &KdlNode, d: &mut Diagnostics) -> Option<Hook> {
    let example =
        "hook \"before\" \"pg_dumpall -f /var/backups/db.sql\" host=\"db\" on-failure=\"break\"";
    let mut r = Reader::new(node);
    let when = r.req_str(d, 0, "`before` or `after`", example);
    let mut command = Vec::new();
    for e in r.rest(1) {
        match e.value() {
            kdl::KdlValue::String(s) => command.push(Spanned::new(s.clone(), e.span())),
            _ => d.push(
                Diagnostic::error(Code::WrongType, "a hook's command is made of strings")
                    .label(e.span(), "not a string")
                    .help("quote every word of the command"),
            ),
        }
    }
    if command.is_empty() && when.is_some() {
        d.push(
            Diagnostic::error(Code::MissingValue, "`hook` needs a command")
                .label(node.span(), "command missing")
                .help(format!("write it as: {example}")),
        );
    }
    let host = r.prop_str(d, "host");
    let on_failure = r.prop_str(d, "on-failure");
    let writes = r.prop_str(d, "writes");
    r.finish(d, &["host", "on-failure", "writes"], false);
    if command.is_empty() {
        return None;
    }
    Some(Hook {
        span: node.span(),
        when: when?,
        command,
        host,
        on_failure,
        writes,
    })
}

fn notify(node: &KdlNode, d: &mut Diagnostics) -> Option<Notify> {
    let example = "notify on=\"failure\" \"/usr/local/bin/page-me\" \"backup failed\"";
    let mut r = Reader::new(node);
    let mut command = Vec::new();
    for e in r.rest(0) {
        match e.value() {
            kdl::KdlValue::String(s) => command.push(Spanned::new(s.clone(), e.span())),
            _ => d.push(
                Diagnostic::error(Code::WrongType, "a notify command is made of strings")
                    .label(e.span(), "not a string")
                    .help("quote every word of the command"),
            ),
        }
    }
    let on = r.prop_str(d, "on");
    if on.is_none() {
        d.push(
            Diagnostic::error(Code::MissingValue, "`notify` does not say on which event")
                .label(node.name().span(), "no `on=` here")
                .help(format!("write it as: {example}")),
        );
    }
    if command.is_empty() {
        d.push(
            Diagnostic::error(Code::MissingValue, "`notify` needs a command")
                .label(node.span(), "command missing")
                .help(format!("write it as: {example}")),
        );
    }
    r.finish(d, &["on"], false);
    (!command.is_empty()).then(|| Notify {
        span: node.span(),
        on,
        command,
    })
}
