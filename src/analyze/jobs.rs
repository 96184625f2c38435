//! Jobs: resolve hosts and paths, check syncs, hooks and settings, and build each job's spec
//! (all but its locks, which need every job at once: see `locks`).

use std::collections::{BTreeMap, BTreeSet};

use bkc_contract::spec::MAX_PRIORITY as PRIORITY;
use miette::SourceSpan;

use super::{
    Ctx, KNOWN_HOSTS, Settings, check_name, fresh, in_range, paths, public_key, resolve_host, timer,
};
use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::schedule::parse_size;
use crate::spec::{
    self, Command, Hook, HookWhen, IoClass, JobSpec, Location, Notify, NotifyEvent, OnFailure,
    Retention, SPEC_VERSION, Snapshot, WaitFile, Watch,
};
use crate::syntax::ast;
use crate::topology::{Host, Job, JobKey, Service, SshKeys};

/// A job whose locks are not derived yet, with what lock derivation needs to know of it.
pub(crate) struct Draft {
    pub job: Job,
    pub ast: usize,
    /// Places the job's syncs read and write, with the span of the sync that does it.
    pub reads: Vec<(Location, SourceSpan)>,
    pub writes: Vec<(Location, SourceSpan)>,
}

pub(crate) fn jobs(
    cx: &mut Ctx,
    list: &[ast::Job],
    hosts: &BTreeMap<String, Host>,
    s: &Settings,
) -> BTreeMap<String, Draft> {
    let mut out: BTreeMap<String, Draft> = BTreeMap::new();
    let mut first: BTreeMap<&str, SourceSpan> = BTreeMap::new();
    // Pinned keys, each with the job that pinned it first.
    let mut pins: BTreeMap<String, (&str, SourceSpan)> = BTreeMap::new();
    for (i, j) in list.iter().enumerate() {
        let name_ok = check_name(cx, &j.name, "job");
        if let Some(prev) = first.get(j.name.value.as_str()) {
            cx.push(
                Diagnostic::error(Code::DuplicateJob, format!("job `{}` is defined twice", j.name.value))
                    .label(j.name.span, "defined again here")
                    .also(*prev, "first defined here")
                    .help("job names become unit names (bkc-<job>.service) and must be unique; rename one"),
            );
            continue;
        }
        first.insert(&j.name.value, j.name.span);
        let host = j.on.as_ref().and_then(|on| {
            resolve_host(
                cx,
                hosts,
                &on.value,
                on.span,
                &format!("job `{}`", j.name.value),
            )
        });
        let draft = job(cx, j, host, hosts, s);
        if let (Some(pinned), Some(k)) = (draft.as_ref().and_then(pinned_key), &j.key) {
            match pins.get(&pinned) {
                Some((other, span)) => cx.push(
                    Diagnostic::error(
                        Code::InvalidJobKey,
                        format!("job `{other}` pins this key too"),
                    )
                    .label(k.span, "pinned again here")
                    .also(*span, "first pinned here")
                    .help("give each job a key of its own: a host lets a key run one job's `bkc-run serve`, and only the first line of a key counts"),
                ),
                None => {
                    pins.insert(pinned, (&j.name.value, k.span));
                }
            }
        }
        if let (true, Some(mut draft)) = (name_ok, draft) {
            draft.ast = i;
            out.insert(j.name.value.clone(), draft);
        }
    }
    out
}

fn job(
    cx: &mut Ctx,
    j: &ast::Job,
    on: Option<&Host>,
    hosts: &BTreeMap<String, Host>,
    s: &Settings,
) -> Option<Draft> {
    description(cx, j);
    let (timer, every) = timer::timer(cx, j);
    let limits = limits(cx, j);
    let freshness = fresh::freshness(cx, j, timer.as_ref(), every.as_ref(), limits.timeout_secs);
    let verify = verify(cx, j);

    // Without its host nothing below can be resolved; the checks above still ran.
    let on = on?;
    let mut scope = Scope::new(on, hosts);
    let syncs: Vec<spec::Sync> = j
        .syncs
        .iter()
        .filter_map(|sy| scope.sync(cx, j, sy, limits.bwlimit.as_ref()))
        .collect();
    nothing_to_do(cx, j);
    let hooks: Vec<Hook> = j.hooks.iter().filter_map(|h| scope.hook(cx, h)).collect();
    let (lock_files, restore_to, wait_files) = scope.places(cx, j, s);
    let watch = scope.watch(cx, j);
    if timer.is_none() && watch.is_none() {
        no_schedule(cx, j);
    }
    let notify: Vec<Notify> = j.notify.iter().filter_map(|n| notify(cx, n)).collect();
    let ping = j.ping.as_ref().and_then(|p| ping(cx, p));
    let fresh_markers = fresh_markers(&on.name, &j.name.value, &syncs);
    let slot = slot(cx, j, on, s);
    let reached = scope.finish(s);
    let key = job_key(cx, j, s, !reached.endpoints.is_empty());
    let identity = identity(s, key.as_ref());

    let spec = JobSpec {
        version: SPEC_VERSION,
        job: j.name.value.clone(),
        host: on.name.clone(),
        state_dir: s.state_dir.clone(),
        metrics_dir: s.metrics_dir.clone(),
        known_hosts: KNOWN_HOSTS.to_string(),
        identity,
        hosts: reached.endpoints,
        every,
        timeout_secs: limits.timeout_secs,
        nice: limits.nice,
        io_class: limits.io_class,
        retries: limits.retries,
        retry_delay_secs: limits.retry_delay_secs,
        locks: Vec::new(),
        lock_files,
        wait_files,
        hooks,
        syncs,
        notify,
        ping,
        fresh_markers,
        restore_to,
        verify,
        slot,
        watch,
    };
    let writes_home = reached.read_write_paths.iter().any(|p| paths::is_home(p));
    Some(Draft {
        job: Job {
            name: j.name.value.clone(),
            host: on.name.clone(),
            description: j.description.as_ref().map(|d| d.value.clone()),
            timer,
            service: Service {
                runner: s.runner.clone(),
                read_write_paths: reached.read_write_paths,
                writes_home,
                timeout_secs: limits.timeout_secs,
            },
            spec,
            blocks_on: Vec::new(),
            expected_duration: limits.expected_duration,
            freshness,
            key,
        },
        ast: 0,
        reads: reached.reads,
        writes: reached.writes,
    })
}

