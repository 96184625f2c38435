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
use bkc_contract::names::{KEYS_DIR, SSHD_DROPIN_PATH, is_valid_name, key_path};

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
    /// bkc units a deploy enables (timers, path units, watchers) present: name -> `enabled`,
    /// `disabled`, ...
    pub units: BTreeMap<String, String>,
    /// Jobs' own keys present in `/etc/bkc/keys`: job -> the public half (`TYPE BASE64`) as
    /// the private half gives it, or `None` when ssh-keygen could not read it.
    pub keys: BTreeMap<String, Option<String>>,
    /// What sshd reads as `AuthorizedKeysFile`, when it was asked.
    pub sshd: Sshd,
}

/// sshd's answer about the files it reads authorized keys from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Sshd {
    /// Not asked: the host gets no sshd drop-in.
    #[default]
    NotAsked,
    /// `sshd -T` failed: the configuration has an error, or sshd is not there.
    Failed,
    /// The files, as `sshd -T` lists them.
    Files(Vec<String>),
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
        for (j, k) in &self.keys {
            let _ = writeln!(s, "key {j} {k:?}");
        }
        let _ = writeln!(s, "sshd {:?}", self.sshd);
        sha256_hex(s.as_bytes())
    }
}

/// Read what `t`'s host has, in one round trip: what `want` needs to be compared (its runner
/// paths, and sshd's answer when it gets the sshd drop-in).
pub fn observe(t: &dyn Transport, want: &Desired) -> Result<Observed, HostError> {
    let args: Vec<String> = want.runner_paths.iter().map(|p| quote(p)).collect();
    let script = format!(
        "SSHD_FILES={}\nset -- {}\n{OBSERVE}",
        if want.asks_sshd() { "1" } else { "" },
        args.join(" ")
    );
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
            ("key", [job, "-"]) if is_valid_name(job) => {
                o.keys.insert(job.to_string(), None);
            }
            ("key", [job, ty, blob, ..]) if is_valid_name(job) => {
                let key = public_key(ty, blob).ok_or_else(|| refuse(line))?;
                o.keys.insert(job.to_string(), Some(key));
            }
            ("sshd-files", ["-"]) => o.sshd = Sshd::Failed,
            ("sshd-files", files) if files.iter().all(|f| is_sshd_file(f)) => {
                o.sshd = Sshd::Files(files.iter().map(|f| f.to_string()).collect());
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

/// A public key as ssh-keygen prints it, `TYPE BASE64`, checked to be one.
pub(crate) fn public_key(ty: &str, blob: &str) -> Option<String> {
    let ok = is_word(ty.trim_end_matches("@openssh.com"))
        && ty.len() <= 64
        && blob.len() <= 16384
        && !blob.is_empty()
        && blob
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='));
    ok.then(|| format!("{ty} {blob}"))
}

/// An `AuthorizedKeysFile` entry as `sshd -T` prints it: printable, no quote, at most a path.
fn is_sshd_file(f: &str) -> bool {
    f.len() <= 4096
        && f.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'')
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

/// Whether `p` is a path bkc writes on a host: under /etc/bkc/ (but not a job's private key,
/// which is the host's own), a `bkc-` unit, or the sshd drop-in.
pub fn owned(p: &str) -> bool {
    is_plain_path(p)
        && ((p.starts_with("/etc/bkc/") && !p.starts_with(&format!("{KEYS_DIR}/")))
            || p == SSHD_DROPIN_PATH
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
use bkc_contract::names::started_unit_of;

/// One path's action (if any) and its drift note (if any).
type PathDiff<'a> = (&'a String, Option<Action>, Option<String>);

/// Compare what `obs` has with what `want` says; `runner` is the local bkc-run's sha256 and
/// architecture (none: leave the runner alone).
pub fn compare(want: &Desired, obs: &Observed, runner: Option<(&str, &str)>) -> HostPlan {
    let mut plan = HostPlan::default();
    let per_path = diff_paths(want, obs, &mut plan);
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
        // A timer, path unit or watcher that is kept but switched off.
        for (p, _, _) in &files {
            if let Some(t) = started_unit_of(p)
                && want.files.files.contains_key(*p)
                && obs.files.contains_key(*p)
                && obs.units.get(t).map(String::as_str) != Some("enabled")
            {
                let kind = if t.ends_with(".timer") {
                    "timer"
                } else {
                    "unit"
                };
                drift.push(format!(
                    "{kind} {t} is {}",
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
            plan.items.push(path_item(
                a,
                ItemKind::File,
                path,
                drift.into_iter().collect(),
            ));
        }
    }
    if plan.items.is_empty() {
        manifest_item(want, obs, &mut plan);
    }
    keys(want, obs, &mut plan);
    if want.asks_sshd()
        && obs.sshd == Sshd::Failed
        && (plan.changed.iter().any(|p| p == SSHD_DROPIN_PATH)
            || !obs.files.contains_key(SSHD_DROPIN_PATH))
    {
        plan.blocked = Some(format!(
            "`sshd -T` failed on the host, so bkc cannot tell which authorized keys files sshd reads and keep them in {SSHD_DROPIN_PATH}; run `sshd -t` there and fix what it says"
        ));
    }
    if let Some((sha, arch)) = runner {
        runner_items(want, obs, sha, arch, &mut plan);
    }
    for g in &obs.interrupted {
        plan.notes.push(format!(
            "the activation of generation {g} was interrupted; the next apply rolls it back first"
        ));
    }
    plan
}

/// Per path of the host's files and the wanted ones: the action, and what was done behind bkc's
/// back; changed and removed paths are noted in `plan` too.
fn diff_paths(
    want: &Desired,
    obs: &Observed,
    plan: &mut HostPlan,
) -> BTreeMap<String, (Option<Action>, Option<String>)> {
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
    per_path
}

/// With nothing else to do, a manifest that is missing or not the one bkc would write.
fn manifest_item(want: &Desired, obs: &Observed, plan: &mut HostPlan) {
    if want
        .files
        .files
        .get(MANIFEST_PATH)
        .map(|f| sha256_hex(&f.bytes))
        == obs.manifest_sha()
    {
        return;
    }
    let there = obs.manifest_bytes.is_some();
    let drift = if there {
        vec![format!("{MANIFEST_PATH} was edited by hand")]
    } else {
        vec![]
    };
    plan.items.push(path_item(
        add_or_change(there),
        ItemKind::File,
        MANIFEST_PATH,
        drift,
    ));
}

/// Add where there is nothing, change where there is something.
fn add_or_change(there: bool) -> Action {
    if there { Action::Change } else { Action::Add }
}

/// An item that is one path (a file, or the runner installed there), named by it.
fn path_item(action: Action, kind: ItemKind, path: &str, drift: Vec<String>) -> Item {
    Item {
        action,
        kind,
        name: path.to_string(),
        files: vec![(action, path.to_string())],
        drift,
    }
}

/// The runner to install at each path the host's units name where it is not this one (`sha`);
/// blocked when the host's architecture is not the one it is built for.
fn runner_items(want: &Desired, obs: &Observed, sha: &str, arch: &str, plan: &mut HostPlan) {
    for p in &want.runner_paths {
        let have = obs.runners.get(p).cloned().flatten();
        if have.as_deref() == Some(sha) {
            continue;
        }
        plan.runner_install.push(p.clone());
        plan.items.push(path_item(
            add_or_change(have.is_some()),
            ItemKind::Runner,
            p,
            vec![],
        ));
        if obs.arch != arch {
            plan.blocked = Some(format!(
                "bkc-run must be installed at {p}, but the host is {} and the local bkc-run is built for {arch}; install a {} bkc-run there by hand",
                obs.arch, obs.arch
            ));
        }
    }
}

/// The jobs' own keys on this host: one to make where none is there and none is pinned;
/// drift where the host's key is not the pinned one or cannot be read, which only a person can
/// put right (bkc never carries a private key).
fn keys(want: &Desired, obs: &Observed, plan: &mut HostPlan) {
    for k in &want.access.keys {
        let path = key_path(&k.job);
        let drift = match (obs.keys.get(&k.job), &k.pinned) {
            (None, None) => {
                plan.items.push(Item {
                    action: Action::Add,
                    kind: ItemKind::Key,
                    name: k.job.clone(),
                    files: vec![(Action::Add, path)],
                    drift: vec![],
                });
                continue;
            }
            (None, Some(_)) => format!(
                "{path} is missing: put the private half of the key the topology pins there (bkc makes a key only where none is pinned)"
            ),
            (Some(None), pin) => format!(
                "{path} cannot be read by ssh-keygen (a private key, mode 0600, without a passphrase): fix it, or remove it{}",
                if pin.is_none() {
                    " and the next apply makes a new one"
                } else {
                    " and put the pinned key's private half there"
                }
            ),
            (Some(Some(have)), Some(pin)) if have != pin => format!(
                "{path} is not the key the topology pins (the host has {have}): put the pinned key's private half there, or pin the host's key"
            ),
            _ => continue,
        };
        plan.items.push(Item {
            action: Action::Change,
            kind: ItemKind::Key,
            name: k.job.clone(),
            files: vec![],
            drift: vec![drift],
        });
    }
}

/// Whether a plan needs the switch on its host: anything but the jobs' keys, which apply makes
/// before the switch (or cannot put right at all).
pub fn needs_switch(plan: &HostPlan) -> bool {
    plan.items.iter().any(|i| i.kind != ItemKind::Key)
}

/// What is wrong with the jobs' keys on the host that only a person can put right.
pub fn key_drift(plan: &HostPlan) -> impl Iterator<Item = &String> {
    plan.items
        .iter()
        .filter(|i| i.kind == ItemKind::Key)
        .flat_map(|i| &i.drift)
}

/// The jobs whose keys apply makes on the host before anything else.
pub fn keys_to_make(plan: &HostPlan) -> Vec<String> {
    plan.items
        .iter()
        .filter(|i| i.kind == ItemKind::Key && i.action == Action::Add)
        .map(|i| i.name.clone())
        .collect()
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
            (ItemKind::Key, Action::Add) => format!("key of job {} (made on the host)", item.name),
            (ItemKind::Key, _) => format!("key of job {}", item.name),
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
            access: crate::emit::access::HostAccess::default(),
        }
    }
}
