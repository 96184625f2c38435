//! `bkc import rsyncdirector`: per-host rsync-director YAML configs -> one topology.
//!
//! Each config is one instance of the old daemon: a cron schedule and jobs that push from its
//! host to `user@host:port`. The import keeps every lock file and waited-on file at its exact
//! path, so old and new instances can run side by side during a move, and keeps the rsync
//! command lines the same: the options are split as the old daemon's shell split them, and
//! whatever cannot be carried over faithfully is an error at its YAML line.

mod rsync;
pub mod shell;
mod yaml;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

use crate::analyze::paths;
use crate::diag::{Code, Diagnostic, Source};
use crate::printable::printable_line;
use crate::schedule::{cron_to_calendar, parse_size};
use crate::syntax::ast::Spanned;
use yaml::{Node, Reader};

/// One host's config as given on the command line: `HOST=FILE`.
pub struct Config {
    pub host: String,
    /// What diagnostics call the file.
    pub file: String,
    pub text: String,
}

pub struct Imported {
    /// The topology, when no config had an error.
    pub kdl: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
}

/// A reference to another machine: where a job pushes, a remote lock file or wait.
struct Remote {
    address: Spanned<String>,
    user: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    file: usize,
}

/// A path on the job's own host (`remote: None`) or on a remote.
struct At {
    remote: Option<usize>,
    path: String,
}

struct Wait {
    at: At,
    span: SourceSpan,
    wait: i64,
    timeout: Option<i64>,
}

struct Sync {
    source: String,
    dest: String,
    opts: Vec<String>,
    exclude: Vec<String>,
    bwlimit: Option<String>,
}

struct Job {
    file: usize,
    id: Spanned<String>,
    name: String,
    remote: Option<usize>,
    lock_files: Vec<At>,
    waits: Vec<Wait>,
    syncs: Vec<Sync>,
}

struct Parsed {
    cron: Option<String>,
    pid_file_dir: Option<String>,
}

const TOP: &[&str] = &["cron_schedule", "pid_file_dir", "jobs"];
const JOB: &[&str] = &[
    "id",
    "user",
    "host",
    "port",
    "lock_files",
    "blocks_on",
    "syncs",
];
const LOCK_FILE: &[&str] = &["type", "path", "host", "user", "port"];
const BLOCKS_ON: &[&str] = &[
    "type",
    "lock_file_path",
    "wait_time",
    "timeout",
    "host",
    "user",
    "port",
];
const SYNC: &[&str] = &["source", "dest", "opts"];

/// Everything read from all configs, before hosts are named.
#[derive(Default)]
struct State {
    remotes: Vec<Remote>,
    jobs: Vec<Job>,
}

/// Import `configs`. `addresses` maps a host name to the address the configs reach it by, for
/// machines whose address does not start with their name.
pub fn rsyncdirector(configs: &[Config], addresses: &[(String, String)]) -> Imported {
    let mut st = State::default();
    let mut readers: Vec<Reader> = Vec::new();
    let mut parsed = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let mut r = Reader::new(&c.text);
        parsed.push(read_config(&mut r, &mut st, i));
        readers.push(r);
    }
    let hosts = name_hosts(configs, addresses, &st, &mut readers);
    let names = name_jobs(&mut st, &mut readers);
    let kdl = write_topology(configs, &parsed, &st, &hosts, &names, &mut readers);
    let failed = readers.iter().any(|r| r.d.has_errors());
    let mut diagnostics = Vec::new();
    for (r, c) in readers.into_iter().zip(configs) {
        let source: Source = NamedSource::new(&c.file, Arc::<str>::from(c.text.as_str()));
        diagnostics.extend(r.d.finish(&source));
    }
    Imported {
        kdl: (!failed).then_some(kdl),
        diagnostics,
    }
}

