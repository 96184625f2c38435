//! AST -> validated [`Topology`]: resolve names, check paths, translate schedules, derive locks.
//!
//! Every check reports into one [`Diagnostics`] and carries on with what it could resolve, so
//! a file with ten mistakes gets ten diagnostics in one run. A [`Topology`] is returned only when
//! none of them is an error; the one exception, for drawing a broken chain, is
//! [`Compiled::topology_despite_errors`].

mod fresh;
mod jobs;
mod locks;
pub(crate) mod paths;
mod timer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bkc_contract::spec::MAX_SLOTS;
use miette::{NamedSource, SourceSpan};

use crate::diag::{Code, Diagnostic, Diagnostics, Source, did_you_mean};
use crate::schedule::{ScheduleError, parse_duration};
use crate::syntax::{self, ast};
use crate::topology::{Host, Job, SshKeys, Topology};

/// The result of compiling one file: the topology if it had no errors, and every diagnostic.
pub struct Compiled {
    pub topology: Option<Topology>,
    /// When the only errors are circles of waits, the topology anyway, so that `bkc graph
    /// --allow-errors` can show the circle. Such a topology is complete (a circle is a problem
    /// between jobs, not inside one), but it must never be built: runners could wait forever.
    pub topology_despite_errors: Option<Topology>,
    /// Each circle of waits found, as its jobs in waiting order (the first waits on the second,
    /// the last on the first). Every one is also a `bkc::wait_cycle` error.
    pub cycles: Vec<Vec<String>>,
    pub diagnostics: Vec<Diagnostic>,
    pub source: Source,
    /// Wall time of each stage, for `--timings` and the benchmark.
    pub timings: Vec<(&'static str, Duration)>,
}

impl Compiled {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }
}

/// Compile topology text. `name` is what diagnostics call the file.
pub fn compile(name: &str, text: &str) -> Compiled {
    let source: Source = NamedSource::new(name, Arc::<str>::from(text));
    let mut d = Diagnostics::default();
    let start = Instant::now();
    let file = syntax::parse(text, &mut d);
    let parsed = Instant::now();
    let (topology, cycles) = match file.map(|file| analyze(&file, text, &mut d)) {
        Some((t, cycles)) => (Some(t), cycles),
        None => (None, Vec::new()),
    };
    let timings = vec![("parse", parsed - start), ("analyze", parsed.elapsed())];
    let (topology, topology_despite_errors) = if d.has_errors() {
        // A node that failed to lower is often the very one a "has no schedule" or "has nothing
        // to do" warning misses; with errors present those warnings would only be noise.
        d.retain(|x| x.is_error() || !ABSENCE_WARNINGS.contains(&x.code));
        let only_cycles = d.all_errors_are(Code::WaitCycle);
        (None, topology.filter(|_| only_cycles))
    } else {
        (topology, None)
    };
    Compiled {
        topology,
        topology_despite_errors,
        cycles,
        diagnostics: d.finish(&source),
        source,
        timings,
    }
}

/// Settings that apply to every host and job unless overridden, with bkc's defaults filled in.
pub(crate) struct Settings {
    pub user: String,
    pub port: u16,
    pub identity: Option<String>,
    pub lock_dir: String,
    pub state_dir: String,
    pub metrics_dir: Option<String>,
    pub runner: String,
    pub lock_wait: u64,
    pub lock_timeout: u64,
    pub ssh_keys: SshKeys,
    pub max_parallel: Option<u32>,
}

/// Warnings about something missing, dropped when the file has errors (see `compile`).
const ABSENCE_WARNINGS: &[Code] = &[Code::NoSchedule, Code::EmptyJob, Code::NoHostKey];

pub(crate) use bkc_contract::names::KNOWN_HOSTS_PATH as KNOWN_HOSTS;