/// What is wrong with a `source-snapshot`: where, a label, and the help.
type Problem = (SourceSpan, &'static str, String);

/// The kind of a `source-snapshot` with what it needs: `dataset` for ZFS, `volume` and `size`
/// for LVM, nothing for btrfs, and nothing a kind does not take.
fn source_snapshot_kind(v: &ast::SourceSnapshot) -> Result<spec::SourceSnapshot, Problem> {
    let given = [
        ("dataset", &v.dataset),
        ("volume", &v.volume),
        ("size", &v.size),
    ];
    let wanted: &[&str] = match v.kind.value.as_str() {
        "btrfs" => &[],
        "zfs" => &["dataset"],
        "lvm" => &["volume", "size"],
        _ => {
            return Err((
                v.kind.span,
                "unknown kind",
                "the kinds are: \"btrfs\", \"zfs\" dataset=\"pool/home\", \"lvm\" volume=\"vg0/home\" size=\"5G\"".into(),
            ));
        }
    };
    for (name, value) in given {
        if let Some(x) = value
            && !wanted.contains(&name)
        {
            return Err((
                x.span,
                "not for this kind",
                format!("`{name}` is for another kind of snapshot; remove it"),
            ));
        }
    }
    let need = |name: &'static str, value: &Option<ast::Str>| {
        let what = match name {
            "dataset" => "the ZFS dataset mounted at the source, such as dataset=\"tank/home\"",
            "volume" => "the LVM volume mounted at the source, such as volume=\"vg0/home\"",
            _ => {
                "room for the changes made while the snapshot lives, such as size=\"5G\" (lvcreate --size)"
            }
        };
        value.as_ref().map(|x| x.value.clone()).ok_or((
            v.kind.span,
            "something is missing",
            format!("\"{}\" needs {name}=\"...\": {what}", v.kind.value),
        ))
    };
    let bad = |x: &Option<ast::Str>, why: &str| -> Problem {
        let at = x.as_ref().map_or(v.kind.span, |x| x.span);
        (at, "not valid", why.to_string())
    };
    Ok(match v.kind.value.as_str() {
        "zfs" => {
            let dataset = need("dataset", &v.dataset)?;
            if !bkc_contract::names::is_zfs_dataset(&dataset) {
                return Err(bad(
                    &v.dataset,
                    "a dataset is pool/name/...: letters, digits and _ - . : separated by single slashes, no @",
                ));
            }
            spec::SourceSnapshot::Zfs { dataset }
        }
        "lvm" => {
            let volume = need("volume", &v.volume)?;
            let size = need("size", &v.size)?;
            if !bkc_contract::names::is_lvm_volume(&volume) {
                return Err(bad(
                    &v.volume,
                    "a volume is VG/LV: letters, digits and + _ . - in each, neither starting with -",
                ));
            }
            if !bkc_contract::names::is_lvm_size(&size) {
                return Err(bad(
                    &v.size,
                    "a size is a number with an optional unit (such as \"5G\" or \"512m\"), or a share of the origin, \"20%ORIGIN\"",
                ));
            }
            spec::SourceSnapshot::Lvm { volume, size }
        }
        _ => spec::SourceSnapshot::Btrfs,
    })
}

fn invalid_source_snapshot(
    v: &ast::SourceSnapshot,
    span: SourceSpan,
    label: &str,
    help: String,
) -> Diagnostic {
    Diagnostic::error(
        Code::InvalidSourceSnapshot,
        format!("`source-snapshot \"{}\"` cannot be used here", v.kind.value),
    )
    .label(span, label.to_string())
    .help(help)
}

/// The job's place among its host's `max-parallel` slots; a warning for a `priority` or
/// `queue-timeout` on a host without them, which nothing would read.
fn slot(cx: &mut Ctx, j: &ast::Job, on: &Host, s: &Settings) -> Option<spec::Slot> {
    let priority = j.priority.as_ref().and_then(|p| priority(cx, p));
    let queue_timeout_secs = j.queue_timeout.as_ref().and_then(|q| cx.duration(q, false));
    let Some(count) = on.max_parallel else {
        let given = [
            j.priority.as_ref().map(|p| (p.span, "priority")),
            j.queue_timeout.as_ref().map(|q| (q.span, "queue-timeout")),
        ];
        for (span, what) in given.into_iter().flatten() {
            cx.push(
                Diagnostic::warning(
                    Code::UnusedSetting,
                    format!("`{what}` has no effect: host `{}` runs any number of jobs at once", on.name),
                )
                .label(span, "only jobs waiting for a slot are ordered or time out")
                .help(format!(
                    "give the host a limit, host \"{}\" max-parallel=2, or `max-parallel` in defaults; or remove `{what}`",
                    on.name
                )),
            );
        }
        return None;
    };
    Some(spec::Slot {
        dir: format!("{}/slots", on.lock_dir),
        count,
        priority: priority.unwrap_or(0),
        queue_timeout_secs,
        wait_secs: s.lock_wait,
    })
}

fn priority(cx: &mut Ctx, p: &ast::Spanned<i128>) -> Option<i32> {
    in_range(
        cx,
        p,
        -PRIORITY..=PRIORITY,
        Code::InvalidPriority,
        format!("priority {} is out of range", p.value),
        format!(
            "priority goes from -{PRIORITY} to {PRIORITY}; jobs without one have 0, and a waiting job with a higher one goes first"
        ),
    )
}

/// The job's scheduled verify, checked; a warning and none when the job has no sync to verify.
fn verify(cx: &mut Ctx, j: &ast::Job) -> Option<spec::ScheduledVerify> {
    let v = j.verify.as_ref()?;
    let verify = timer::verify(cx, v);
    if j.syncs.is_empty() {
        cx.push(
            Diagnostic::warning(Code::UnusedSetting, "this job has no sync to verify")
                .label(v.span, "nothing to compare")
                .help(
                    "verify compares a sync's source with its copy; remove `verify`, or add a sync",
                ),
        );
        return None;
    }
    verify
}

/// The key a job's runner uses: with restricted keys its job's own (none when it reaches no
/// host), with operator keys the `identity` of `defaults`.
fn identity(s: &Settings, key: Option<&JobKey>) -> Option<String> {
    match s.ssh_keys {
        SshKeys::Restricted => key.map(|k| k.path.clone()),
        SshKeys::Operator => s.identity.clone(),
    }
}