fn read_config(r: &mut Reader, st: &mut State, file: usize) -> Parsed {
    let mut out = Parsed {
        cron: None,
        pid_file_dir: None,
    };
    let Some(doc) = r.load() else { return out };
    let Some(top) = r.fields(&doc, "the config", TOP) else {
        return out;
    };
    if let Some(v) = r.required(
        &top,
        "cron_schedule",
        "the config",
        "cron_schedule: '0 2 * * *'",
    ) && let Some(s) = r.string(v, "the cron schedule")
    {
        match cron_to_calendar(&s.value) {
            Ok(_) => out.cron = Some(s.value),
            Err(e) => r.d.push(
                Diagnostic::error(Code::InvalidCron, e.message)
                    .label(s.span, "not a cron line bkc can translate")
                    .help(e.help),
            ),
        }
    }
    if let Some(v) = top.get("pid_file_dir") {
        out.pid_file_dir = r.string(v, "pid_file_dir").map(|s| s.value);
    }
    if let Some(jobs) = r.required(&top, "jobs", "the config", "jobs: [ … ]") {
        for j in r.list(jobs, "jobs") {
            if let Some(job) = read_job(r, st, file, j) {
                st.jobs.push(job);
            }
        }
    }
    out
}

fn read_job<'a>(r: &mut Reader<'a>, st: &mut State, file: usize, node: &Node<'a>) -> Option<Job> {
    let f = r.fields(node, "a job", JOB)?;
    let id = r
        .required(&f, "id", "a job", "id: desktop_to_backup_a")
        .and_then(|v| r.string(v, "the job id"));
    let remote = remote(r, st, file, &f, "a job", true);
    let mut job = Job {
        file,
        name: String::new(),
        id: Spanned::new(String::new(), f.span()),
        remote,
        lock_files: Vec::new(),
        waits: Vec::new(),
        syncs: Vec::new(),
    };
    if let Some(list) = f.get("lock_files") {
        for item in r.list(list, "lock_files") {
            let Some(lf) = r.fields(item, "a lock file", LOCK_FILE) else {
                continue;
            };
            let remote = located(r, st, file, &lf, "a lock file");
            let path = r
                .required(
                    &lf,
                    "path",
                    "a lock file",
                    "path: /var/run/backupmanager/JOB",
                )
                .and_then(|v| r.string(v, "the path"))
                .filter(|p| check_path(r, p, "a lock file"));
            if let (Some(remote), Some(path)) = (remote, path) {
                job.lock_files.push(At {
                    remote,
                    path: path.value,
                });
            }
        }
    }
    if let Some(list) = f.get("blocks_on") {
        for item in r.list(list, "blocks_on") {
            if let Some(w) = read_wait(r, st, file, item) {
                job.waits.push(w);
            }
        }
    }
    let syncs = r.required(
        &f,
        "syncs",
        "a job",
        "syncs: [ {source: /data/, dest: /srv/backup/data/} ]",
    );
    for item in syncs.map_or(&[][..], |s| r.list(s, "syncs")) {
        if let Some(s) = read_sync(r, item) {
            job.syncs.push(s);
        }
    }
    job.id = id?;
    Some(job)
}

/// The `type: local|remote` of a lock file or wait: `Some(None)` for local, `Some(Some(remote))`
/// for remote, `None` when it could not be read.
fn located<'a>(
    r: &mut Reader<'a>,
    st: &mut State,
    file: usize,
    f: &yaml::Fields<'_, 'a>,
    what: &str,
) -> Option<Option<usize>> {
    let ty = r
        .required(f, "type", what, "type: local")
        .and_then(|v| r.string(v, "the type"))?;
    match ty.value.as_str() {
        "local" => {
            for key in ["host", "user", "port"] {
                if let Some(v) = f.get(key) {
                    let span = r.span(v);
                    r.d.push(
                        Diagnostic::error(
                            Code::YamlUnknownKey,
                            format!("a local {} has no `{key}`", &what[2..]),
                        )
                        .label(span, "on a local one")
                        .help("write `type: remote`, or remove the key"),
                    );
                }
            }
            Some(None)
        }
        "remote" => remote(r, st, file, f, what, false).map(Some),
        other => {
            r.d.push(
                Diagnostic::error(Code::YamlWrongType, format!("unknown type `{other}`"))
                    .label(ty.span, "not local or remote")
                    .help("the type is `local` or `remote`"),
            );
            None
        }
    }
}

