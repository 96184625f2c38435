//! Many hosts at once: observe and compare every host in parallel (bounded), fetch what diffs
//! need, apply host by host without one failure stopping the others.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::apply::{Applied, Runner, apply_host};
use super::plan::{
    self, HostPlan, Observed, PlannedHost, PlannedHostExt, Sshd, Style, compare, fetch, observe,
};
use super::transport::{SshSession, Target, Transport};
use super::{Desired, HostError, unframe};
use crate::emit::{Facts, File, HostFiles, MANIFEST_PATH, sha256_hex};

/// How to reach hosts and how many at once.
#[derive(Debug, Clone)]
pub struct Options {
    pub jobs: usize,
    pub ssh_config: Option<PathBuf>,
    pub ssh_options: Vec<String>,
}

/// The local `bkc-run`: found next to the running `bkc`.
pub struct LocalRunner {
    pub bytes: Vec<u8>,
    pub sha256: String,
    pub arch: &'static str,
}

impl LocalRunner {
    pub fn find() -> Result<LocalRunner, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find bkc itself: {e}"))?;
        let path = exe.with_file_name("bkc-run");
        let bytes = std::fs::read(&path).map_err(|e| {
            format!(
                "cannot read {} ({e}); bkc installs the bkc-run found next to bkc",
                path.display()
            )
        })?;
        Ok(LocalRunner {
            sha256: sha256_hex(&bytes),
            bytes,
            arch: std::env::consts::ARCH,
        })
    }

    pub fn as_runner(&self) -> Runner<'_> {
        Runner {
            bytes: &self.bytes,
            arch: self.arch,
        }
    }
}

/// One host through a plan: what it should have, how to reach it, what it has, the plan.
pub struct HostRun {
    pub want: Desired,
    pub target: Target,
    pub transport: Box<dyn Transport>,
    pub observed: Result<Observed, HostError>,
    pub plan: Option<HostPlan>,
    /// The deployed content of changed files, for diffs.
    pub old: BTreeMap<String, Vec<u8>>,
}

/// Open one SSH session for `hosts` (and `sources`, see [`plan_all`]).
pub fn session(
    hosts: &[(Desired, Target)],
    sources: &[(Desired, Target)],
    opts: &Options,
) -> Result<SshSession, String> {
    SshSession::new(
        hosts.iter().chain(sources).map(|(_, t)| t),
        opts.ssh_config.clone(),
        opts.ssh_options.clone(),
    )
    .map_err(|e| format!("cannot create a private directory for ssh: {e}"))
}

/// Observe every host and compare it with what it should have, with diffs when `diffs`.
///
/// `sources` are hosts outside the selection whose jobs log in to selected hosts: they are
/// read too, for their jobs' keys, but not planned. Every host is read before any is compared,
/// because a host's authorized keys hold the keys other hosts have.
pub fn plan_all(
    ssh: &SshSession,
    hosts: Vec<(Desired, Target)>,
    sources: Vec<(Desired, Target)>,
    runner: Option<&LocalRunner>,
    opts: &Options,
    diffs: bool,
) -> Vec<HostRun> {
    let selected = hosts.len();
    let mut runs: Vec<HostRun> = hosts
        .into_iter()
        .chain(sources)
        .enumerate()
        .map(|(i, (want, target))| HostRun {
            transport: Box::new(ssh.host(&want.host, &target, i)),
            want,
            target,
            observed: Err(HostError::new("", "not observed")),
            plan: None,
            old: BTreeMap::new(),
        })
        .collect();
    let observed = super::bounded(&runs, opts.jobs, |r| observe(r.transport.as_ref(), &r.want));
    for (r, o) in runs.iter_mut().zip(observed) {
        r.observed = o;
    }
    let facts = facts(&runs);
    runs.truncate(selected);
    for r in &mut runs {
        let Ok(obs) = &r.observed else { continue };
        if let Err(e) = unknown_keys(&r.want, &facts) {
            r.observed = Err(e);
            continue;
        }
        r.want.complete(&facts.known);
        r.plan = Some(compare(
            &r.want,
            obs,
            runner.map(|l| (l.sha256.as_str(), l.arch)),
        ));
    }
    if diffs {
        let old = super::bounded(&runs, opts.jobs, |r| match &r.plan {
            Some(p) if !p.changed.is_empty() => fetch(r.transport.as_ref(), &p.changed),
            _ => Ok(BTreeMap::new()),
        });
        for (r, o) in runs.iter_mut().zip(old) {
            match o {
                Ok(old) => r.old = old,
                Err(e) => {
                    r.observed = Err(e);
                    r.plan = None;
                }
            }
        }
    }
    runs
}

