//! Topology -> per-host artifacts: systemd units, job specs, known_hosts, the serve files of the
//! jobs that reach the host, and the manifest; or the same as one NixOS module per host.
//!
//! Everything is planned first (which files each host gets, with what content), then rendered
//! into memory; writing to disk is a separate step (`write`), so `plan` can diff the same bytes
//! `build` writes. Maps are sorted and nothing depends on the clock: the same topology always
//! gives byte-identical files.

pub mod access;
mod escape;
mod manifest;
mod nixos;
mod prometheus;
mod unit;
mod write;

use std::collections::BTreeMap;

use bkc_contract::Mode;
use bkc_contract::fresh::{FRESH_VERSION, FreshSpec};
use bkc_contract::serve::{ServeFile, serve_path};
use bkc_contract::spec::{LockMode, NotifyEvent};
use minijinja::{Environment, UndefinedBehavior};

pub use access::Facts;
pub use manifest::{MANIFEST_PATH, Manifest, ManifestEntry, sha256_hex};
pub use nixos::NIXOS_MODULE_PATH;
pub use prometheus::RULES_FILE;
pub use write::write_tree;

use crate::topology::{Job, Topology};
use unit::Unit;

/// The bytes of every file bkc owns on each host, keyed by host, then by absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifacts {
    pub hosts: BTreeMap<String, HostFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostFiles {
    pub files: BTreeMap<String, File>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub bytes: Vec<u8>,
    pub mode: Mode,
}

pub const UNIT_DIR: &str = "/etc/systemd/system";
pub const JOB_DIR: &str = "/etc/bkc/jobs";
pub use bkc_contract::names::KNOWN_HOSTS_PATH;
pub const FRESH_DIR: &str = "/etc/bkc/fresh";

const UNIT: &str = "unit.j2";
const NIXOS: &str = "nixos.nix.j2";
const PROMETHEUS: &str = "prometheus.rules.yml.j2";

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("could not render {what}: {source}")]
#[diagnostic(
    code(bkc::emit),
    help("this is a bug in bkc; please report it with the topology that caused it")
)]
pub struct EmitError {
    what: String,
    source: minijinja::Error,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Every value a template uses must be given: a typo in a template is an error, not an
    // empty line in a unit file.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_template(UNIT, include_str!("../../templates/unit.j2"))
        .expect("unit template parses");
    env.add_template(NIXOS, include_str!("../../templates/nixos.nix.j2"))
        .expect("NixOS module template parses");
    env.add_template(
        PROMETHEUS,
        include_str!("../../templates/prometheus.rules.yml.j2"),
    )
    .expect("Prometheus rules template parses");
    nixos::register(&mut env);
    env.add_filter("yaml", |s: &str| prometheus::yaml(s));
    env
}

/// The Prometheus alerting rules of the whole topology ([`RULES_FILE`]).
pub fn emit_prometheus(topology: &Topology) -> Result<String, EmitError> {
    prometheus::rules(topology)
}

fn render(
    env: &Environment,
    template: &str,
    what: impl FnOnce() -> String,
    ctx: impl serde::Serialize,
) -> Result<String, EmitError> {
    env.get_template(template)
        .and_then(|t| t.render(ctx))
        .map_err(|source| EmitError {
            what: what(),
            source,
        })
}

/// One service (with its timer, if any) and the files under /etc it reads, as data: what both
/// the unit files and the NixOS module are rendered from. A job is one; its notification unit
/// and each freshness check of its data are others.
struct JobFiles {
    /// `bkc-<job>`: the service and timer names without their suffix.
    unit: String,
    service: Unit,
    timer: Option<Unit>,
    /// A path unit of the same name (a watch's).
    path: Option<Unit>,
    /// The service runs as long as the host (a watcher), so a deploy restarts it when it
    /// changed, where it never restarts a backup.
    long_running: bool,
    /// Files under /etc: path and text.
    etc: Vec<(String, String)>,
}

fn failed(what: String) -> impl FnOnce(minijinja::Error) -> EmitError {
    move |source| EmitError { what, source }
}