/// The `host`, `user` and `port` of a remote end.
fn remote<'a>(
    r: &mut Reader<'a>,
    st: &mut State,
    file: usize,
    f: &yaml::Fields<'_, 'a>,
    what: &str,
    user_required: bool,
) -> Option<usize> {
    let address = r
        .required(f, "host", what, "host: backup_a.example.com")
        .and_then(|v| r.string(v, "the host"))
        .filter(
            |a| match crate::analyze::bad_address(Code::ImportValue, a) {
                Some(d) => {
                    r.d.push(d);
                    false
                }
                None => true,
            },
        );
    let user = if user_required {
        r.required(f, "user", what, "user: root")
    } else {
        f.get("user")
    };
    let user = user
        .and_then(|v| r.string(v, "the user"))
        .filter(|u| check_word(r, u, "user name"));
    let port = f.get("port").and_then(|v| r.int(v, "the port", 1, 65535));
    st.remotes.push(Remote {
        address: address?,
        user,
        port,
        file,
    });
    Some(st.remotes.len() - 1)
}

fn read_wait<'a>(r: &mut Reader<'a>, st: &mut State, file: usize, node: &Node<'a>) -> Option<Wait> {
    let f = r.fields(node, "a blocks_on entry", BLOCKS_ON)?;
    let remote = located(r, st, file, &f, "a blocks_on entry");
    let path = r
        .required(
            &f,
            "lock_file_path",
            "a blocks_on entry",
            "lock_file_path: /var/run/some-lock-file",
        )
        .and_then(|v| r.string(v, "the path"))
        .filter(|p| check_path(r, p, "a waited-on file"));
    let wait = r
        .required(&f, "wait_time", "a blocks_on entry", "wait_time: 300")
        .and_then(|v| r.int(v, "wait_time", 1, i64::from(u32::MAX)));
    let timeout = f
        .get("timeout")
        .map(|v| r.int(v, "timeout", 1, i64::from(u32::MAX)));
    let timeout = match timeout {
        Some(t) => Some(t?.value),
        None => {
            r.d.push(
                Diagnostic::warning(
                    Code::ImportNoTimeout,
                    "this wait has no timeout: the old daemon waited forever",
                )
                .label(r.span(node), "no `timeout`")
                .help("bkc gives up after `lock-timeout` (6h unless `defaults` says otherwise); add timeout= to the imported blocks-on-file to choose"),
            );
            None
        }
    };
    Some(Wait {
        at: At {
            remote: remote?,
            path: path?.value,
        },
        span: r.span(node),
        wait: wait?.value,
        timeout,
    })
}

fn read_sync<'a>(r: &mut Reader<'a>, node: &Node<'a>) -> Option<Sync> {
    let f = r.fields(node, "a sync", SYNC)?;
    let source = r
        .required(&f, "source", "a sync", "source: /home/alice/")
        .and_then(|v| r.string(v, "the source"))
        .and_then(|s| one_word(r, &s, "source"));
    let dest = r
        .required(&f, "dest", "a sync", "dest: /srv/backup/alice/")
        .and_then(|v| r.string(v, "the destination"))
        .and_then(|s| one_word(r, &s, "destination"));
    let mut words: Vec<(String, SourceSpan)> = Vec::new();
    let mut ok = true;
    if let Some(list) = f.get("opts") {
        for item in r.list(list, "opts") {
            let Some(o) = r.string(item, "an rsync option") else {
                ok = false;
                continue;
            };
            match shell::split(&o.value) {
                Ok(ws) => words.extend(ws.into_iter().map(|(w, _)| (w, o.span))),
                Err(e) => {
                    ok = false;
                    r.d.push(
                        Diagnostic::error(Code::ImportShell, e.message)
                            .label(inner(r.text, &o, e.range), "here")
                            .help("the old daemon ran its rsync line through bash; write the option so that bash passes it unchanged, in single quotes"),
                    );
                }
            }
        }
    }
    let plain: Vec<String> = words.iter().map(|(w, _)| w.clone()).collect();
    let converted = match rsync::convert(&plain) {
        Ok(c) => Some(c),
        Err(e) => {
            if ok {
                r.d.push(
                    Diagnostic::error(Code::ImportOption, e.message)
                        .label(words[e.word].1, "cannot be carried over")
                        .help(e.help),
                );
            }
            None
        }
    }?;
    if let Some(b) = &converted.bwlimit
        && let Err(e) = parse_size(b)
    {
        let span = words
            .iter()
            .rev()
            .find(|(w, _)| w.contains("bwlimit"))
            .map_or(r.span(node), |(_, s)| *s);
        r.d.push(
            Diagnostic::error(Code::InvalidSize, e.message)
                .label(span, "here")
                .help(e.help),
        );
        return None;
    }
    if !ok {
        return None;
    }
    Some(Sync {
        source: source?,
        dest: dest?,
        opts: converted.opts,
        exclude: converted.exclude,
        bwlimit: converted.bwlimit,
    })
}