/// Shared state of one analysis: the source text (to point inside string literals) and the
/// diagnostics sink.
pub(crate) struct Ctx<'a> {
    pub text: &'a str,
    pub d: &'a mut Diagnostics,
    /// The longest gap of each set of calendars met so far: thousands of jobs share a few
    /// schedules, and each gap takes up to a thousand steps of the calendar engine.
    pub gaps: std::collections::HashMap<Vec<String>, Option<u64>>,
}

impl Ctx<'_> {
    pub fn push(&mut self, diag: Diagnostic) {
        self.d.push(diag);
    }

    /// The span of `range` inside the string literal at `span`, when the literal is written
    /// plainly (no escapes), so a label can point at the one bad field; otherwise the whole value.
    pub fn inner(&self, value: &ast::Str, range: std::ops::Range<usize>) -> SourceSpan {
        let raw = self
            .text
            .get(value.span.offset()..value.span.offset() + value.span.len());
        match raw {
            Some(raw)
                if raw.len() == value.value.len() + 2 && raw[1..raw.len() - 1] == value.value =>
            {
                SourceSpan::new(
                    (value.span.offset() + 1 + range.start).into(),
                    range.len().max(1),
                )
            }
            _ => value.span,
        }
    }

    pub fn schedule_error(&mut self, code: Code, value: &ast::Str, e: ScheduleError) {
        let span = match e.range.clone() {
            Some(r) => self.inner(value, r),
            None => value.span,
        };
        self.push(
            Diagnostic::error(code, e.message)
                .label(span, "here")
                .help(e.help),
        );
    }

    pub fn duration(&mut self, value: &ast::Str, allow_zero: bool) -> Option<u64> {
        match parse_duration(&value.value, allow_zero) {
            Ok(v) => Some(v),
            Err(e) => {
                self.schedule_error(Code::InvalidDuration, value, e);
                None
            }
        }
    }

    /// Like [`Ctx::path`], for a path the job's sandbox will make writable (`opens` says what
    /// of it: the path itself, or the directory it is in).
    pub fn writable(&mut self, value: &ast::Str, path: &str, opens: &str) -> bool {
        match paths::writable_problem(opens) {
            None => true,
            Some(why) => {
                let span = self.inner(value, 0..path.len());
                let (label, help) = if paths::normalize(opens) == paths::normalize(path) {
                    (
                        "the job may write here",
                        "choose a directory of the job's own, such as /srv/backup/ or /var/lib/bkc/state",
                    )
                } else {
                    (
                        "the job may write in this file's directory",
                        "put the file in a directory of its own, such as /run/bkc/locks/",
                    )
                };
                self.push(
                    Diagnostic::error(Code::UnsafeWritablePath, why)
                        .label(span, label)
                        .help(help),
                );
                false
            }
        }
    }

    pub fn path(&mut self, value: &ast::Str, path: &str, offset: usize, what: &str) -> bool {
        match paths::path_problem(path) {
            None => true,
            Some(problem) => {
                let span = self.inner(value, offset..offset + path.len());
                self.push(path_diagnostic(problem, path, span, what));
                false
            }
        }
    }
}

/// Names of hosts, jobs and tags: they become unit names and file names.
pub(crate) fn check_name(cx: &mut Ctx, name: &ast::Str, what: &str) -> bool {
    let v = &name.value;
    let ok = bkc_contract::names::is_valid_name(v);
    if !ok {
        cx.push(
            Diagnostic::error(Code::InvalidName, format!("`{v}` is not a valid {what} name"))
                .label(name.span, "invalid name")
                .help(format!(
                    "a {what} name starts with a letter or digit and holds only letters, digits, `_`, `.` and `-` (it becomes part of unit and file names)"
                )),
        );
    }
    ok
}