/// The job's own service, timer and spec, its notification unit when it has `notify`, and its
/// verify's service and timer when it has `verify`.
fn job_files(job: &Job) -> Result<Vec<JobFiles>, EmitError> {
    let spec_path = format!("{JOB_DIR}/{}.json", job.name);
    let service = unit::service(job, &spec_path)
        .map_err(failed(format!("the service of job {}", job.name)))?;
    let timer = match &job.timer {
        Some(t) => {
            Some(unit::timer(job, t).map_err(failed(format!("the timer of job {}", job.name)))?)
        }
        None => None,
    };
    let mut out = vec![JobFiles {
        unit: bkc_contract::names::unit_base(&job.name),
        service,
        timer,
        path: None,
        long_running: false,
        etc: vec![(spec_path.clone(), job.spec.to_json())],
    }];
    if !job.spec.notify.is_empty() {
        out.push(JobFiles {
            unit: unit::notify_unit_name(job),
            service: unit::notify_service(job, &spec_path)
                .map_err(failed(format!("the notification unit of job {}", job.name)))?,
            timer: None,
            path: None,
            long_running: false,
            etc: Vec::new(),
        });
    }
    if let Some(v) = &job.spec.verify {
        let what = |w: &str| format!("the verify {w} of job {}", job.name);
        out.push(JobFiles {
            unit: bkc_contract::names::verify_unit_base(&job.name),
            service: unit::verify_service(job, &spec_path, v).map_err(failed(what("service")))?,
            timer: Some(unit::verify_timer(job, v).map_err(failed(what("timer")))?),
            path: None,
            long_running: false,
            etc: Vec::new(),
        });
    }
    if let Some(w) = &job.spec.watch {
        let what = |u: &str| format!("the watch {u} of job {}", job.name);
        out.push(JobFiles {
            unit: bkc_contract::names::watch_unit_base(&job.name),
            service: unit::watch_service(job, &spec_path, w).map_err(failed(what("service")))?,
            timer: None,
            path: Some(unit::watch_path(job, w).map_err(failed(what("path unit")))?),
            long_running: true,
            etc: Vec::new(),
        });
    }
    Ok(out)
}

/// The freshness check, on `host`, of the data `job` sends there (see bkc_contract::fresh).
fn fresh_files(job: &Job, host: &str) -> Result<Option<JobFiles>, EmitError> {
    let Some(fresh) = &job.freshness else {
        return Ok(None);
    };
    let markers: Vec<String> = job
        .spec
        .fresh_markers
        .iter()
        .filter(|m| m.host == host)
        .map(|m| m.path.clone())
        .collect();
    if markers.is_empty() {
        return Ok(None);
    }
    let spec = FreshSpec {
        version: FRESH_VERSION,
        job: job.name.clone(),
        source: job.host.clone(),
        host: host.to_string(),
        markers,
        alert_after_secs: fresh.alert_after_secs,
        state_dir: job.spec.state_dir.clone(),
        notify: job
            .spec
            .notify
            .iter()
            .filter(|n| n.on.contains(&NotifyEvent::Stale) || n.on.contains(&NotifyEvent::Recovery))
            .cloned()
            .collect(),
    };
    let path = format!("{FRESH_DIR}/{}.json", job.name);
    let what = || format!("the freshness check of job {} on {host}", job.name);
    Ok(Some(JobFiles {
        unit: unit::fresh_unit_name(job),
        service: unit::fresh_service(job, &path).map_err(failed(what()))?,
        timer: Some(unit::fresh_timer(job).map_err(failed(what()))?),
        path: None,
        long_running: false,
        etc: vec![(path, spec.to_json())],
    }))
}

/// For each host, the jobs whose data it receives and watches (found once, not per host).
type Watched<'t> = BTreeMap<&'t str, Vec<&'t Job>>;

fn watched(topology: &Topology) -> Watched<'_> {
    let mut w: Watched = BTreeMap::new();
    for job in topology.jobs.values() {
        let mut hosts: Vec<&str> = job
            .spec
            .fresh_markers
            .iter()
            .map(|m| m.host.as_str())
            .collect();
        hosts.dedup();
        for h in hosts {
            w.entry(h).or_default().push(job);
        }
    }
    w
}