/// The span of `range` inside a YAML string, when it is written plainly; else the whole value.
fn inner(text: &str, s: &Spanned<String>, range: std::ops::Range<usize>) -> SourceSpan {
    let start = s.span.offset();
    let raw = text.get(start..start + s.span.len()).unwrap_or("");
    let off = match raw.as_bytes().first() {
        Some(b'\'' | b'"') => 1,
        _ => 0,
    };
    if raw.get(off..off + s.value.len()) == Some(s.value.as_str()) {
        SourceSpan::new((start + off + range.start).into(), range.len().max(1))
    } else {
        s.span
    }
}

/// A source or destination: bash split it like the options, and it must be one absolute path.
fn one_word(r: &mut Reader, s: &Spanned<String>, what: &str) -> Option<String> {
    match shell::split(&s.value) {
        Ok(ws) if ws.len() == 1 => {
            let p = Spanned::new(ws[0].0.clone(), s.span);
            check_path(r, &p, &format!("the {what}")).then_some(p.value)
        }
        Ok(_) => {
            r.d.push(
                Diagnostic::error(
                    Code::ImportShell,
                    format!("the {what} is not one word to the shell"),
                )
                .label(s.span, "split by bash into another number of words")
                .help("quote a path with spaces in single quotes inside the YAML string"),
            );
            None
        }
        Err(e) => {
            r.d.push(
                Diagnostic::error(Code::ImportShell, e.message)
                    .label(inner(r.text, s, e.range), "here")
                    .help("write the path so that bash passes it unchanged, in single quotes"),
            );
            None
        }
    }
}

fn check_path(r: &mut Reader, p: &Spanned<String>, what: &str) -> bool {
    match paths::path_problem(&p.value) {
        None => true,
        Some(problem) => {
            r.d.push(crate::analyze::path_diagnostic(
                problem, &p.value, p.span, what,
            ));
            false
        }
    }
}

/// What ssh would read as an option, or split: the rule `bkc check` applies.
fn check_word(r: &mut Reader, v: &Spanned<String>, what: &str) -> bool {
    match crate::analyze::bad_word(Code::ImportValue, v, what) {
        Some(d) => {
            r.d.push(d);
            false
        }
        None => true,
    }
}

/// A topology name (`[A-Za-z0-9][A-Za-z0-9_.-]*`) made from any text.
fn sanitize(s: &str, fallback: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut out: String = trimmed.chars().take(200).collect();
    if out.is_empty() {
        out = fallback.to_string();
    }
    out
}

/// Host names given on the command line and host addresses compare with `-` and `_` alike and
/// case ignored: DNS has no `_`, so `backup_a` is commonly reached as `backup-a.example.com`.
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            let n = |c: u8| {
                if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            };
            n(x) == n(y)
        })
}

fn is_ip(a: &str) -> bool {
    a.parse::<std::net::IpAddr>().is_ok()
}

/// A topology host: its name, and what the configs say about reaching it.
#[derive(Default)]
struct Host {
    address: Option<String>,
    user: Option<(String, usize, SourceSpan)>,
    port: Option<(i64, usize, SourceSpan)>,
}

struct Hosts {
    /// In the order they are written: the given hosts, then the others as first met.
    list: Vec<(String, Host)>,
    /// Remote index -> host name.
    of_remote: Vec<String>,
}