fn pinned_key(d: &Draft) -> Option<String> {
    d.job.key.as_ref().and_then(|k| k.pinned.clone())
}

/// The job's own key, when restricted keys are used and the job reaches another host; a `key`
/// that nothing would use is worth a warning.
fn job_key(cx: &mut Ctx, j: &ast::Job, s: &Settings, reaches: bool) -> Option<JobKey> {
    let pinned = j.key.as_ref().and_then(|k| pinned(cx, k));
    if s.ssh_keys == SshKeys::Restricted && reaches {
        return Some(JobKey {
            path: bkc_contract::names::key_path(&j.name.value),
            pinned,
        });
    }
    if let Some(k) = &j.key {
        let (label, help) = if s.ssh_keys == SshKeys::Operator {
            (
                "runners use `identity` with ssh-keys \"operator\"",
                "remove `key`, or the `ssh-keys \"operator\"` of `defaults` when you are done moving in",
            )
        } else {
            (
                "this job reaches no other host",
                "remove `key`: a job whose syncs, hooks and files are all on its own host makes no SSH connection",
            )
        };
        cx.push(
            Diagnostic::warning(Code::UnusedSetting, "the job's `key` is not used")
                .label(k.span, label)
                .help(help),
        );
    }
    None
}

/// A pinned job key: an SSH public key a runner can use unattended.
fn pinned(cx: &mut Ctx, k: &ast::Str) -> Option<String> {
    let (key, ty) = public_key(&k.value);
    let (label, help) = if ty.starts_with("sk-") {
        (
            "a security key",
            "a security key needs a touch for every login, which a timer cannot give; pin an ed25519 key (`ssh-keygen -t ed25519 -N '' -f /etc/bkc/keys/<job>` on the job's host)".to_string(),
        )
    } else if key.is_some() {
        return key;
    } else {
        let help = match did_you_mean(ty, super::KEY_TYPES.iter().copied()).filter(|t| *t != ty) {
            Some(t) => format!("did you mean the key type `{t}`?"),
            None => format!(
                "copy the line of {}/<job>.pub on the job's host, or leave `key` out and let `bkc apply` make the key",
                bkc_contract::names::KEYS_DIR
            ),
        };
        ("expected `<type> <base64>`", help)
    };
    cx.push(
        Diagnostic::error(
            Code::InvalidJobKey,
            "this is not a public key a job can use",
        )
        .label(k.span, label)
        .help(help),
    );
    None
}

fn description(cx: &mut Ctx, j: &ast::Job) {
    if let Some(d) = &j.description
        && (d.value.contains(['\n', '\r', '\0']) || d.value.trim_end().ends_with('\\'))
    {
        cx.push(
            Diagnostic::error(Code::InvalidDescription, "this description cannot go into a unit file")
                .label(d.span, "a line break, NUL or trailing backslash")
                .help("write it on one line, without a backslash at the end (systemd would join the next line to it)"),
        );
    }
}

fn nothing_to_do(cx: &mut Ctx, j: &ast::Job) {
    if j.syncs.is_empty() && j.hooks.is_empty() {
        cx.push(
            Diagnostic::warning(
                Code::EmptyJob,
                format!("job `{}` has nothing to do", j.name.value),
            )
            .label(j.name.span, "no `sync` and no `hook`")
            .help("add a sync: sync \"/data/\" \"backup_a:/srv/backup/data/\""),
        );
    }
}

/// How long a watched path's changes must stop before the job starts, unless `quiet` says.
pub(crate) const DEFAULT_QUIET_SECS: u64 = 60;
/// The longest `quiet`: changes that may wait longer than a day are a schedule's business.
const MAX_QUIET_SECS: u64 = 86_400;

/// The one `quiet` of a job's watches: given on any of them, the same wherever it is given.
fn quiet(cx: &mut Ctx, list: &[ast::Watch]) -> Option<u64> {
    let mut found: Option<(u64, &ast::Str)> = None;
    let mut ok = true;
    for q in list.iter().filter_map(|w| w.quiet.as_ref()) {
        let Some(secs) = cx.duration(q, false) else {
            ok = false;
            continue;
        };
        if secs > MAX_QUIET_SECS {
            cx.push(
                Diagnostic::error(Code::InvalidWatch, "`quiet` is longer than a day")
                    .label(q.span, "too long")
                    .help("changes that may wait a day or more are better served by a schedule: schedule \"daily\""),
            );
            ok = false;
            continue;
        }
        match found {
            Some((first, at)) if first != secs => {
                cx.push(
                    Diagnostic::error(Code::InvalidWatch, "the job's watches give two `quiet` times")
                        .label(q.span, "another quiet time here")
                        .also(at.span, "first given here")
                        .help("a job starts once its changes are quiet, wherever they are: give `quiet` once, or the same on every `watch`"),
                );
                ok = false;
            }
            Some(_) => {}
            None => found = Some((secs, q)),
        }
    }
    ok.then(|| found.map_or(DEFAULT_QUIET_SECS, |(secs, _)| secs))
}

/// A job that names no schedule at all (one whose schedule is broken has an error already).
fn no_schedule(cx: &mut Ctx, j: &ast::Job) {
    if j.schedules.is_empty() && j.crons.is_empty() && j.every.is_none() {
        cx.push(
            Diagnostic::warning(Code::NoSchedule, format!("job `{}` has no schedule", j.name.value))
                .label(j.name.span, "no `schedule`, `cron` or `every`")
                .help("it gets no timer and runs only when started by hand (bkc run); add schedule \"daily\" to run it daily"),
        );
    }
}

/// How a job runs, whatever it does. Checked even when the job's host is unknown.
struct Limits {
    timeout_secs: Option<u64>,
    expected_duration: Option<u64>,
    nice: Option<i32>,
    io_class: Option<IoClass>,
    /// The job's `bwlimit`, for the syncs that set none.
    bwlimit: Option<String>,
    retries: u32,
    retry_delay_secs: u64,
}

