//! Many hosts at once: observe and compare every host in parallel (bounded), fetch what diffs
//! need, apply host by host without one failure stopping the others.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::apply::{Applied, Runner, apply_host};
use super::plan::{
    self, HostPlan, Observed, PlannedHost, PlannedHostExt, Style, compare, fetch, observe,
};
use super::transport::{SshSession, Target, Transport};
use super::{Desired, HostError, unframe};
use crate::emit::{File, HostFiles, MANIFEST_PATH, sha256_hex};

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

/// Open one SSH session for `hosts`.
pub fn session(hosts: &[(Desired, Target)], opts: &Options) -> Result<SshSession, String> {
    SshSession::new(
        hosts.iter().map(|(_, t)| t),
        opts.ssh_config.clone(),
        opts.ssh_options.clone(),
    )
    .map_err(|e| format!("cannot create a private directory for ssh: {e}"))
}

/// Observe and compare every host, with diffs when `diffs`.
pub fn plan_all(
    ssh: &SshSession,
    hosts: Vec<(Desired, Target)>,
    runner: Option<&LocalRunner>,
    opts: &Options,
    diffs: bool,
) -> Vec<HostRun> {
    let runs: Vec<HostRun> = hosts
        .into_iter()
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
    let results = super::bounded(&runs, opts.jobs, |r| {
        let obs = observe(r.transport.as_ref(), &r.want.runner_paths)?;
        let p = compare(&r.want, &obs, runner.map(|l| (l.sha256.as_str(), l.arch)));
        let old = if diffs && !p.changed.is_empty() {
            fetch(r.transport.as_ref(), &p.changed)?
        } else {
            BTreeMap::new()
        };
        Ok((obs, p, old))
    });
    runs.into_iter()
        .zip(results)
        .map(|(mut r, res): (HostRun, Result<_, HostError>)| {
            match res {
                Ok((obs, p, old)) => {
                    r.observed = Ok(obs);
                    r.plan = Some(p);
                    r.old = old;
                }
                Err(e) => r.observed = Err(e),
            }
            r
        })
        .collect()
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
        if !p.has_changes() {
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
    })
}