fn name_hosts(
    configs: &[Config],
    addresses: &[(String, String)],
    st: &State,
    readers: &mut [Reader],
) -> Hosts {
    let mut list: Vec<(String, Host)> = configs
        .iter()
        .map(|c| (c.host.clone(), Host::default()))
        .collect();
    for (name, addr) in addresses {
        if !list.iter().any(|(n, _)| n == name) {
            list.push((name.clone(), Host::default()));
        }
        if let Some((_, h)) = list.iter_mut().find(|(n, _)| n == name) {
            h.address = Some(addr.clone());
        }
    }
    let mut by_address: BTreeMap<String, String> = BTreeMap::new();
    let mut of_remote = Vec::new();
    for rm in &st.remotes {
        let addr = rm.address.value.as_str();
        let key = addr.to_ascii_lowercase();
        let name = match by_address.get(&key) {
            Some(n) => n.clone(),
            None => new_host_name(rm, configs, addresses, &mut list, readers),
        };
        if !list.iter().any(|(n, _)| *n == name) {
            list.push((
                name.clone(),
                Host {
                    address: Some(addr.to_string()),
                    ..Host::default()
                },
            ));
        }
        by_address.insert(key, name.clone());
        of_remote.push(name);
    }
    // One user and one port per host: bkc connects to a machine one way.
    for (i, rm) in st.remotes.iter().enumerate() {
        let h = &mut list
            .iter_mut()
            .find(|(n, _)| *n == of_remote[i])
            .expect("named")
            .1;
        if let Some(u) = &rm.user {
            agree(
                &mut h.user,
                u.value.clone(),
                rm,
                u.span,
                "user",
                configs,
                readers,
            );
        }
        if let Some(p) = &rm.port {
            agree(&mut h.port, p.value, rm, p.span, "port", configs, readers);
        }
    }
    Hosts { list, of_remote }
}

/// The host name for an address met for the first time: the one `--address` gives it, or a
/// config's host whose name the address starts with, or one made from the address.
fn new_host_name(
    rm: &Remote,
    configs: &[Config],
    addresses: &[(String, String)],
    list: &mut [(String, Host)],
    readers: &mut [Reader],
) -> String {
    let addr = rm.address.value.as_str();
    if let Some((n, _)) = addresses.iter().find(|(_, a)| a.eq_ignore_ascii_case(addr)) {
        return n.clone();
    }
    let label = addr.split('.').next().unwrap_or(addr);
    let given = configs.iter().map(|c| &c.host).find(|h| {
        !addresses.iter().any(|(n, _)| n == *h)
            && (same_name(h, addr) || (!is_ip(addr) && same_name(h, label)))
    });
    let Some(g) = given else {
        let taken = |n: &str| list.iter().any(|(x, _)| same_name(x, n));
        let short = sanitize(label, "host");
        return if !is_ip(addr) && !taken(&short) {
            short
        } else {
            sanitize(addr, "host")
        };
    };
    let h = &mut list.iter_mut().find(|(n, _)| n == g).expect("given").1;
    let Some(other) = &h.address else {
        h.address = Some(addr.to_string());
        return g.clone();
    };
    readers[rm.file].d.push(
        Diagnostic::error(
            Code::ImportAddress,
            format!("`{addr}` and `{other}` would both be host `{g}`"),
        )
        .label(rm.address.span, "a second address for the same host")
        .help(format!("say which address host `{g}` has with --address {g}={other}; the other becomes a host of its own")),
    );
    // Carry on as a host of its own, so that later mistakes still show.
    sanitize(addr, "host")
}

fn agree<T: PartialEq + std::fmt::Display + Clone>(
    slot: &mut Option<(T, usize, SourceSpan)>,
    value: T,
    rm: &Remote,
    span: SourceSpan,
    what: &str,
    configs: &[Config],
    readers: &mut [Reader],
) {
    match slot {
        None => *slot = Some((value, rm.file, span)),
        Some((first, file, at)) if *first != value => {
            let c = &configs[*file];
            let line = c.text[..at.offset()].matches('\n').count() + 1;
            readers[rm.file].d.push(
                Diagnostic::error(
                    Code::ImportConflict,
                    format!("`{}` is reached with {what} {value} here and {what} {first} in {}:{line}", rm.address.value, c.file),
                )
                .label(span, format!("another {what}"))
                .help(format!("bkc reaches each host with one {what}; make the configs agree, or map one address to another host name with --address")),
            );
        }
        Some(_) => {}
    }
}