fn limits(cx: &mut Ctx, j: &ast::Job) -> Limits {
    let timeout_secs = j.timeout.as_ref().and_then(|v| cx.duration(v, false));
    let expected_duration = j
        .expected_duration
        .as_ref()
        .and_then(|v| cx.duration(v, false));
    let nice = j.nice.as_ref().and_then(|n| nice(cx, n));
    let io_class = j.io_class.as_ref().and_then(|c| io_class(cx, c));
    let bwlimit = j.bwlimit.as_ref().and_then(|b| size(cx, b));
    let (retries, retry_delay_secs) = j.retries.as_ref().map_or((0, 60), |r| retries(cx, r));
    Limits {
        timeout_secs,
        expected_duration,
        nice,
        io_class,
        bwlimit,
        retries,
        retry_delay_secs,
    }
}

fn nice(cx: &mut Ctx, n: &ast::Spanned<i128>) -> Option<i32> {
    in_range(
        cx,
        n,
        -20..=19,
        Code::InvalidNice,
        format!("nice {} is out of range", n.value),
        "niceness goes from -20 (most favoured) to 19 (least); 10 suits backups".into(),
    )
}

fn io_class(cx: &mut Ctx, c: &ast::Str) -> Option<IoClass> {
    match c.value.as_str() {
        "realtime" => Some(IoClass::Realtime),
        "best-effort" => Some(IoClass::BestEffort),
        "idle" => Some(IoClass::Idle),
        other => {
            let known = ["realtime", "best-effort", "idle"];
            cx.push(
                Diagnostic::error(
                    Code::InvalidIoClass,
                    format!("`{other}` is not an I/O scheduling class"),
                )
                .label(c.span, "unknown class")
                .help(match did_you_mean(other, known) {
                    Some(k) => format!("did you mean `{k}`?"),
                    None => "use one of: realtime, best-effort, idle".to_string(),
                }),
            );
            None
        }
    }
}

/// The retry count and the first retry's delay.
fn retries(cx: &mut Ctx, r: &ast::Retries) -> (u32, u64) {
    let count = match u32::try_from(r.count.value) {
        Ok(c) if c <= 100 => c,
        _ => {
            cx.push(
                Diagnostic::error(
                    Code::InvalidRetries,
                    format!("{} retries is out of range", r.count.value),
                )
                .label(r.count.span, "out of range")
                .help("give a count from 0 to 100"),
            );
            0
        }
    };
    let delay = r
        .delay
        .as_ref()
        .and_then(|v| cx.duration(v, false))
        .unwrap_or(60);
    (count, delay)
}

/// What one job reaches, gathered while its syncs, hooks and files resolve: the hosts it talks
/// to and the places it reads and writes.
struct Scope<'h> {
    on: &'h Host,
    hosts: &'h BTreeMap<String, Host>,
    used_hosts: BTreeSet<String>,
    /// Paths the service's sandbox must leave writable on the job's own host.
    rw_paths: Vec<String>,
    reads: Vec<(Location, SourceSpan)>,
    writes: Vec<(Location, SourceSpan)>,
}

/// A [`Scope`] once every part of the job has resolved.
struct Reached {
    read_write_paths: Vec<String>,
    endpoints: BTreeMap<String, spec::Endpoint>,
    reads: Vec<(Location, SourceSpan)>,
    writes: Vec<(Location, SourceSpan)>,
}