/// What the hosts said that other hosts' files need, and which hosts could not say it.
struct Gathered {
    known: Facts,
    /// Hosts that could not be read, with why.
    failed: BTreeMap<String, String>,
}

fn facts(runs: &[HostRun]) -> Gathered {
    let mut g = Gathered {
        known: Facts::default(),
        failed: BTreeMap::new(),
    };
    for r in runs {
        match &r.observed {
            Ok(obs) => {
                // Only the keys of the host's own jobs: another host's job is not this
                // host's to vouch for.
                for k in &r.want.access.keys {
                    if let Some(Some(key)) = obs.keys.get(&k.job) {
                        g.known.keys.insert(k.job.clone(), key.clone());
                    }
                }
                if let Sshd::Files(files) = &obs.sshd {
                    g.known
                        .authorized_keys_files
                        .insert(r.want.host.clone(), files.clone());
                }
            }
            Err(e) => {
                g.failed.insert(r.want.host.clone(), e.message.clone());
            }
        }
    }
    g
}

/// A host whose authorized keys need a key that could not be read is left alone: writing its
/// line as unknown would lock that job out.
fn unknown_keys(want: &Desired, g: &Gathered) -> Result<(), HostError> {
    for grant in want.access.grants.values().flatten() {
        if grant.pinned.is_some() {
            continue;
        }
        if let Some(why) = g.failed.get(&grant.job_host) {
            return Err(HostError::new(
                &want.host,
                format!(
                    "the key of job {} cannot be read on {} ({why}), so its line in this host's authorized keys is unknown; bkc leaves this host as it is",
                    grant.job, grant.job_host
                ),
            ));
        }
    }
    Ok(())
}

/// Make on each host the keys its plan says are missing (before anything is switched: see
/// [`super::keys`]), saying so as it goes. False when a host failed (it is said why).
pub fn make_keys(runs: &[HostRun], opts: &Options) -> bool {
    let results = super::bounded(runs, opts.jobs, |r| {
        let jobs = r.plan.as_ref().map(plan::keys_to_make).unwrap_or_default();
        if jobs.is_empty() {
            return Ok(());
        }
        let (keys, made) = super::keys::make(r.transport.as_ref(), &jobs)?;
        for job in made {
            eprintln!(
                "{}: made the key of job {job}: {}",
                r.want.host,
                keys.get(&job).map_or("", String::as_str)
            );
        }
        Ok(())
    });
    let mut ok = true;
    for e in results.into_iter().filter_map(Result::err) {
        let e: HostError = e;
        eprintln!("{}: FAILED: {}", e.host, e.message);
        ok = false;
    }
    ok
}

/// The whole plan for people, and the totals.
pub fn render_all(runs: &[HostRun], style: Style) -> (String, (usize, usize, usize), usize) {
    let mut out = String::new();
    let mut total = (0, 0, 0);
    let mut failed = 0;
    for r in runs {
        match (&r.observed, &r.plan) {
            (Ok(_), Some(p)) => {
                out.push_str(&plan::render(&r.want.host, p, &r.want, &r.old, style));
                let (a, c, d) = p.counts();
                total = (total.0 + a, total.1 + c, total.2 + d);
                failed += usize::from(p.blocked.is_some());
            }
            (Err(e), _) => {
                out.push_str(&format!("host {}\n  error: {}\n", r.want.host, e.message));
                failed += 1;
            }
            _ => {}
        }
    }
    let changed = runs
        .iter()
        .filter(|r| r.plan.as_ref().is_some_and(HostPlan::has_changes))
        .count();
    out.push_str(&format!(
        "Plan: {} on {changed} of {} hosts{}\n",
        plan::summary(total),
        runs.len(),
        if failed > 0 {
            format!("; {failed} failed")
        } else {
            String::new()
        }
    ));
    (out, total, failed)
}

