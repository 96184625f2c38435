//! `bkc plan`: what a host has ([`observe`], one round trip), what the topology wants, and the
//! difference ([`compare`], pure), shown by job with unified diffs ([`render`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use bkc_contract::Mode;
pub use bkc_contract::plan::{
    Action, HostPlan, Item, ItemKind, PLAN_VERSION, PlanFile, PlannedHost,
};

use super::transport::{Target, Transport, run};
use super::{Desired, HostError, quote, unframe};
use crate::emit::{MANIFEST_PATH, Manifest, sha256_hex};
use crate::printable::printable_line;

const OBSERVE: &str = include_str!("observe.sh");

/// What one host has now, as read by [`observe`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// `uname -m`.
    pub arch: String,
    /// The generation the host is on (0: never applied).
    pub generation: u64,
    /// Generations kept for rollback.
    pub kept: Vec<u64>,
    /// Activations that started and never finished (the next apply rolls them back).
    pub interrupted: Vec<u64>,
    /// Runner path -> its sha256, or `None` when missing.
    pub runners: BTreeMap<String, Option<String>>,
    pub manifest_bytes: Option<Vec<u8>>,
    /// The manifest, when there is one and it can be read.
    pub manifest: Option<Manifest>,
    /// Every bkc file present: path -> (sha256, mode; none when the host's answer had none).
    pub files: BTreeMap<String, (String, Option<Mode>)>,
    /// bkc timers present: name -> `enabled`, `disabled`, ...
    pub units: BTreeMap<String, String>,
}

impl Observed {
    pub fn manifest_sha(&self) -> Option<String> {
        self.manifest_bytes.as_deref().map(sha256_hex)
    }

    /// A hash of everything a plan depends on, to tell whether a host changed since a saved
    /// plan. Whether a backup runs now is not part of it: a backup starting is not a change.
    pub fn fingerprint(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "gen {} {:?}", self.generation, self.interrupted);
        let _ = writeln!(s, "manifest {:?}", self.manifest_sha());
        for (p, (h, m)) in &self.files {
            let _ = writeln!(s, "file {p} {h} {:o}", m.map_or(0, Mode::bits));
        }
        for (u, st) in &self.units {
            let _ = writeln!(s, "unit {u} {st}");
        }
        for (p, h) in &self.runners {
            let _ = writeln!(s, "runner {p} {h:?}");
        }
        sha256_hex(s.as_bytes())
    }
}

/// Read what `t`'s host has, in one round trip.
pub fn observe(t: &dyn Transport, runner_paths: &[String]) -> Result<Observed, HostError> {
    let args: Vec<String> = runner_paths.iter().map(|p| quote(p)).collect();
    let script = format!("set -- {}\n{OBSERVE}", args.join(" "));
    let out = run(t, &script, b"")
        .map_err(|e| HostError::new(t.host(), format!("cannot start ssh: {e}")))?;
    parse_observed(t.host(), &out.stdout).map_err(|why| {
        let stderr = out.stderr.trim();
        let message = if out.code == Some(255) || !stderr.is_empty() && why == "no answer" {
            format!("cannot reach the host: {stderr}")
        } else {
            format!(
                "{why}{}",
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(" ({stderr})")
                }
            )
        };
        HostError::new(t.host(), message)
    })
}