impl<'h> Scope<'h> {
    fn new(on: &'h Host, hosts: &'h BTreeMap<String, Host>) -> Scope<'h> {
        Scope {
            on,
            hosts,
            used_hosts: BTreeSet::new(),
            rw_paths: Vec::new(),
            reads: Vec::new(),
            writes: Vec::new(),
        }
    }

    /// The host a part of the job names, or the job's own host when it names none.
    fn host_or_own(
        &self,
        cx: &mut Ctx,
        named: Option<(&str, SourceSpan)>,
        what: &str,
    ) -> Option<&'h Host> {
        match named {
            Some((name, span)) => resolve_host(cx, self.hosts, name, span, what),
            None => Some(self.on),
        }
    }

    /// A sync's end, `host:/path` or `/path` on the job's own host.
    fn locate(&mut self, cx: &mut Ctx, value: &ast::Str, what: &str) -> Option<Location> {
        let (prefix, path) = paths::split_remote(&value.value);
        let named = prefix.map(|p| (p, cx.inner(value, 0..p.len())));
        let host = self.host_or_own(cx, named, what)?;
        let offset = prefix.map_or(0, |p| p.len() + 1);
        if !cx.path(value, path, offset, what) {
            return None;
        }
        self.used_hosts.insert(host.name.clone());
        Some(Location {
            host: host.name.clone(),
            path: path.to_string(),
        })
    }

    fn sync(
        &mut self,
        cx: &mut Ctx,
        j: &ast::Job,
        sy: &ast::Sync,
        job_bwlimit: Option<&String>,
    ) -> Option<spec::Sync> {
        let source = self.locate(cx, &sy.source, "the sync's source");
        let dest = self.locate(cx, &sy.dest, "the sync's destination");
        let (source, dest) = (source?, dest?);
        if !ends_apart(cx, sy, &self.on.name, &source, &dest) {
            return None;
        }
        let (opts, deletes) = opts(cx, sy);
        if source.host != self.on.name || dest.host != self.on.name {
            served_opts(cx, sy);
        }
        let snapshot = snapshot(cx, sy, dest.host != self.on.name);
        let bwlimit = sy
            .bwlimit
            .as_ref()
            .and_then(|b| size(cx, b))
            .or(job_bwlimit.cloned());
        let allow_empty_source = sy
            .allow_empty_source
            .as_ref()
            .or(j.allow_empty_source.as_ref())
            .is_some_and(|a| a.value);
        if dest.host == self.on.name {
            let (_, path) = paths::split_remote(&sy.dest.value);
            if !cx.writable(&sy.dest, &sy.dest.value, path) {
                return None;
            }
            self.rw_paths.push(paths::normalize(&dest.path).to_string());
        }
        let source_snapshot = match &sy.source_snapshot {
            Some(v) => Some(self.source_snapshot(cx, sy, v, &source)?),
            None => None,
        };
        self.reads.push((source.clone(), sy.source.span));
        self.writes.push((dest.clone(), sy.dest.span));
        Some(spec::Sync {
            source,
            dest,
            opts,
            exclude: sy.exclude.iter().map(|e| e.value.clone()).collect(),
            bwlimit,
            deletes,
            allow_empty_source,
            snapshot,
            source_snapshot,
        })
    }

    /// `source-snapshot`: a kind bkc can take, of a source on the job's own host written as a
    /// directory's contents (the snapshot is of the whole subvolume, dataset or volume). A btrfs
    /// snapshot's directory inside the source is the one place there the sandbox opens; ZFS and
    /// LVM snapshots are taken and mounted outside it.
    fn source_snapshot(
        &mut self,
        cx: &mut Ctx,
        sy: &ast::Sync,
        v: &ast::SourceSnapshot,
        source: &Location,
    ) -> Option<spec::SourceSnapshot> {
        let kind = match source_snapshot_kind(v) {
            Ok(k) => k,
            Err((span, label, help)) => {
                cx.push(invalid_source_snapshot(v, span, label, help));
                return None;
            }
        };
        let whole = match kind {
            spec::SourceSnapshot::Btrfs => "subvolume",
            spec::SourceSnapshot::Zfs { .. } => "dataset",
            spec::SourceSnapshot::Lvm { .. } => "volume",
        };
        let place = if source.host != self.on.name {
            Some((
                "the source is on another host",
                "take the snapshot on the source's host: run the job there and push, or drop `source-snapshot` (a pull's source is not frozen yet)".to_string(),
            ))
        } else if !source.path.ends_with('/') {
            Some((
                "the source is copied as a directory of its own",
                format!(
                    "write the source with a trailing slash, \"{}/\": the snapshot is of the whole {whole}, whose contents the sync copies",
                    sy.source.value
                ),
            ))
        } else {
            None
        };
        if let Some((label, help)) = place {
            cx.push(invalid_source_snapshot(v, v.kind.span, label, help));
            return None;
        }
        if kind == spec::SourceSnapshot::Btrfs {
            let dir = bkc_contract::names::source_snapshot_dir(&source.path);
            if !cx.writable(&v.kind, &v.kind.value, &dir) {
                return None;
            }
            self.rw_paths.push(dir);
        }
        Some(kind)
    }

    /// The job's lock files, the directories a restore may write into and its wait files,
    /// each on its host.
    fn places(
        &mut self,
        cx: &mut Ctx,
        j: &ast::Job,
        s: &Settings,
    ) -> (Vec<Location>, Vec<Location>, Vec<WaitFile>) {
        let lock_files = j
            .lock_files
            .iter()
            .filter_map(|l| self.file(cx, &l.path, l.host.as_ref(), "lock-file"))
            .collect();
        let restore_to = j
            .restore_to
            .iter()
            .filter_map(|r| self.restore_to(cx, r))
            .collect();
        let wait_files = j
            .blocks_on_files
            .iter()
            .filter_map(|w| self.wait_file(cx, w, s))
            .collect();
        (lock_files, restore_to, wait_files)
    }

    fn hook(&mut self, cx: &mut Ctx, h: &ast::Hook) -> Option<Hook> {
        let when = hook_when(cx, &h.when);
        let named = h.host.as_ref().map(|n| (n.value.as_str(), n.span));
        let host = self.host_or_own(cx, named, "this hook");
        let on_failure = on_failure(cx, h.on_failure.as_ref(), when);
        if let Some(w) = &h.writes {
            self.hook_writes(cx, w, host);
        }
        let command = hook_command(cx, h)?;
        let (when, host, on_failure) = (when?, host?, on_failure?);
        self.used_hosts.insert(host.name.clone());
        Some(Hook {
            when,
            host: host.name.clone(),
            command,
            on_failure,
        })
    }

    /// A hook's `writes`: opened in the sandbox, and the job's data like a sync's destination.
    fn hook_writes(&mut self, cx: &mut Ctx, w: &ast::Str, host: Option<&Host>) {
        if host.is_some_and(|x| x.name != self.on.name) {
            cx.push(
                Diagnostic::error(
                    Code::InvalidHook,
                    "`writes` applies to hooks on the job's own host",
                )
                .label(w.span, "this hook runs elsewhere")
                .help("remove `writes`: a hook on another host runs outside this job's sandbox"),
            );
        } else if cx.path(w, &w.value, 0, "writes") && cx.writable(w, &w.value, &w.value) {
            self.rw_paths.push(paths::normalize(&w.value).to_string());
            // What a hook writes is the job's data too: another job reading or writing
            // there must be kept apart from this one.
            self.writes.push((
                Location {
                    host: self.on.name.clone(),
                    path: w.value.clone(),
                },
                w.span,
            ));
        }
    }

    /// A `lock-file` or `blocks-on-file` path, on the host it names or the job's own.
    fn file(
        &mut self,
        cx: &mut Ctx,
        path: &ast::Str,
        host: Option<&ast::Str>,
        node: &str,
    ) -> Option<Location> {
        let named = host.map(|n| (n.value.as_str(), n.span));
        let host = self.host_or_own(cx, named, &format!("this {node}"))?;
        if !cx.path(path, &path.value, 0, node) {
            return None;
        }
        self.used_hosts.insert(host.name.clone());
        if host.name == self.on.name {
            // The runner creates the file, or removes a stale one left by a dead process, in
            // its directory on this host.
            if !cx.writable(path, &path.value, &parent(&path.value)) {
                return None;
            }
            self.rw_paths.push(parent(&path.value));
        }
        Some(Location {
            host: host.name.clone(),
            path: path.value.clone(),
        })
    }

    /// A `restore-to` directory: on another host (on its own host a restore needs no leave),
    /// and one the job's key may be let write into.
    fn restore_to(&mut self, cx: &mut Ctx, r: &ast::LockFile) -> Option<Location> {
        let named = r.host.as_ref().map(|n| (n.value.as_str(), n.span));
        let host = self.host_or_own(cx, named, "this restore-to")?;
        if host.name == self.on.name {
            cx.push(
                Diagnostic::warning(
                    Code::UnusedSetting,
                    "a restore on the job's own host needs no `restore-to`",
                )
                .label(r.span, "on the job's host")
                .help("name the host to restore onto with host=\"…\", such as the host of a pull job's source"),
            );
            return None;
        }
        let path = &r.path;
        if !cx.path(path, &path.value, 0, "restore-to")
            || !cx.writable(path, &path.value, &path.value)
        {
            return None;
        }
        self.used_hosts.insert(host.name.clone());
        Some(Location {
            host: host.name.clone(),
            path: path.value.clone(),
        })
    }

    fn wait_file(&mut self, cx: &mut Ctx, w: &ast::BlocksOnFile, s: &Settings) -> Option<WaitFile> {
        let at = self.file(cx, &w.path, w.host.as_ref(), "blocks-on-file");
        let wait = w
            .wait
            .as_ref()
            .and_then(|v| cx.duration(v, false))
            .unwrap_or(s.lock_wait);
        let timeout = w
            .timeout
            .as_ref()
            .and_then(|v| cx.duration(v, false))
            .unwrap_or(s.lock_timeout);
        Some(WaitFile {
            at: at?,
            wait_secs: wait,
            timeout_secs: timeout,
        })
    }

    /// The job's `watch` paths, once its syncs and hooks have said what it reads and writes:
    /// on the job's own host, not where the job writes (each run would start the next), and
    /// with a warning when outside every source the job copies.
    fn watch(&mut self, cx: &mut Ctx, j: &ast::Job) -> Option<Watch> {
        if j.watch.is_empty() {
            return None;
        }
        let quiet_secs = quiet(cx, &j.watch);
        let mut paths = Vec::new();
        let mut ok = true;
        for w in &j.watch {
            match self.watched(cx, j, w) {
                Some(p) => paths.push(p),
                None => ok = false,
            }
        }
        Some(Watch {
            paths: minimal_cover(paths),
            quiet_secs: quiet_secs.filter(|_| ok)?,
            trigger: bkc_contract::names::watch_trigger(&j.name.value),
        })
    }

    /// One `watch` path, checked.
    fn watched(&mut self, cx: &mut Ctx, j: &ast::Job, w: &ast::Watch) -> Option<String> {
        let value = &w.path;
        let (prefix, path) = paths::split_remote(&value.value);
        let named = prefix.map(|p| (p, cx.inner(value, 0..p.len())));
        let host = self.host_or_own(cx, named, "this watch")?;
        if host.name != self.on.name {
            cx.push(
                Diagnostic::error(Code::InvalidWatch, "a watch cannot see files on another host")
                    .label(value.span, format!("on `{}`", host.name))
                    .help(format!(
                        "the watcher runs on the job's host, `{}`, and sees only its files: run a job on `{}` that pushes from there and watch it there, or drop this `watch`",
                        self.on.name, host.name
                    )),
            );
            return None;
        }
        let offset = prefix.map_or(0, |p| p.len() + 1);
        if !cx.path(value, path, offset, "watch") {
            return None;
        }
        let path = paths::normalize(path).to_string();
        let here = |l: &Location| l.host == self.on.name;
        if let Some((_, span)) = self
            .writes
            .iter()
            .find(|(l, _)| here(l) && paths::overlaps(&l.path, &path))
        {
            cx.push(
                Diagnostic::error(Code::InvalidWatch, "the job writes where it watches")
                    .label(value.span, "watched here")
                    .also(*span, "written by the job here")
                    .help("each run would change what it watches and start the next one: watch the data the job copies, not where it copies it to"),
            );
            return None;
        }
        let within = self
            .reads
            .iter()
            .any(|(l, _)| here(l) && paths::is_ancestor_or_same(paths::normalize(&l.path), &path));
        if !within && !j.syncs.is_empty() {
            cx.push(
                Diagnostic::warning(
                    Code::WatchOutsideSource,
                    "this watch is outside every source the job copies from",
                )
                .label(value.span, "a change here starts the job")
                .help("a run copies only its syncs' sources: watch a source (or a path inside one) on the job's host, or drop this `watch` if nothing here is copied"),
            );
        }
        Some(path)
    }

    fn finish(mut self, s: &Settings) -> Reached {
        self.rw_paths.push(self.on.lock_dir.clone());
        self.rw_paths.push(s.state_dir.clone());
        self.rw_paths.extend(s.metrics_dir.clone());
        self.used_hosts.remove(&self.on.name);
        let endpoints = self
            .used_hosts
            .iter()
            .map(|h| (h.clone(), endpoint(&self.hosts[h], &s.runner)))
            .collect();
        Reached {
            read_write_paths: minimal_cover(self.rw_paths),
            endpoints,
            reads: self.reads,
            writes: self.writes,
        }
    }
}