/// Everything `host` runs: its jobs' files, and the freshness checks of the data other hosts'
/// jobs send here.
fn host_units(watched: &Watched, host: &str, jobs: &[&Job]) -> Result<Vec<JobFiles>, EmitError> {
    let mut out = Vec::new();
    for job in jobs {
        out.extend(job_files(job)?);
    }
    for job in watched.get(host).into_iter().flatten() {
        out.extend(fresh_files(job, host)?);
    }
    Ok(out)
}

/// What a host gets: the jobs that run on it, and the serve files of the jobs that reach it.
struct HostWork<'t> {
    jobs: Vec<&'t Job>,
    serve: Vec<Served<'t>>,
}

/// A job's serve file on a host, and the runner there that serves (and prunes) it.
struct Served<'t> {
    file: ServeFile,
    runner: &'t str,
}

/// The units that prune a job's append-only snapshots on their host, if it pushes any there.
struct Prune {
    /// `bkc-prune@<job>`.
    unit: String,
    service: Unit,
    timer: Unit,
}

fn prune_units(s: &Served) -> Result<Option<Prune>, EmitError> {
    let f = &s.file;
    let mut rw: Vec<String> = f
        .snapshots
        .iter()
        .filter(|r| r.append_only)
        .map(|r| crate::analyze::paths::normalize(&r.path).to_string())
        .collect();
    if rw.is_empty() {
        return Ok(None);
    }
    // The job's own lock here, which `bkc-run prune` takes so that it never prunes under a run.
    rw.extend(
        f.locks
            .iter()
            .filter(|l| l.mode == LockMode::Exclusive)
            .filter_map(|l| std::path::Path::new(&l.path).parent())
            .map(|p| p.display().to_string()),
    );
    rw.sort();
    rw.dedup();
    let unit = bkc_contract::names::prune_unit_base(&f.job);
    let failed = |what: &str| {
        let what = format!("the pruning {what} of job {}", f.job);
        move |source| EmitError { what, source }
    };
    Ok(Some(Prune {
        service: unit::prune_service(&f.job, s.runner, rw).map_err(failed("service"))?,
        timer: unit::prune_timer(&f.job).map_err(failed("timer"))?,
        unit,
    }))
}

/// Every selected host (all when `only` is empty) with its jobs and serve files, rendered by
/// `render_host`.
fn per_host(
    topology: &Topology,
    only: &[String],
    render_host: impl Fn(&str, &HostWork) -> Result<HostFiles, EmitError> + Sync,
) -> Result<Artifacts, EmitError> {
    let mut by_host: BTreeMap<&str, HostWork> = topology
        .hosts
        .keys()
        .filter(|h| only.is_empty() || only.contains(h))
        .map(|h| {
            let work = HostWork {
                jobs: Vec::new(),
                serve: Vec::new(),
            };
            (h.as_str(), work)
        })
        .collect();
    for job in topology.jobs.values() {
        if let Some(w) = by_host.get_mut(job.host.as_str()) {
            w.jobs.push(job);
        }
        for reached in job.spec.hosts.keys() {
            if let Some(w) = by_host.get_mut(reached.as_str())
                && let Some(file) = ServeFile::for_host(&job.spec, reached)
            {
                w.serve.push(Served {
                    file,
                    runner: &job.service.runner,
                });
            }
        }
    }
    let work: Vec<(&str, HostWork)> = by_host.into_iter().collect();
    let rendered = crate::parallel::map(&work, |(host, w)| render_host(host, w));
    let mut hosts = BTreeMap::new();
    for ((host, _), files) in work.iter().zip(rendered) {
        hosts.insert(host.to_string(), files?);
    }
    Ok(Artifacts { hosts })
}