/// The topology built from everything that resolved (valid only when `d` holds no errors),
/// and the circles of waits found.
fn analyze(file: &ast::File, text: &str, d: &mut Diagnostics) -> (Topology, Vec<Vec<String>>) {
    let mut cx = Ctx {
        text,
        d,
        gaps: std::collections::HashMap::new(),
    };
    let settings = settings(&mut cx, file.defaults.as_ref());
    let hosts = hosts(&mut cx, &file.hosts, &settings);
    let drafts = jobs::jobs(&mut cx, &file.jobs, &hosts, &settings);
    let (jobs, derived, cycles) = locks::derive(&mut cx, &file.jobs, drafts, &hosts, &settings);
    unpinned_hosts(&mut cx, &file.hosts, &hosts, &jobs);
    unit_clashes(&mut cx, &file.jobs, &jobs);
    let topology = Topology {
        hosts,
        jobs,
        derived,
        ssh_keys: settings.ssh_keys,
    };
    (topology, cycles)
}

/// A job `fresh-x` on a host that also gets the freshness check of job `x` (`bkc-fresh-x`)
/// would have units of the same name there.
fn unit_clashes(cx: &mut Ctx, list: &[ast::Job], jobs: &BTreeMap<String, Job>) {
    for j in list {
        let Some(watched) = j.name.value.strip_prefix("fresh-") else {
            continue;
        };
        let (Some(this), Some(other)) = (jobs.get(&j.name.value), jobs.get(watched)) else {
            continue;
        };
        let checked_here = other.freshness.is_some()
            && other.spec.fresh_markers.iter().any(|m| m.host == this.host);
        if checked_here {
            cx.push(
                Diagnostic::error(
                    Code::UnitClash,
                    format!(
                        "job `{}` and the freshness check of job `{watched}` would both be bkc-{}.service on host `{}`",
                        j.name.value, j.name.value, this.host
                    ),
                )
                .label(j.name.span, "this job's units")
                .help(format!(
                    "rename this job: names beginning with `fresh-` are taken by the checks of data that arrives at `{}`",
                    this.host
                )),
            );
        }
    }
}

/// Every host is reached over SSH, by `bkc plan` and `apply` if not by runners: one without a
/// pinned key is trusted on whatever key ssh's own known_hosts holds for it, which is worth a
/// warning. Runners check keys strictly, so for a host they reach it may also stop the runs.
fn unpinned_hosts(
    cx: &mut Ctx,
    list: &[ast::Host],
    hosts: &BTreeMap<String, Host>,
    jobs: &BTreeMap<String, Job>,
) {
    let reached: std::collections::BTreeSet<&str> = jobs
        .values()
        .flat_map(|j| j.spec.hosts.keys().map(String::as_str))
        .collect();
    for h in list {
        let name = h.name.value.as_str();
        let Some(host) = hosts.get(name) else {
            continue;
        };
        if host.host_keys.is_empty() {
            let port = if host.port == 22 {
                String::new()
            } else {
                format!("-p {} ", host.port)
            };
            let (label, without) = if reached.contains(name) {
                (
                    "runners connect here over SSH",
                    "runners accept only a key already in their /etc/ssh/ssh_known_hosts",
                )
            } else {
                (
                    "bkc plan and apply connect here over SSH",
                    "bkc plan and apply trust whatever key your own known_hosts holds for it",
                )
            };
            cx.push(
                Diagnostic::warning(Code::NoHostKey, format!("host `{name}` has no pinned host key"))
                    .label(h.name.span, label)
                    .help(format!(
                        "add host-key \"ssh-ed25519 AAAA…\" (from `ssh-keyscan {port}-t ed25519 {}`); without it {without}",
                        host.address
                    )),
            );
        }
    }
}