/// Whether rsync can copy between these two ends: one of them on the job's host, and neither
/// inside the other.
fn ends_apart(cx: &mut Ctx, sy: &ast::Sync, on: &str, source: &Location, dest: &Location) -> bool {
    if source.host != on && dest.host != on {
        cx.push(
            Diagnostic::error(Code::BothRemote, "both ends of this sync are on other hosts")
                .label(sy.source.span, format!("on `{}`", source.host))
                .also(sy.dest.span, format!("on `{}`", dest.host))
                .help(format!(
                    "rsync copies between the local host and at most one remote; run the job on one end: on=\"{}\"",
                    source.host
                )),
        );
        return false;
    }
    if source.host == dest.host && paths::normalize(&source.path) == paths::normalize(&dest.path) {
        cx.push(
            Diagnostic::error(Code::SyncToItself, "this sync copies a path onto itself")
                .label(sy.dest.span, "same place as the source")
                .also(sy.source.span, "source")
                .help("the destination must be another directory or another host"),
        );
        return false;
    }
    if source.host == dest.host && paths::overlaps(&source.path, &dest.path) {
        cx.push(
            Diagnostic::error(Code::SyncOverlap, "the destination and the source contain one another")
                .label(sy.dest.span, "inside the source, or around it")
                .also(sy.source.span, "source")
                .help("rsync would copy its own output again on every run; put the destination outside the source"),
        );
        return false;
    }
    true
}

fn hook_when(cx: &mut Ctx, when: &ast::Str) -> Option<HookWhen> {
    match when.value.as_str() {
        "before" => Some(HookWhen::Before),
        "after" => Some(HookWhen::After),
        other => {
            cx.push(
                Diagnostic::error(Code::InvalidHook, format!("`{other}` is not a hook time"))
                    .label(when.span, "expected `before` or `after`")
                    .help(format!(
                        "write hook \"before\" … or hook \"after\" …{}",
                        did_you_mean(other, ["before", "after"])
                            .map_or(String::new(), |s| format!(" (did you mean `{s}`?)"))
                    )),
            );
            None
        }
    }
}