/// Render every host's unit files, job specs, known_hosts, authorized keys and manifest.
/// `only` limits the output to those hosts (all when empty). Keys that are not pinned are
/// placeholders (see [`access`]); [`emit_with`] fills in what hosts said.
pub fn emit(topology: &Topology, only: &[String]) -> Result<Artifacts, EmitError> {
    emit_with(topology, only, &Facts::default())
}

/// [`emit`], with what the hosts said about keys and sshd.
pub fn emit_with(
    topology: &Topology,
    only: &[String],
    facts: &Facts,
) -> Result<Artifacts, EmitError> {
    let env = environment();
    let access = access::all(topology);
    let watched = watched(topology);
    per_host(topology, only, |host, work| {
        render_host(&env, topology, &watched, host, work, &access[host], facts)
    })
}

/// Put `access`'s files (see [`access::HostAccess::files`]) into `files`, in place of the ones
/// there, and write the manifest again.
pub fn complete(host: &str, files: &mut HostFiles, access: &access::HostAccess, facts: &Facts) {
    for (path, text) in access.files(facts, None) {
        files.files.insert(
            path,
            File {
                bytes: text.into_bytes(),
                mode: Mode::FILE,
            },
        );
    }
    seal(host, files);
}

/// (Re)write the manifest of `files`.
fn seal(host: &str, files: &mut HostFiles) {
    let manifest = manifest::of(host, files);
    files.files.insert(
        MANIFEST_PATH.to_string(),
        File {
            bytes: manifest.to_json().into_bytes(),
            mode: Mode::FILE,
        },
    );
}