/// Job names from ids, made valid and unique.
fn name_jobs(st: &mut State, readers: &mut [Reader]) -> Vec<String> {
    let mut taken: Vec<String> = Vec::new();
    for j in &mut st.jobs {
        let base = sanitize(&j.id.value, "job");
        let mut name = base.clone();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        if name != j.id.value {
            let why = if base == j.id.value {
                "another job already has that name".to_string()
            } else {
                "a bkc name holds only letters, digits, `_`, `.` and `-`".to_string()
            };
            readers[j.file].d.push(
                Diagnostic::warning(
                    Code::ImportRenamed,
                    format!("job `{}` is imported as `{name}`", j.id.value),
                )
                .label(j.id.span, "renamed")
                .help(format!("{why}; its unit becomes bkc-{name}.service")),
            );
        }
        j.name = name.clone();
        taken.push(name);
    }
    taken
}

/// A KDL string literal.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_topology(
    configs: &[Config],
    parsed: &[Parsed],
    st: &State,
    hosts: &Hosts,
    names: &[String],
    readers: &mut [Reader],
) -> String {
    let mut o = String::new();
    let files: Vec<_> = configs.iter().map(|c| printable_line(&c.file)).collect();
    let _ = writeln!(
        o,
        "// Imported by `bkc import rsyncdirector` from {}.\n\
         // Lock files and waits keep their paths, so old and new daemons can run side by side.\n\
         // Unlike the old daemon, bkc refuses a --delete sync from a missing or empty source\n\
         // (`allow-empty-source #true` on a sync allows it).\n\n\
         // The old daemon logged in to every host with the one key ssh picks; so do these jobs.\n\
         // Once moved in, give each job a key of its own that may only run its serve: remove\n\
         // this `defaults` (docs/SECURITY.md).\n\
         defaults {{\n    ssh-keys \"operator\"\n}}\n",
        files.join(", ")
    );
    for (name, h) in &hosts.list {
        write_host(&mut o, name, h);
    }
    let mut w = Writer {
        o,
        configs,
        hosts,
        names,
        lock_owner: BTreeMap::new(),
    };
    for (i, j) in st.jobs.iter().enumerate() {
        for lf in &j.lock_files {
            w.lock_owner
                .entry((w.host_of(j, lf), &lf.path))
                .or_insert(i);
        }
    }
    for (ci, p) in parsed.iter().enumerate() {
        let jobs: Vec<(usize, &Job)> = st
            .jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.file == ci)
            .collect();
        for (k, &(i, j)) in jobs.iter().enumerate() {
            let earlier: Vec<usize> = jobs[..k].iter().map(|&(e, _)| e).collect();
            w.job(p, &earlier, i, j, readers);
        }
    }
    w.o
}

fn write_host(o: &mut String, name: &str, h: &Host) {
    let _ = write!(o, "host {}", q(name));
    if let Some(a) = &h.address {
        let _ = write!(o, " address={}", q(a));
    }
    if let Some((p, ..)) = &h.port {
        let _ = write!(o, " port={p}");
    }
    if let Some((u, ..)) = &h.user {
        let _ = write!(o, " user={}", q(u));
    }
    o.push('\n');
}

/// The topology text being written, and what writing a job needs to know of the others.
struct Writer<'a> {
    o: String,
    configs: &'a [Config],
    hosts: &'a Hosts,
    names: &'a [String],
    /// Which job creates each lock file, to tell a wait on another job's lock file.
    lock_owner: BTreeMap<(String, &'a str), usize>,
}