/// A hook's `on-failure`; without one, a failed `before` hook stops the run and a failed
/// `after` hook marks it failed.
fn on_failure(cx: &mut Ctx, given: Option<&ast::Str>, when: Option<HookWhen>) -> Option<OnFailure> {
    match given.map(|o| (o, o.value.as_str())) {
        None if when == Some(HookWhen::Before) => Some(OnFailure::Break),
        None => Some(OnFailure::Continue),
        Some((_, "ignore")) => Some(OnFailure::Ignore),
        Some((_, "continue")) => Some(OnFailure::Continue),
        Some((_, "break")) => Some(OnFailure::Break),
        Some((o, other)) => {
            cx.push(
                Diagnostic::error(Code::InvalidHook, format!("`{other}` is not a failure policy"))
                    .label(o.span, "unknown policy")
                    .help("use ignore (go on), continue (go on, mark the run failed) or break (stop the run)"),
            );
            None
        }
    }
}

/// One string is a shell line; several are an argv.
fn hook_command(cx: &mut Ctx, h: &ast::Hook) -> Option<Command> {
    command(
        cx,
        &h.command,
        Code::InvalidHook,
        "give the command line: hook \"before\" \"pg_dumpall -f /var/backups/db.sql\"",
    )
}

/// A hook's or a notification's command: one string is a shell line, several an argv.
fn command(cx: &mut Ctx, words: &[ast::Str], code: Code, help: &str) -> Option<Command> {
    let first = words.first()?;
    if words.iter().any(|c| c.value.contains('\0')) || first.value.trim().is_empty() {
        cx.push(
            Diagnostic::error(code, "the command is empty or contains NUL")
                .label(first.span, "here")
                .help(help.to_string()),
        );
        return None;
    }
    Some(match words {
        [one] => Command::Shell(one.value.clone()),
        many => Command::Argv(many.iter().map(|c| c.value.clone()).collect()),
    })
}

const NOTIFY_EVENTS: [NotifyEvent; 4] = [
    NotifyEvent::Failure,
    NotifyEvent::Stale,
    NotifyEvent::Recovery,
    NotifyEvent::Success,
];

/// `notify on="failure,recovery" COMMAND...`.
fn notify(cx: &mut Ctx, n: &ast::Notify) -> Option<Notify> {
    let mut on = Vec::new();
    let mut ok = true;
    if let Some(words) = &n.on {
        for word in words.value.split(',').map(str::trim) {
            match NOTIFY_EVENTS.iter().find(|e| e.as_str() == word) {
                Some(e) if !on.contains(e) => on.push(*e),
                Some(_) => {}
                None => {
                    ok = false;
                    let names = NOTIFY_EVENTS.map(NotifyEvent::as_str);
                    cx.push(
                        Diagnostic::error(
                            Code::InvalidNotify,
                            format!("`{word}` is not an event bkc notifies of"),
                        )
                        .label(words.span, "unknown event")
                        .help(match did_you_mean(word, names) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!(
                                "use one or more of {}, separated by commas",
                                names.join(", ")
                            ),
                        }),
                    );
                }
            }
        }
    }
    on.sort();
    let command = command(
        cx,
        &n.command,
        Code::InvalidNotify,
        "give the command: notify on=\"failure\" \"/usr/local/bin/page-me\"",
    )?;
    (ok && !on.is_empty()).then_some(Notify { on, command })
}

/// A healthchecks.io-style ping URL: the runner hands it to curl, so it must be one plain
/// http(s) URL.
fn ping(cx: &mut Ctx, p: &ast::Str) -> Option<String> {
    let v = p.value.as_str();
    let scheme_ok = v.starts_with("https://") || v.starts_with("http://");
    let host_ok = v
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
    let plain = !v.chars().any(|c| c.is_whitespace() || c.is_control());
    if scheme_ok && host_ok && plain && v.len() <= 2048 {
        return Some(v.trim_end_matches('/').to_string());
    }
    cx.push(
        Diagnostic::error(Code::InvalidUrl, format!("`{v}` is not an http(s) URL"))
            .label(p.span, "not a URL bkc can ping")
            .help("give the check's URL as healthchecks.io shows it: ping \"https://hc-ping.com/<uuid>\""),
    );
    None
}

/// The file a successful run leaves in each destination on another host, for that host's
/// freshness check (`bkc-fresh-<job>`).
pub(crate) fn marker_path(dest: &str, job: &str) -> String {
    let dir = paths::normalize(dest).trim_end_matches('/');
    format!("{dir}/.bkc-fresh.{job}")
}