/// A saved plan of `runs`.
pub fn plan_file(
    runs: &[HostRun],
    runner: Option<&LocalRunner>,
) -> Result<plan::PlanFile, HostError> {
    let mut hosts = BTreeMap::new();
    for r in runs {
        if let (Ok(obs), Some(p)) = (&r.observed, &r.plan) {
            hosts.insert(
                r.want.host.clone(),
                PlannedHost::new(&r.target, obs, p, &r.want)?,
            );
        }
    }
    Ok(plan::PlanFile {
        version: plan::PLAN_VERSION,
        runner_sha256: runner.map(|l| l.sha256.clone()),
        hosts,
    })
}

/// How one host's apply ended.
pub enum Outcome {
    Unchanged,
    Applied(Applied),
    Failed(HostError),
}

/// Apply every host's plan, at most `opts.jobs` at once, printing progress per host.
pub fn apply_all(runs: &[HostRun], runner: Option<&LocalRunner>, opts: &Options) -> Vec<Outcome> {
    let r = runner.map(LocalRunner::as_runner);
    super::bounded(runs, opts.jobs, |run| {
        let (obs, p) = match (&run.observed, &run.plan) {
            (Ok(o), Some(p)) => (o, p),
            (Err(e), _) => return Outcome::Failed(e.clone()),
            _ => return Outcome::Unchanged,
        };
        if !p.has_changes() || !plan::needs_switch(p) {
            return Outcome::Unchanged;
        }
        let host = run.want.host.clone();
        let progress = move |msg: &str| eprintln!("{host}: {msg}");
        match apply_host(
            run.transport.as_ref(),
            &run.want,
            obs,
            p,
            r.as_ref(),
            &progress,
        ) {
            Ok(a) => Outcome::Applied(a),
            Err(e) => Outcome::Failed(e),
        }
    })
}

/// The files of generation `generation` kept on the host, as a [`Desired`] (leaving the runner
/// as it is), in one round trip.
pub fn generation(t: &dyn Transport, generation: u64) -> Result<Desired, HostError> {
    let script = format!(
        "G=\"$R/var/lib/bkc/generations/{generation}\"\n\
         [ -f \"$G/manifest.json\" ] || {{ echo missing; exit 0; }}\n\
         echo \"F $(wc -c < \"$G/manifest.json\") {MANIFEST_PATH}\"; cat \"$G/manifest.json\"\n\
         cd \"$G/files\" && find . -type f | while IFS= read -r f; do\n\
         p=${{f#.}}; [ \"$p\" = {MANIFEST_PATH} ] && continue\n\
         echo \"F $(wc -c < \"$f\") $p\"; cat \"$f\"; done\n\
         echo end\n"
    );
    let out = super::transport::run(t, &script, b"")
        .map_err(|e| HostError::new(t.host(), format!("cannot start ssh: {e}")))?;
    let framed = unframe(&out.stdout).map_err(|e| HostError::new(t.host(), e))?;
    if framed.lines.first().map(String::as_str) == Some("missing") {
        return Err(HostError::new(
            t.host(),
            format!("generation {generation} is not kept on the host"),
        ));
    }
    if framed.lines.last().map(String::as_str) != Some("end") {
        return Err(HostError::new(
            t.host(),
            format!("cannot read generation {generation}: {}", out.stderr.trim()),
        ));
    }
    let manifest_bytes = framed.files.get(MANIFEST_PATH).cloned().unwrap_or_default();
    let manifest: crate::emit::Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
        HostError::new(
            t.host(),
            format!("the manifest of generation {generation} is unreadable: {e}"),
        )
    })?;
    let mut files = HostFiles::default();
    for (path, entry) in &manifest.files {
        let bytes = framed.files.get(path).cloned().ok_or_else(|| {
            HostError::new(
                t.host(),
                format!("generation {generation} lacks {path}, which its manifest lists"),
            )
        })?;
        if sha256_hex(&bytes) != entry.sha256 {
            return Err(HostError::new(
                t.host(),
                format!("generation {generation}: {path} no longer matches its manifest"),
            ));
        }
        files.files.insert(
            path.clone(),
            File {
                bytes,
                mode: entry.mode,
            },
        );
    }
    files.files.insert(
        MANIFEST_PATH.to_string(),
        File {
            bytes: manifest_bytes,
            mode: bkc_contract::Mode::FILE,
        },
    );
    Ok(Desired {
        host: t.host().to_string(),
        tags: Vec::new(),
        files,
        runner_paths: Vec::new(),
        access: crate::emit::access::HostAccess::default(),
    })
}