fn settings(cx: &mut Ctx, defaults: Option<&ast::Defaults>) -> Settings {
    let mut s = Settings {
        user: "root".into(),
        port: 22,
        identity: None,
        lock_dir: "/run/bkc/locks".into(),
        state_dir: "/var/lib/bkc/state".into(),
        metrics_dir: None,
        runner: "/usr/local/bin/bkc-run".into(),
        lock_wait: 60,
        lock_timeout: 6 * 3600,
        ssh_keys: SshKeys::Restricted,
        max_parallel: None,
    };
    let Some(df) = defaults else { return s };
    if let Some(k) = &df.ssh_keys {
        s.ssh_keys = ssh_keys(cx, k).unwrap_or(s.ssh_keys);
    }
    if let Some(u) = &df.user
        && check_user(cx, u, s.ssh_keys)
    {
        s.user = u.value.clone();
    }
    if let Some(p) = &df.port {
        s.port = port(cx, p).unwrap_or(22);
    }
    for (slot, value, what) in [
        (&mut s.lock_dir, &df.lock_dir, "lock-dir"),
        (&mut s.state_dir, &df.state_dir, "state-dir"),
        (&mut s.runner, &df.runner, "runner"),
    ] {
        if let Some(v) = value
            && cx.path(v, &v.value, 0, what)
            && (what == "runner" || cx.writable(v, &v.value, &v.value))
        {
            *slot = paths::normalize(&v.value).to_string();
        }
    }
    if let Some(id) = &df.identity
        && let Some(why) = bkc_contract::names::ssh_path_problem(&id.value)
    {
        cx.push(
            Diagnostic::error(Code::InvalidPath, format!("the identity path {why}"))
                .label(id.span, "ssh cannot read this path as written")
                .help("move the key to a path without quotes or `%`, such as /etc/bkc/id_ed25519"),
        );
    }
    for (slot, value, what) in [
        (&mut s.identity, &df.identity, "identity"),
        (&mut s.metrics_dir, &df.metrics_dir, "metrics-dir"),
    ] {
        if let Some(v) = value
            && cx.path(v, &v.value, 0, what)
            && (what == "identity" || cx.writable(v, &v.value, &v.value))
        {
            *slot = Some(paths::normalize(&v.value).to_string());
        }
    }
    if let (Some(id), SshKeys::Restricted) = (&df.identity, s.ssh_keys) {
        cx.push(
            Diagnostic::warning(Code::UnusedSetting, "`identity` is not used with restricted keys")
                .label(id.span, "no runner uses this key")
                .help("with ssh-keys \"restricted\" (the default) each job uses its own key, /etc/bkc/keys/<job>; remove `identity`, or write ssh-keys \"operator\" to keep one key for every job while you move in"),
        );
    }
    if let Some(v) = &df.lock_wait {
        s.lock_wait = cx.duration(v, false).unwrap_or(s.lock_wait);
    }
    if let Some(v) = &df.lock_timeout {
        s.lock_timeout = cx.duration(v, false).unwrap_or(s.lock_timeout);
    }
    s.max_parallel = df.max_parallel.as_ref().and_then(|m| max_parallel(cx, m));
    s
}

fn max_parallel(cx: &mut Ctx, m: &ast::Spanned<i128>) -> Option<u32> {
    in_range(
        cx,
        m,
        1..=MAX_SLOTS,
        Code::InvalidMaxParallel,
        format!("max-parallel {} is not a number of jobs", m.value),
        format!("max-parallel takes 1 to {MAX_SLOTS} jobs at once; leave it out for no limit"),
    )
}

fn port(cx: &mut Ctx, p: &ast::Spanned<i128>) -> Option<u16> {
    in_range(
        cx,
        p,
        1..=u16::MAX,
        Code::InvalidPort,
        format!("{} is not a TCP port", p.value),
        "a port is a number from 1 to 65535".into(),
    )
}

/// An integer setting within `range`; otherwise an error at it, saying `what` and `help`.
pub(crate) fn in_range<T>(
    cx: &mut Ctx,
    v: &ast::Spanned<i128>,
    range: std::ops::RangeInclusive<T>,
    code: Code,
    what: String,
    help: String,
) -> Option<T>
where
    T: TryFrom<i128> + PartialOrd,
{
    match T::try_from(v.value) {
        Ok(x) if range.contains(&x) => Some(x),
        _ => {
            cx.push(
                Diagnostic::error(code, what)
                    .label(v.span, "out of range")
                    .help(help),
            );
            None
        }
    }
}