impl Writer<'_> {
    fn host_of(&self, j: &Job, at: &At) -> String {
        match at.remote {
            Some(r) => self.hosts.of_remote[r].clone(),
            None => self.configs[j.file].host.clone(),
        }
    }

    /// Job `i`, written after the `earlier` jobs of its config.
    fn job(&mut self, p: &Parsed, earlier: &[usize], i: usize, j: &Job, readers: &mut [Reader]) {
        let c = &self.configs[j.file];
        let o = &mut self.o;
        // Text from the config goes into `//` comments printable: KDL ends a comment at a form
        // feed or a line separator as at a newline, and the rest would be read as nodes.
        let _ = writeln!(
            o,
            "\n// From {}, job `{}`.",
            printable_line(&c.file),
            printable_line(&j.id.value)
        );
        let _ = writeln!(o, "job {} on={} {{", q(&self.names[i]), q(&c.host));
        if let Some(cron) = &p.cron {
            let _ = writeln!(o, "    cron {}", q(cron));
        }
        if !earlier.is_empty() {
            let _ = writeln!(
                o,
                "    // The old daemon ran the jobs of {} one after another; these keep them apart.",
                printable_line(&c.file)
            );
            for &e in earlier {
                let _ = writeln!(o, "    blocks-on {}", q(&self.names[e]));
            }
        } else if let Some(dir) = &p.pid_file_dir {
            let _ = writeln!(
                o,
                "    // pid_file_dir {}: each bkc job holds its own lock instead.",
                printable_line(dir)
            );
        }
        for lf in &j.lock_files {
            let h = self.host_of(j, lf);
            let _ = write!(self.o, "    lock-file {}", q(&lf.path));
            at_host(&mut self.o, &h, &c.host);
            self.o.push('\n');
        }
        for w in &j.waits {
            self.wait(i, j, w, readers);
        }
        let dest_host = j.remote.map(|r| self.hosts.of_remote[r].as_str());
        for s in &j.syncs {
            let dest = match dest_host {
                Some(h) if h != c.host => format!("{h}:{}", s.dest),
                _ => s.dest.clone(),
            };
            write_sync(&mut self.o, s, &dest);
        }
        self.o.push_str("}\n");
    }

    /// A `blocks-on-file` of job `i`, and a warning when another job creates that file.
    fn wait(&mut self, i: usize, j: &Job, w: &Wait, readers: &mut [Reader]) {
        let own = &self.configs[j.file].host;
        let h = self.host_of(j, &w.at);
        if let Some(&owner) = self.lock_owner.get(&(h.clone(), w.at.path.as_str()))
            && owner != i
        {
            let other = &self.names[owner];
            let _ = writeln!(
                self.o,
                "    // The lock file of job `{other}`: `blocks-on {}` says the same natively.",
                q(other)
            );
            readers[j.file].d.push(
                Diagnostic::warning(
                    Code::ImportWaitsOnJob,
                    format!(
                        "job `{}` waits on the lock file of job `{other}`",
                        self.names[i]
                    ),
                )
                .label(w.span, format!("`{other}` creates this file"))
                .help(format!(
                    "once both run under bkc, replace the blocks-on-file with blocks-on {}",
                    q(other)
                )),
            );
        }
        let o = &mut self.o;
        let _ = write!(o, "    blocks-on-file {}", q(&w.at.path));
        at_host(o, &h, own);
        let _ = write!(o, " wait={}", w.wait);
        if let Some(t) = w.timeout {
            let _ = write!(o, " timeout={t}");
        }
        o.push('\n');
    }
}

fn write_sync(o: &mut String, s: &Sync, dest: &str) {
    let _ = writeln!(o, "    sync {} {} {{", q(&s.source), q(dest));
    o.push_str("        opts");
    for x in &s.opts {
        let _ = write!(o, " {}", q(x));
    }
    o.push('\n');
    if !s.exclude.is_empty() {
        let ex: Vec<String> = s.exclude.iter().map(|x| q(x)).collect();
        let _ = writeln!(o, "        exclude {}", ex.join(" "));
    }
    if let Some(b) = &s.bwlimit {
        let _ = writeln!(o, "        bwlimit {}", q(b));
    }
    o.push_str("    }\n");
}

fn at_host(o: &mut String, host: &str, own: &str) {
    if host != own {
        let _ = write!(o, " host={}", q(host));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(sanitize("local desktop/to:a", "job"), "local-desktop-to-a");
        assert_eq!(sanitize("__x", "job"), "x");
        assert_eq!(sanitize("!!!", "job"), "job");
        assert!(same_name("backup_a", "Backup-A"));
        assert!(!same_name("backup_a", "backup_b"));
        assert_eq!(q("a\"b\\c\n"), r#""a\"b\\c\n""#);
    }
}