/// Render every host's NixOS module ([`NIXOS_MODULE_PATH`]): the same units, job specs and
/// known_hosts as [`emit`], declared through NixOS options.
pub fn emit_nixos(topology: &Topology, only: &[String]) -> Result<Artifacts, EmitError> {
    let env = environment();
    let access = access::all(topology);
    let watched = watched(topology);
    per_host(topology, only, |host, work| {
        let files_of_jobs = host_units(&watched, host, &work.jobs)?;
        let serve: Vec<(String, String)> = work
            .serve
            .iter()
            .map(|s| (serve_path(&s.file.job), s.file.to_json()))
            .collect();
        let prunes = work
            .serve
            .iter()
            .filter_map(|s| prune_units(s).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let module = nixos::render(
            &env,
            host,
            &files_of_jobs,
            &prunes,
            &serve,
            known_hosts(topology, &work.jobs),
            &access[host],
        )?;
        let mut files = HostFiles::default();
        files.files.insert(
            NIXOS_MODULE_PATH.to_string(),
            File {
                bytes: module.into_bytes(),
                mode: Mode::FILE,
            },
        );
        Ok(files)
    })
}

fn render_host(
    env: &Environment,
    topology: &Topology,
    watched: &Watched,
    host: &str,
    work: &HostWork,
    access: &access::HostAccess,
    facts: &Facts,
) -> Result<HostFiles, EmitError> {
    let mut files = HostFiles::default();
    for job in host_units(watched, host, &work.jobs)? {
        let mut add = |path: String, text: String| {
            files.files.insert(
                path,
                File {
                    bytes: text.into_bytes(),
                    mode: Mode::FILE,
                },
            );
        };
        let unit_file = |unit: &Unit, suffix: &str| {
            render(env, UNIT, || format!("{}.{suffix}", job.unit), unit)
        };
        add(
            format!("{UNIT_DIR}/{}.service", job.unit),
            unit_file(&job.service, "service")?,
        );
        if let Some(timer) = &job.timer {
            add(
                format!("{UNIT_DIR}/{}.timer", job.unit),
                unit_file(timer, "timer")?,
            );
        }
        if let Some(path) = &job.path {
            add(
                format!("{UNIT_DIR}/{}.path", job.unit),
                unit_file(path, "path")?,
            );
        }
        for (path, text) in job.etc {
            add(path, text);
        }
    }
    for s in &work.serve {
        let mut add = |path: String, text: String| {
            files.files.insert(
                path,
                File {
                    bytes: text.into_bytes(),
                    mode: Mode::FILE,
                },
            );
        };
        add(serve_path(&s.file.job), s.file.to_json());
        if let Some(p) = prune_units(s)? {
            let unit_file = |unit: &Unit, suffix: &str| {
                render(env, UNIT, || format!("{}.{suffix}", p.unit), unit)
            };
            add(
                format!("{UNIT_DIR}/{}.service", p.unit),
                unit_file(&p.service, "service")?,
            );
            add(
                format!("{UNIT_DIR}/{}.timer", p.unit),
                unit_file(&p.timer, "timer")?,
            );
        }
    }
    if let Some(kh) = known_hosts(topology, &work.jobs) {
        files.files.insert(
            KNOWN_HOSTS_PATH.to_string(),
            File {
                bytes: kh.into_bytes(),
                mode: Mode::FILE,
            },
        );
    }
    complete(host, &mut files, access, facts);
    Ok(files)
}

/// The pinned keys of every host this host's runners (`jobs`) connect to, in known_hosts format.
fn known_hosts(topology: &Topology, jobs: &[&Job]) -> Option<String> {
    let mut reached: Vec<&str> = jobs
        .iter()
        .flat_map(|j| j.spec.hosts.keys().map(String::as_str))
        .collect();
    reached.sort_unstable();
    reached.dedup();
    let mut out = String::new();
    for name in reached {
        let h = &topology.hosts[name];
        let pattern = bkc_contract::names::known_hosts_pattern(&h.address, h.port);
        for key in &h.host_keys {
            out.push_str(&format!("{pattern} {key}\n"));
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPOLOGY: &str = r#"host "a" address="a.lan" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiH"; }
host "b" address="b.lan" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGPmKn9c+ok429EC"; }
job "checked" on="a" {
    schedule "daily"
    notify "/usr/local/bin/page-me" on="failure"
    sync "/data/" "b:/srv/data/" { snapshot keep-daily=7; }
    verify "weekly" checksum=#true
}
job "quick" on="a" {
    schedule "daily"
    sync "/etc/" "b:/srv/etc/"
    verify "Sun 05:00"
}
job "plain" on="a" {
    schedule "daily"
    sync "/srv/" "b:/srv/a/"
}
"#;

    fn text(files: &HostFiles, path: &str) -> String {
        String::from_utf8(files.files[path].bytes.clone()).unwrap()
    }

    #[test]
    fn a_verify_gets_its_own_timer_and_service_on_the_jobs_host() {
        let c = crate::analyze::compile("t.kdl", TOPOLOGY);
        let t = c.topology.expect("compiles");
        let v = t.jobs["checked"].spec.verify.clone().unwrap();
        assert_eq!((v.calendar.as_str(), v.checksum), ("weekly", true));
        assert!(!t.jobs["quick"].spec.verify.as_ref().unwrap().checksum);
        assert!(t.jobs["plain"].spec.verify.is_none());
        let out = emit(&t, &[]).unwrap();
        let a = &out.hosts["a"];
        let service = text(a, "/etc/systemd/system/bkc-verify@checked.service");
        assert!(
            service.contains(
                "ExecStart=/usr/local/bin/bkc-run verify --record --checksum /etc/bkc/jobs/checked.json\n"
            ),
            "{service}"
        );
        assert!(service.contains("OnFailure=bkc-notify@checked.service\n"));
        assert!(service.contains("ProtectSystem=strict\n"));
        let timer = text(a, "/etc/systemd/system/bkc-verify@checked.timer");
        assert!(timer.contains("OnCalendar=weekly\n") && timer.contains("Persistent=true\n"));
        assert!(timer.contains("Unit=bkc-verify@checked.service\n"));
        let quick = text(a, "/etc/systemd/system/bkc-verify@quick.service");
        assert!(quick.contains("bkc-run verify --record /etc/bkc/jobs/quick.json\n"));
        assert!(!quick.contains("OnFailure"));
        assert!(
            !a.files
                .keys()
                .any(|p| p.contains("verify@plain") || p.contains("bkc-verify-"))
        );
        assert!(!out.hosts["b"].files.keys().any(|p| p.contains("verify")));
        let manifest = text(a, MANIFEST_PATH);
        assert!(manifest.contains("bkc-verify@checked.timer"));
        let nix = emit_nixos(&t, &[]).unwrap();
        let module = text(&nix.hosts["a"], NIXOS_MODULE_PATH);
        assert!(
            module.contains("\"bkc-verify@checked\"") || module.contains("bkc-verify@checked =")
        );
        assert!(module.contains("verify --record --checksum /etc/bkc/jobs/checked.json"));
    }

    #[test]
    fn every_unit_names_a_runner_with_a_dollar_as_it_is() {
        // systemd expands `$` in arguments, not in the program: `$$` there is no such file.
        let src = TOPOLOGY.replacen(
            "host \"a\"",
            "defaults {\n    runner \"/opt/$x/bkc-run\"\n}\nhost \"a\"",
            1,
        ) + "job \"watched\" on=\"a\" {\n    watch \"/srv/w\"\n    sync \"/srv/w/\" \"/srv/w-copy/\"\n}\n";
        let c = crate::analyze::compile("t.kdl", &src);
        let t = c.topology.expect("compiles");
        let out = emit(&t, &[]).unwrap();
        let mut seen = 0;
        for files in out.hosts.values() {
            for (path, f) in &files.files {
                if !path.starts_with("/etc/systemd/system/") {
                    continue;
                }
                let unit = String::from_utf8(f.bytes.clone()).unwrap();
                for line in unit.lines().filter(|l| l.contains("bkc-run")) {
                    let (_, program) = line.split_once('=').unwrap();
                    let program = program.trim_start_matches(['+', '-']);
                    assert!(program.starts_with("/opt/$x/bkc-run "), "{path}: {line}");
                    seen += 1;
                }
            }
        }
        // The job, its notification, verify, freshness check, prune and watcher units.
        assert!(seen >= 10, "{seen}");
    }

    #[test]
    fn a_watch_gets_a_watcher_and_a_path_unit_that_starts_the_job() {
        let src = r#"host "a" address="a.lan" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiH"; }
job "docs" on="a" {
    watch "/srv/docs/letters"
    watch "/srv/docs"
    sync "/srv/docs/" "/srv/copy/"
}
"#;
        let c = crate::analyze::compile("t.kdl", src);
        assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
        let t = c.topology.expect("compiles");
        let w = t.jobs["docs"].spec.watch.clone().unwrap();
        assert_eq!(
            w.paths,
            ["/srv/docs"],
            "a path inside another is watched with it"
        );
        assert_eq!(w.quiet_secs, 60);
        assert_eq!(w.trigger, "/run/bkc/watch/docs");
        assert_eq!(
            t.jobs["docs"].schedule_words(),
            "on changes to /srv/docs (quiet 1min)"
        );
        let out = emit(&t, &[]).unwrap();
        let a = &out.hosts["a"];
        assert!(!a.files.contains_key("/etc/systemd/system/bkc-docs.timer"));
        let watcher = text(a, "/etc/systemd/system/bkc-watch@docs.service");
        assert!(
            watcher.contains("ExecStart=/usr/local/bin/bkc-run watch /etc/bkc/jobs/docs.json\n"),
            "{watcher}"
        );
        assert!(watcher.contains("ReadWritePaths=-/run/bkc/watch\n"));
        assert!(watcher.contains("WantedBy=multi-user.target\n"));
        let path = text(a, "/etc/systemd/system/bkc-watch@docs.path");
        assert!(path.contains("PathChanged=/run/bkc/watch/docs\n"), "{path}");
        assert!(path.contains("Unit=bkc-docs.service\n"));
        assert!(path.contains("WantedBy=paths.target\n"));
        let nix = emit_nixos(&t, &[]).unwrap();
        let module = text(&nix.hosts["a"], NIXOS_MODULE_PATH);
        assert!(module.contains("systemd.paths = {"), "{module}");
        assert!(module.contains("PathChanged = \"/run/bkc/watch/docs\";"));
        assert!(module.contains("restartIfChanged = true;"));
    }
}