/// Reject what ssh would read as an option or split into two words.
fn check_word(cx: &mut Ctx, v: &ast::Str, what: &str, code: Code) -> bool {
    match bad_word(code, v, what) {
        Some(d) => {
            cx.push(d);
            false
        }
        None => true,
    }
}

/// An address that is not a host name, an IPv4 address or a bracketed IPv6 address
/// (`names::address_problem`; also what `bkc import` checks).
pub(crate) fn bad_address(code: Code, v: &ast::Str) -> Option<Diagnostic> {
    bkc_contract::names::address_problem(&v.value).map(|why| {
        Diagnostic::error(code, format!("`{}` is not a valid host address", v.value))
            .label(v.span, "invalid host address")
            .help(why)
    })
}

fn check_address(cx: &mut Ctx, v: &ast::Str, code: Code) -> bool {
    match bad_address(code, v) {
        Some(d) => {
            cx.push(d);
            false
        }
        None => true,
    }
}

/// A user name that ssh would read as an option or split into two words (also what
/// `bkc import` checks, so an imported topology passes `bkc check`).
pub(crate) fn bad_word(code: Code, v: &ast::Str, what: &str) -> Option<Diagnostic> {
    let bad = !bkc_contract::names::is_valid_user(&v.value);
    bad.then(|| {
        Diagnostic::error(code, format!("`{}` is not a valid {what}", v.value))
            .label(v.span, format!("invalid {what}"))
            .help(format!(
                "a {what} must not be empty, start with `-`, or contain spaces, `@` or control characters"
            ))
    })
}

/// The diagnostic for a path that `paths::path_problem` refuses.
pub(crate) fn path_diagnostic(
    (problem, help): (&str, &str),
    path: &str,
    span: SourceSpan,
    what: &str,
) -> Diagnostic {
    Diagnostic::error(Code::InvalidPath, format!("{problem}: `{path}`"))
        .label(span, format!("{what} must be a plain absolute path"))
        .help(help)
}

fn check_user(cx: &mut Ctx, v: &ast::Str, keys: SshKeys) -> bool {
    if !check_word(cx, v, "user name", Code::InvalidUser) {
        return false;
    }
    if keys == SshKeys::Restricted && !bkc_contract::names::is_file_safe_user(&v.value) {
        cx.push(
            Diagnostic::error(
                Code::InvalidUser,
                format!("`{}` cannot name a file of authorized keys", v.value),
            )
            .label(v.span, "not a plain file name")
            .help("with ssh-keys \"restricted\" (the default) bkc writes /etc/bkc/authorized_keys/<user> on the hosts runners reach: use a user of letters, digits, `_`, `.` and `-`, or ssh-keys \"operator\""),
        );
        return false;
    }
    true
}

/// `ssh-keys "restricted"` or `"operator"`.
fn ssh_keys(cx: &mut Ctx, v: &ast::Str) -> Option<SshKeys> {
    match v.value.as_str() {
        "restricted" => Some(SshKeys::Restricted),
        "operator" => Some(SshKeys::Operator),
        other => {
            let diag = Diagnostic::error(
                Code::InvalidSshKeys,
                format!("`{other}` is not a way to use SSH keys"),
            )
            .label(v.span, "expected `restricted` or `operator`");
            cx.push(match did_you_mean(other, ["restricted", "operator"]) {
                Some(k) => diag.help(format!("did you mean `{k}`?")),
                None => diag.help("restricted: a key per job that may only run `bkc-run serve` on the hosts it reaches (the default); operator: the one `identity` for every job, as before"),
            });
            None
        }
    }
}

pub(crate) const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

