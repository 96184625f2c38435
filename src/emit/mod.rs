//! Topology -> per-host artifacts: systemd units, job specs, known_hosts and the manifest.
//!
//! Everything is planned first (which files each host gets, with what content), then rendered
//! into memory; writing to disk is a separate step (`write`), so `plan` can diff the same bytes
//! `build` writes. Maps are sorted and nothing depends on the clock: the same topology always
//! gives byte-identical files.

mod escape;
mod manifest;
mod write;

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior, context};

pub use manifest::{MANIFEST_PATH, Manifest, ManifestEntry};
pub use write::write_tree;

use crate::schedule::format_duration;
use crate::spec::IoClass;
use crate::topology::{Job, Topology};

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
    pub mode: u32,
}

pub const UNIT_DIR: &str = "/etc/systemd/system";
pub const JOB_DIR: &str = "/etc/bkc/jobs";
pub const KNOWN_HOSTS_PATH: &str = "/etc/bkc/known_hosts";
/// Creates the sandbox's writable paths before the sandbox exists (see service.j2).
const MKDIR: &str = "/usr/bin/mkdir";

const SERVICE: &str = "service.j2";
const TIMER: &str = "timer.j2";

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
    env.add_template(SERVICE, include_str!("../../templates/service.j2"))
        .expect("service template parses");
    env.add_template(TIMER, include_str!("../../templates/timer.j2"))
        .expect("timer template parses");
    escape::register(&mut env);
    env
}

/// Render every host's files. `only` limits the output to those hosts (all when empty).
pub fn emit(topology: &Topology, only: &[String]) -> Result<Artifacts, EmitError> {
    let env = environment();
    let mut by_host: BTreeMap<&str, Vec<&Job>> = topology
        .hosts
        .keys()
        .filter(|h| only.is_empty() || only.contains(h))
        .map(|h| (h.as_str(), Vec::new()))
        .collect();
    for job in topology.jobs.values() {
        if let Some(list) = by_host.get_mut(job.host.as_str()) {
            list.push(job);
        }
    }
    let work: Vec<(&str, Vec<&Job>)> = by_host.into_iter().collect();
    let rendered = crate::parallel::map(&work, |(host, jobs)| {
        render_host(&env, topology, host, jobs)
    });
    let mut hosts = BTreeMap::new();
    for ((host, _), files) in work.iter().zip(rendered) {
        hosts.insert(host.to_string(), files?);
    }
    Ok(Artifacts { hosts })
}

fn render_host(
    env: &Environment,
    topology: &Topology,
    host: &str,
    jobs: &[&Job],
) -> Result<HostFiles, EmitError> {
    let mut files = HostFiles::default();
    for job in jobs {
        render_job(env, job, &mut files)?;
    }
    if let Some(kh) = known_hosts(topology, jobs) {
        files.files.insert(
            KNOWN_HOSTS_PATH.to_string(),
            File {
                bytes: kh.into_bytes(),
                mode: 0o644,
            },
        );
    }
    let manifest = Manifest::of(host, &files);
    files.files.insert(
        MANIFEST_PATH.to_string(),
        File {
            bytes: manifest.to_json().into_bytes(),
            mode: 0o644,
        },
    );
    Ok(files)
}

fn render_job(env: &Environment, job: &Job, files: &mut HostFiles) -> Result<(), EmitError> {
    let unit = format!("bkc-{}", job.name);
    let spec_path = format!("{JOB_DIR}/{}.json", job.name);
    let render = |name: &str, ctx: minijinja::Value| {
        env.get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|source| EmitError {
                what: format!("{name} for job {}", job.name),
                source,
            })
    };
    let svc = &job.service;
    // Two minutes past the runner's own timeout, so the runner always gets to clean up first.
    let start_timeout = svc
        .timeout_secs
        .map_or_else(|| "infinity".to_string(), |t| format_duration(t + 120));
    let service = render(
        SERVICE,
        context! {
            description => job.description.clone().unwrap_or_else(|| format!("bkc backup job {}", job.name)),
            runner => svc.runner,
            spec_path => spec_path,
            start_timeout => start_timeout,
            nice => job.spec.nice,
            io_class => job.spec.io_class.map(|c| match c {
                IoClass::Realtime => "realtime",
                IoClass::BestEffort => "best-effort",
                IoClass::Idle => "idle",
            }),
            read_write_paths => svc.read_write_paths,
            mkdir => MKDIR,
            protect_home => if svc.writes_home { "no" } else { "read-only" },
        },
    )?;
    files.files.insert(
        format!("{UNIT_DIR}/{unit}.service"),
        File {
            bytes: service.into_bytes(),
            mode: 0o644,
        },
    );
    if let Some(t) = &job.timer {
        let timer = render(
            TIMER,
            context! {
                job => job.name,
                describe => t.describe,
                on_calendar => t.on_calendar,
                persistent => t.persistent,
                random_delay => t.random_delay_secs.map(format_duration),
                accuracy => t.accuracy_secs.map(format_duration),
                unit => format!("{unit}.service"),
            },
        )?;
        files.files.insert(
            format!("{UNIT_DIR}/{unit}.timer"),
            File {
                bytes: timer.into_bytes(),
                mode: 0o644,
            },
        );
    }
    files.files.insert(
        spec_path,
        File {
            bytes: job.spec.to_json().into_bytes(),
            mode: 0o644,
        },
    );
    Ok(())
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
        let pattern = if h.port == 22 {
            h.address.clone()
        } else {
            format!("[{}]:{}", h.address, h.port)
        };
        for key in &h.host_keys {
            out.push_str(&format!("{pattern} {key}\n"));
        }
    }
    (!out.is_empty()).then_some(out)
}