/// What `host` answered to observe.sh, checked line by line: anything it does not expect is
/// refused. Public for the fuzz target that feeds it arbitrary answers.
pub fn parse_observed(host: &str, stdout: &[u8]) -> Result<Observed, String> {
    let framed = unframe(stdout)?;
    if framed.lines.last().map(String::as_str) != Some("end") {
        return Err(if framed.lines.is_empty() {
            "no answer".into()
        } else {
            "the host's answer was cut short".into()
        });
    }
    let mut o = Observed::default();
    let mut shas: BTreeMap<String, String> = BTreeMap::new();
    let mut modes: BTreeMap<String, Mode> = BTreeMap::new();
    // Every fact is checked against what observe.sh prints: a host that answers anything else
    // is refused, not shown.
    let refuse = |line: &str| format!("the host answered `{}`", printable_line(line));
    for line in &framed.lines {
        let mut w = line.split_whitespace();
        let (Some(key), rest) = (w.next(), w.collect::<Vec<&str>>()) else {
            continue;
        };
        match (key, rest.as_slice()) {
            ("arch", [a]) if is_word(a) => o.arch = a.to_string(),
            ("gen", [g]) => o.generation = g.parse().map_err(|_| refuse(line))?,
            ("kept", [g]) => o.kept.push(g.parse().map_err(|_| refuse(line))?),
            ("interrupted", [g]) => o.interrupted.push(g.parse().map_err(|_| refuse(line))?),
            ("runner", [h, p]) if (*h == "-" || is_sha256(h)) && is_plain_path(p) => {
                let sha = (*h != "-").then(|| h.to_string());
                o.runners.insert(p.to_string(), sha);
            }
            ("sha", [h, p]) if is_sha256(h) && owned(&format!("/{p}")) => {
                shas.insert(format!("/{p}"), h.to_string());
            }
            ("mode", [m, p]) if owned(&format!("/{p}")) => {
                let m = m.parse().map_err(|_| refuse(line))?;
                modes.insert(format!("/{p}"), m);
            }
            ("unit", [u, st]) if owned(&format!("/etc/systemd/system/{u}")) && is_word(st) => {
                o.units.insert(u.to_string(), st.to_string());
            }
            ("end", []) => {}
            _ => return Err(refuse(line)),
        }
    }
    o.kept.sort_unstable();
    for (p, h) in shas {
        let m = modes.get(&p).copied();
        o.files.insert(p, (h, m));
    }
    if let Some(bytes) = framed.files.get(MANIFEST_PATH) {
        o.manifest = serde_json::from_slice::<Manifest>(bytes)
            .ok()
            .filter(|m| m.host == host);
        // A manifest is the list of what apply may remove: one that claims a file outside
        // bkc's own is refused rather than believed.
        if let Some(p) = o
            .manifest
            .iter()
            .flat_map(|m| m.files.keys())
            .find(|p| !owned(p))
        {
            return Err(format!(
                "the host's manifest lists `{}`, which is not a file of bkc's",
                printable_line(p)
            ));
        }
        o.manifest_bytes = Some(bytes.clone());
    }
    Ok(o)
}

/// A word as uname and systemctl print them (`x86_64`, `enabled`, `enabled-runtime`).
fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An absolute path of plain characters, with no `.` or `..` step and no empty one.
fn is_plain_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() <= 4096
        && p[1..]
            .split('/')
            .all(|step| !step.is_empty() && step != "." && step != "..")
        && p.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.' | b'@' | b'+')
        })
}

/// Whether `p` is a path bkc writes on a host: under /etc/bkc/, or a `bkc-` unit.
pub fn owned(p: &str) -> bool {
    is_plain_path(p)
        && (p.starts_with("/etc/bkc/")
            || p.strip_prefix("/etc/systemd/system/bkc-")
                .is_some_and(|u| !u.contains('/')))
}

/// Fetch the current content of `paths` (for diffs), in one more round trip.
pub fn fetch(t: &dyn Transport, paths: &[String]) -> Result<BTreeMap<String, Vec<u8>>, HostError> {
    let mut script = String::from(
        "get() { if [ -f \"$R$1\" ]; then echo \"F $(wc -c < \"$R$1\") $1\"; cat \"$R$1\"; fi; }\n",
    );
    for p in paths {
        let _ = writeln!(script, "get {}", quote(p));
    }
    script.push_str("echo end\n");
    let out = run(t, &script, b"")
        .map_err(|e| HostError::new(t.host(), format!("cannot start ssh: {e}")))?;
    let framed = unframe(&out.stdout).map_err(|e| HostError::new(t.host(), e))?;
    if framed.lines.last().map(String::as_str) != Some("end") {
        return Err(HostError::new(
            t.host(),
            format!("cannot read the deployed files: {}", out.stderr.trim()),
        ));
    }
    Ok(framed.files)
}

/// `+`, `~` or `-`, as a plan shows an action.
fn sign(a: Action) -> char {
    match a {
        Action::Add => '+',
        Action::Change => '~',
        Action::Remove => '-',
    }
}

pub use bkc_contract::names::job_of;
use bkc_contract::names::timer_of;

/// One path's action (if any) and its drift note (if any).
type PathDiff<'a> = (&'a String, Option<Action>, Option<String>);