fn hosts(cx: &mut Ctx, list: &[ast::Host], s: &Settings) -> BTreeMap<String, Host> {
    let mut out = BTreeMap::new();
    let mut first: BTreeMap<&str, SourceSpan> = BTreeMap::new();
    for h in list {
        if !check_name(cx, &h.name, "host") {
            continue;
        }
        if let Some(prev) = first.get(h.name.value.as_str()) {
            cx.push(
                Diagnostic::error(Code::DuplicateHost, format!("host `{}` is defined twice", h.name.value))
                    .label(h.name.span, "defined again here")
                    .also(*prev, "first defined here")
                    .help("give each host one `host` node; rename one of them if they are different machines"),
            );
            continue;
        }
        first.insert(&h.name.value, h.name.span);
        let address = match &h.address {
            Some(a) if check_address(cx, a, Code::InvalidAddress) => a.value.clone(),
            _ => h.name.value.clone(),
        };
        let user = match &h.user {
            Some(u) if check_user(cx, u, s.ssh_keys) => u.value.clone(),
            _ => s.user.clone(),
        };
        let port = h.port.as_ref().and_then(|p| port(cx, p)).unwrap_or(s.port);
        let max_parallel = match &h.max_parallel {
            Some(m) => max_parallel(cx, m),
            None => s.max_parallel,
        };
        let lock_dir = match &h.lock_dir {
            Some(v)
                if cx.path(v, &v.value, 0, "lock-dir") && cx.writable(v, &v.value, &v.value) =>
            {
                paths::normalize(&v.value).to_string()
            }
            _ => s.lock_dir.clone(),
        };
        let host_keys = h
            .host_keys
            .iter()
            .filter_map(|k| host_key(cx, k, &address))
            .collect();
        let mut tags = Vec::new();
        for t in &h.tags {
            if check_name(cx, t, "tag") {
                tags.push(t.value.clone());
            }
        }
        out.insert(
            h.name.value.clone(),
            Host {
                name: h.name.value.clone(),
                address,
                port,
                user,
                host_keys,
                tags,
                lock_dir,
                max_parallel,
            },
        );
    }
    out
}

/// An SSH public key as `<type> <base64>`, without the comment a .pub file ends with, and the
/// type as written (for a "did you mean" when it is not one of [`KEY_TYPES`]).
pub(crate) fn public_key(value: &str) -> (Option<String>, &str) {
    let mut words = value.split_whitespace();
    let ty = words.next().unwrap_or("");
    let blob = words.next().unwrap_or("");
    let b64 = blob.len() >= 16
        && blob
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='));
    let ok = KEY_TYPES.contains(&ty) && b64 && !value.contains(['\n', '\r']);
    (ok.then(|| format!("{ty} {blob}")), ty)
}

/// A pinned host key as `<type> <base64>`, without the comment a .pub file ends with.
fn host_key(cx: &mut Ctx, k: &ast::Str, address: &str) -> Option<String> {
    let (key, ty) = public_key(&k.value);
    if key.is_some() {
        return key;
    }
    let diag = Diagnostic::error(Code::InvalidHostKey, "this is not an SSH public host key")
        .label(k.span, "expected `<type> <base64>`");
    cx.push(
        match did_you_mean(ty, KEY_TYPES.iter().copied()).filter(|t| *t != ty) {
            Some(t) => diag.help(format!("did you mean the key type `{t}`?")),
            None => diag.help(format!(
                "copy the line from the host's /etc/ssh/ssh_host_ed25519_key.pub (or run `ssh-keyscan -t ed25519 {address}`)"
            )),
        },
    );
    None
}

/// Resolve a host reference, or report it with a "did you mean".
pub(crate) fn resolve_host<'h>(
    cx: &mut Ctx,
    hosts: &'h BTreeMap<String, Host>,
    name: &str,
    span: SourceSpan,
    what: &str,
) -> Option<&'h Host> {
    if let Some(h) = hosts.get(name) {
        return Some(h);
    }
    let mut diag = Diagnostic::error(
        Code::UnknownHost,
        format!("{what} names host `{name}`, which is not defined"),
    )
    .label(span, "unknown host");
    diag = match did_you_mean(name, hosts.keys().map(String::as_str)) {
        Some(s) => diag.help(format!("did you mean `{s}`?")),
        None => diag.help(format!("define it: host \"{name}\" address=\"…\"")),
    };
    cx.push(diag);
    None
}