fn fresh_markers(on: &str, job: &str, syncs: &[spec::Sync]) -> Vec<Location> {
    let mut out: Vec<Location> = syncs
        .iter()
        .filter(|s| s.dest.host != on)
        .map(|s| Location {
            host: s.dest.host.clone(),
            path: marker_path(&s.dest.path, job),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A snapshot's retention, checked against the `opts` it would fight with. Snapshots pushed to
/// another host are append-only unless the file says `append-only=#false`; on the job's own host
/// the runner keeps them itself and the setting has nothing to guard against.
fn snapshot(cx: &mut Ctx, sy: &ast::Sync, pushed: bool) -> Option<Snapshot> {
    let sn = sy.snapshot.as_ref()?;
    let r = retention(cx, sn);
    let append_only = pushed && sn.append_only.as_ref().is_none_or(|a| a.value);
    if let Some(o) = sy
        .opts
        .iter()
        .flatten()
        .find(|o| o.value.starts_with("--link-dest"))
    {
        cx.push(
            Diagnostic::error(
                Code::ConflictingOption,
                "`--link-dest` is set by `snapshot`",
            )
            .label(o.span, "set here too")
            .help("remove it: snapshots link against the newest complete snapshot themselves"),
        );
    }
    Some(Snapshot {
        retention: r,
        append_only,
    })
}

/// How the runner reaches `h` over SSH, and the bkc-run that serves it there.
pub(super) fn endpoint(h: &Host, runner: &str) -> spec::Endpoint {
    spec::Endpoint {
        address: h.address.clone(),
        port: h.port,
        user: h.user.clone(),
        runner: runner.to_string(),
    }
}

fn parent(p: &str) -> String {
    let p = paths::normalize(p);
    match p.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => p[..i].to_string(),
    }
}

/// Sorted, without duplicates and without paths inside another listed path.
fn minimal_cover(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in v {
        if !out.iter().any(|o| paths::is_ancestor_or_same(o, &p)) {
            out.push(p);
        }
    }
    out
}

fn size(cx: &mut Ctx, v: &ast::Str) -> Option<String> {
    match parse_size(&v.value) {
        Ok(s) => Some(s),
        Err(e) => {
            cx.schedule_error(Code::InvalidSize, v, e);
            None
        }
    }
}

/// Options bkc sets itself and must not be overridden, with why.
const RESERVED: &[(&str, &str)] = &[
    (
        "-e",
        "bkc sets the ssh command itself; set `port` and `user` on the host instead",
    ),
    (
        "--rsh",
        "bkc sets the ssh command itself; set `port` and `user` on the host instead",
    ),
    ("--bwlimit", "use `bwlimit \"5M\"` on the sync or the job"),
    ("--exclude", "use `exclude \"pattern\"` on the sync"),
    ("--dry-run", "use `bkc-run --dry-run` to try a job"),
    ("-n", "use `bkc-run --dry-run` to try a job"),
];

/// Options whose far side `bkc-run serve` refuses (docs/SERVE.md), with why: rsync would follow
/// symlinks, name a path serve does not check, delete what it reads, or hide its paths.
const REFUSED_BY_SERVE: &[(&str, &str)] = &[
    ("-L", "it follows symlinks out of the tree"),
    ("--copy-links", "it follows symlinks out of the tree"),
    ("--copy-unsafe-links", "it follows symlinks out of the tree"),
    ("-k", "it follows symlinks out of the tree"),
    ("--copy-dirlinks", "it follows symlinks out of the tree"),
    ("-K", "it follows symlinks out of the tree"),
    ("--keep-dirlinks", "it follows symlinks out of the tree"),
    ("--remove-source-files", "it deletes what it reads"),
    ("--backup-dir", "it names a path on the far host"),
    ("-T", "it names a path on the far host"),
    ("--temp-dir", "it names a path on the far host"),
    ("--partial-dir", "it names a path on the far host"),
    ("--compare-dest", "it names a path on the far host"),
    ("--copy-dest", "it names a path on the far host"),
    ("--files-from", "it names a path on the far host"),
    ("--copy-devices", "it reads a device's contents"),
    ("--write-devices", "it writes a device's contents"),
    ("-s", "it sends the paths where serve cannot check them"),
    (
        "--protect-args",
        "it sends the paths where serve cannot check them",
    ),
    (
        "--secluded-args",
        "it sends the paths where serve cannot check them",
    ),
    ("-R", "it changes what the path serve checks means"),
    ("--relative", "it changes what the path serve checks means"),
];

/// A sync with a remote end goes through `bkc-run serve` there, which refuses these options:
/// say so now rather than at the first run. Short options count inside a cluster (`-avL`).
fn served_opts(cx: &mut Ctx, sy: &ast::Sync) {
    for o in sy.opts.iter().flatten() {
        let v = o.value.as_str();
        let key = v.split('=').next().unwrap_or(v);
        let hit = match key.strip_prefix('-') {
            Some(cluster) if !cluster.starts_with('-') => REFUSED_BY_SERVE
                .iter()
                .find(|(r, _)| r.len() == 2 && cluster.contains(&r[1..])),
            _ => REFUSED_BY_SERVE.iter().find(|(r, _)| *r == key),
        };
        if let Some((name, why)) = hit {
            cx.push(
                Diagnostic::error(
                    Code::RefusedOption,
                    format!("`{name}` cannot go to the far side of a sync"),
                )
                .label(o.span, "refused by bkc-run serve there")
                .help(format!(
                    "remove it: {why}, and bkc-run serve, which runs rsync on the other host, refuses that (docs/SERVE.md)"
                )),
            );
        }
    }
}

fn opts(cx: &mut Ctx, sy: &ast::Sync) -> (Vec<String>, bool) {
    let Some(list) = &sy.opts else {
        return (vec!["-a".to_string()], false);
    };
    let mut out = Vec::new();
    let mut deletes = false;
    for o in list {
        let v = o.value.as_str();
        let key = v.split('=').next().unwrap_or(v);
        if !v.starts_with('-') {
            cx.push(
                Diagnostic::error(Code::InvalidOption, format!("`{v}` is not an rsync option"))
                    .label(o.span, "options start with `-`")
                    .help("paths belong in `sync \"source\" \"destination\"`; options look like \"-a\" or \"--delete\""),
            );
            continue;
        }
        if let Some((_, why)) = RESERVED.iter().find(|(r, _)| *r == key) {
            cx.push(
                Diagnostic::error(
                    Code::ConflictingOption,
                    format!("`{v}` cannot be set in `opts`"),
                )
                .label(o.span, "reserved")
                .help(*why),
            );
            continue;
        }
        if key == "--del" || key.starts_with("--delete") {
            deletes = true;
        }
        out.push(v.to_string());
    }
    (out, deletes)
}

fn retention(cx: &mut Ctx, sn: &ast::Snapshot) -> Retention {
    let mut keep = |v: &Option<ast::Spanned<i128>>| {
        v.as_ref().and_then(|n| match u32::try_from(n.value) {
            Ok(c) if c >= 1 => Some(c),
            _ => {
                cx.push(
                    Diagnostic::error(
                        Code::InvalidRetention,
                        format!("keep {} is out of range", n.value),
                    )
                    .label(n.span, "out of range")
                    .help("keep at least 1; leave the setting out to not keep by that period"),
                );
                None
            }
        })
    };
    let r = Retention {
        keep_last: keep(&sn.keep_last),
        keep_daily: keep(&sn.keep_daily),
        keep_weekly: keep(&sn.keep_weekly),
        keep_monthly: keep(&sn.keep_monthly),
    };
    let given = [
        &sn.keep_last,
        &sn.keep_daily,
        &sn.keep_weekly,
        &sn.keep_monthly,
    ];
    if given.iter().all(|g| g.is_none()) {
        cx.push(
            Diagnostic::warning(Code::NoRetention, "this snapshot keeps every copy forever")
                .label(sn.span, "no keep-* setting")
                .help("add a retention such as keep-daily=7 keep-weekly=4 keep-monthly=12"),
        );
    }
    r
}