/// Compare what `obs` has with what `want` says; `runner` is the local bkc-run's sha256 and
/// architecture (none: leave the runner alone).
pub fn compare(want: &Desired, obs: &Observed, runner: Option<(&str, &str)>) -> HostPlan {
    let mut plan = HostPlan::default();
    let listed = |p: &str| obs.manifest.as_ref().and_then(|m| m.files.get(p));
    // Per path: the action, and what was done behind bkc's back.
    let mut per_path: BTreeMap<String, (Option<Action>, Option<String>)> = BTreeMap::new();
    let all: BTreeSet<&String> = want
        .files
        .files
        .keys()
        .chain(obs.files.keys())
        .filter(|p| p.as_str() != MANIFEST_PATH)
        .collect();
    for path in all {
        let wanted = want.files.files.get(path);
        let have = obs.files.get(path);
        let drift = match (listed(path), have) {
            (Some(_), None) => Some(format!("{path} was deleted by hand")),
            (Some(e), Some((h, _))) if &e.sha256 != h => Some(format!("{path} was edited by hand")),
            (None, Some(_)) => Some(format!("{path} is not in the manifest")),
            _ => None,
        };
        let action = match (wanted, have) {
            (Some(_), None) => Some(Action::Add),
            (Some(f), Some((h, m))) if sha256_hex(&f.bytes) != *h || Some(f.mode) != *m => {
                plan.changed.push(path.clone());
                Some(Action::Change)
            }
            (None, Some(_)) => {
                plan.remove.push(path.clone());
                Some(Action::Remove)
            }
            _ => None,
        };
        per_path.insert(path.clone(), (action, drift));
    }
    // Group by job.
    let mut jobs: BTreeMap<String, Vec<PathDiff>> = BTreeMap::new();
    let mut loose = Vec::new();
    for (path, (action, drift)) in &per_path {
        match job_of(path) {
            Some(job) => {
                jobs.entry(job.to_string())
                    .or_default()
                    .push((path, *action, drift.clone()))
            }
            None => loose.push((path, *action, drift.clone())),
        }
    }
    for (job, files) in jobs {
        let wanted = files
            .iter()
            .any(|(p, _, _)| want.files.files.contains_key(*p));
        let present = files.iter().any(|(p, _, _)| obs.files.contains_key(*p));
        let mut drift: Vec<String> = files.iter().filter_map(|(_, _, d)| d.clone()).collect();
        // A timer that is kept but switched off.
        for (p, _, _) in &files {
            if let Some(t) = timer_of(p)
                && want.files.files.contains_key(*p)
                && obs.files.contains_key(*p)
                && obs.units.get(t).map(String::as_str) != Some("enabled")
            {
                drift.push(format!(
                    "timer {t} is {}",
                    obs.units.get(t).map_or("not loaded", String::as_str)
                ));
            }
        }
        let touched: Vec<(Action, String)> = files
            .iter()
            .filter_map(|(p, a, _)| a.map(|a| (a, (*p).clone())))
            .collect();
        if touched.is_empty() && drift.is_empty() {
            continue;
        }
        let action = match (wanted, present) {
            (true, false) => Action::Add,
            (false, _) => Action::Remove,
            (true, true) => Action::Change,
        };
        plan.items.push(Item {
            action,
            kind: ItemKind::Job,
            name: job,
            files: touched,
            drift,
        });
    }
    for (path, action, drift) in loose {
        if let Some(a) = action {
            plan.items.push(Item {
                action: a,
                kind: ItemKind::File,
                name: path.clone(),
                files: vec![(a, path.clone())],
                drift: drift.into_iter().collect(),
            });
        }
    }
    if plan.items.is_empty()
        && want
            .files
            .files
            .get(MANIFEST_PATH)
            .map(|f| sha256_hex(&f.bytes))
            != obs.manifest_sha()
    {
        let action = if obs.manifest_bytes.is_some() {
            Action::Change
        } else {
            Action::Add
        };
        plan.items.push(Item {
            action,
            kind: ItemKind::File,
            name: MANIFEST_PATH.into(),
            files: vec![(action, MANIFEST_PATH.into())],
            drift: if obs.manifest_bytes.is_some() {
                vec![format!("{MANIFEST_PATH} was edited by hand")]
            } else {
                vec![]
            },
        });
    }
    if let Some((sha, arch)) = runner {
        for p in &want.runner_paths {
            let have = obs.runners.get(p).cloned().flatten();
            if have.as_deref() == Some(sha) {
                continue;
            }
            plan.runner_install.push(p.clone());
            let action = if have.is_some() {
                Action::Change
            } else {
                Action::Add
            };
            plan.items.push(Item {
                action,
                kind: ItemKind::Runner,
                name: p.clone(),
                files: vec![(action, p.clone())],
                drift: vec![],
            });
            if obs.arch != arch {
                plan.blocked = Some(format!(
                    "bkc-run must be installed at {p}, but the host is {} and the local bkc-run is built for {arch}; install a {} bkc-run there by hand",
                    obs.arch, obs.arch
                ));
            }
        }
    }
    for g in &obs.interrupted {
        plan.notes.push(format!(
            "the activation of generation {g} was interrupted; the next apply rolls it back first"
        ));
    }
    plan
}

/// Colours for a terminal, or none.
#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn action(self, a: Action, text: &str) -> String {
        let code = match a {
            Action::Add => "32",
            Action::Change => "33",
            Action::Remove => "31",
        };
        self.paint(code, text)
    }
}

/// `+N add ~N change -N remove`.
pub fn summary((add, change, remove): (usize, usize, usize)) -> String {
    format!("+{add} add ~{change} change -{remove} remove")
}

/// The plan of one host for people: each job or file with its files, drift and diffs (`old`
/// holds the deployed content of changed files), then the host's counts.
pub fn render(
    host: &str,
    plan: &HostPlan,
    want: &Desired,
    old: &BTreeMap<String, Vec<u8>>,
    style: Style,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", style.paint("1", &format!("host {host}")));
    for n in &plan.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    for item in &plan.items {
        let head = match (item.kind, item.action) {
            (ItemKind::Job, Action::Add) => format!("job {} (new)", item.name),
            (ItemKind::Job, Action::Remove) => format!("job {} (removed)", item.name),
            (ItemKind::Runner, Action::Add) => format!("runner {} (install)", item.name),
            (ItemKind::Runner, _) => format!("runner {} (upgrade)", item.name),
            (kind, _) => format!("{kind} {}", item.name),
        };
        let _ = writeln!(
            s,
            "  {}",
            style.action(item.action, &format!("{} {head}", sign(item.action)))
        );
        for d in &item.drift {
            let _ = writeln!(s, "      {}", style.paint("35", &format!("! drift: {d}")));
        }
        if item.kind == ItemKind::Runner {
            continue;
        }
        for (a, path) in &item.files {
            let _ = writeln!(
                s,
                "      {}",
                style.action(*a, &format!("{} {path}", sign(*a)))
            );
            if *a == Action::Change
                && let (Some(before), Some(after)) = (old.get(path), want.files.files.get(path))
            {
                s.push_str(&diff(path, before, &after.bytes, style));
            }
        }
    }
    if let Some(b) = &plan.blocked {
        let _ = writeln!(s, "  {}", style.paint("31", &format!("error: {b}")));
    }
    let _ = writeln!(
        s,
        "  {host}: {}",
        if plan.has_changes() {
            summary(plan.counts())
        } else {
            "no changes".into()
        }
    );
    s
}

fn diff(path: &str, before: &[u8], after: &[u8], style: Style) -> String {
    let (Ok(a), Ok(b)) = (std::str::from_utf8(before), std::str::from_utf8(after)) else {
        return "        (binary content differs)\n".into();
    };
    let d = similar::TextDiff::from_lines(a, b);
    let text = d
        .unified_diff()
        .context_radius(2)
        .header(
            &format!("{path} (on the host)"),
            &format!("{path} (planned)"),
        )
        .to_string();
    let mut out = String::new();
    for line in text.lines() {
        // The host's side of the diff is the host's text.
        let line = printable_line(line);
        let line = line.as_ref();
        let painted = match line.as_bytes().first() {
            _ if line.starts_with("---") || line.starts_with("+++") => style.paint("1", line),
            Some(b'+') => style.paint("32", line),
            Some(b'-') => style.paint("31", line),
            Some(b'@') => style.paint("36", line),
            _ => line.to_string(),
        };
        let _ = writeln!(out, "        {painted}");
    }
    if a == b {
        let _ = writeln!(out, "        (only the file's mode differs)");
    }
    out
}

/// What bkc does with a saved host ([`PlannedHost`], a contract type): make one from a plan,
/// and get back what the topology wanted when the plan was made.
pub trait PlannedHostExt: Sized {
    fn new(
        target: &Target,
        obs: &Observed,
        plan: &HostPlan,
        want: &Desired,
    ) -> Result<Self, HostError>;

    fn desired(&self, host: &str) -> Desired;
}

impl PlannedHostExt for PlannedHost {
    fn new(
        target: &Target,
        obs: &Observed,
        plan: &HostPlan,
        want: &Desired,
    ) -> Result<PlannedHost, HostError> {
        let mut files = BTreeMap::new();
        for (p, f) in &want.files.files {
            let text = String::from_utf8(f.bytes.clone()).map_err(|_| {
                HostError::new(&want.host, format!("{p} is not UTF-8 text; cannot save it"))
            })?;
            files.insert(p.clone(), (f.mode, text));
        }
        Ok(PlannedHost {
            target: target.clone(),
            tags: want.tags.clone(),
            fingerprint: obs.fingerprint(),
            manifest_sha256: obs.manifest_sha(),
            plan: plan.clone(),
            runner_paths: want.runner_paths.clone(),
            files,
        })
    }

    fn desired(&self, host: &str) -> Desired {
        let mut files = crate::emit::HostFiles::default();
        for (p, (mode, text)) in &self.files {
            files.files.insert(
                p.clone(),
                crate::emit::File {
                    bytes: text.clone().into_bytes(),
                    mode: *mode,
                },
            );
        }
        Desired {
            host: host.to_string(),
            tags: self.tags.clone(),
            files,
            runner_paths: self.runner_paths.clone(),
        }
    }
}
