//! The settings of every unit, computed once as data.
//!
//! A job's service and timer are lists of sections of `key=value` settings, with values already
//! escaped for systemd. `unit.j2` writes them as unit files and `nixos.nix.j2` writes the same
//! settings as NixOS options; neither template decides a setting or a value, so a unit file and
//! the NixOS module for the same host cannot disagree.

use serde::Serialize;

use super::escape::{unit_arg, unit_exec, unit_path, unit_text};
use crate::schedule::format_duration;
use crate::spec::{IoClass, NotifyEvent, ScheduledVerify, SourceSnapshot, Watch};
use crate::topology::{Job, JobKey, Service, Timer};

/// Creates the sandbox's writable paths before the sandbox exists (see [`sandbox`]).
const MKDIR: &str = "/usr/bin/mkdir";

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Unit {
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Section {
    pub name: &'static str,
    pub settings: Vec<Setting>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Setting {
    pub key: &'static str,
    /// What follows `key=`, escaped for systemd; for a command line, what follows the program.
    pub value: String,
    /// The program of a command line, kept apart because its path differs between a unit file
    /// (the topology's runner, /usr/bin/mkdir) and a NixOS module (paths in the Nix store).
    pub exec: Option<Exec>,
    /// Why the setting is there: comment lines written above it.
    pub comment: Vec<&'static str>,
    /// A blank line above it (and its comment), to set a group of settings apart.
    pub gap: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Exec {
    /// systemd's command-line prefix: `+` runs the command outside the sandbox.
    pub prefix: &'static str,
    /// Which program: `runner` or `mkdir`, also the names of the NixOS module's options for them.
    pub program: &'static str,
    /// Its path in a unit file, escaped.
    pub path: String,
}

fn set(key: &'static str, value: impl Into<String>) -> Setting {
    Setting {
        key,
        value: value.into(),
        exec: None,
        comment: Vec::new(),
        gap: false,
    }
}

impl Setting {
    fn why(mut self, comment: &'static str) -> Self {
        self.comment = comment.lines().collect();
        self
    }

    fn apart(mut self) -> Self {
        self.gap = true;
        self
    }

    /// The setting runs `program` at `path`, escaped as the program of a command line
    /// ([`unit_exec`]) in one place, so that no unit escapes it as an argument.
    fn exec(
        mut self,
        prefix: &'static str,
        program: &'static str,
        path: &str,
    ) -> Result<Self, minijinja::Error> {
        self.exec = Some(Exec {
            prefix,
            program,
            path: unit_exec(path)?,
        });
        Ok(self)
    }
}

/// `bkc-notify@<job>`: the unit that tells the job's `notify` commands how a run ended. An
/// instance name, so no job's own unit (`bkc-<job>`, whose name has no `@`) can share it.
pub(crate) fn notify_unit_name(job: &Job) -> String {
    bkc_contract::names::notify_unit_base(&job.name)
}

/// `bkc-fresh-<job>`: the freshness check, on a destination, of the data the job sends there.
pub(crate) fn fresh_unit_name(job: &Job) -> String {
    bkc_contract::names::fresh_unit_base(&job.name)
}

/// How often a destination checks that data arrived: often enough for an `alert-after` of an
/// hour, and cheap (it reads a few small files).
const FRESH_CHECK_CALENDAR: &str = "*:0/15";

/// The job's service: run the runner on the job spec at `spec_path`, sandboxed from the topology.
pub(crate) fn service(job: &Job, spec_path: &str) -> Result<Unit, minijinja::Error> {
    let description = job
        .description
        .clone()
        .unwrap_or_else(|| format!("bkc backup job {}", job.name));
    let mut unit = vec![
        set("Description", unit_text(&description)?),
        set("After", "network-online.target"),
        set("Wants", "network-online.target"),
    ];
    let on = |e: NotifyEvent| job.spec.notify.iter().any(|n| n.on.contains(&e));
    let notify = format!("{}.service", notify_unit_name(job));
    if on(NotifyEvent::Failure) {
        unit.push(set("OnFailure", notify.clone()).why(
            "systemd tells the job's notify commands of a failure, also when the runner was killed.",
        ));
    }
    if on(NotifyEvent::Success) || on(NotifyEvent::Recovery) {
        unit.push(set("OnSuccess", notify));
    }
    let mut service = run(job, spec_path)?;
    service.extend(sandbox(&job.service, job.key.as_ref())?);
    Ok(Unit {
        sections: vec![
            Section {
                name: "Unit",
                settings: unit,
            },
            Section {
                name: "Service",
                settings: service,
            },
        ],
    })
}

/// The job's notification unit: `bkc-run --notify` on the job spec, in the job's own sandbox.
pub(crate) fn notify_service(job: &Job, spec_path: &str) -> Result<Unit, minijinja::Error> {
    let mut service = vec![
        set("Type", "oneshot"),
        set("ExecStart", format!("--notify {}", unit_arg(spec_path)?)).exec(
            "",
            "runner",
            &job.service.runner,
        )?,
        set("TimeoutStartSec", "10min"),
        set("UMask", "0077"),
    ];
    service.extend(sandbox(&job.service, None)?);
    Ok(Unit {
        sections: vec![
            Section {
                name: "Unit",
                settings: vec![set(
                    "Description",
                    format!("Notifications of bkc job {}", job.name),
                )],
            },
            Section {
                name: "Service",
                settings: service,
            },
        ],
    })
}

/// The freshness check of `job`'s data on a destination: `bkc-run --fresh` on the freshness
/// spec at `path`. It writes only its own memory under the state directory.
pub(crate) fn fresh_service(job: &Job, path: &str) -> Result<Unit, minijinja::Error> {
    let state = &job.spec.state_dir;
    let svc = helper_service(job, state.clone());
    let mut service = vec![
        set("Type", "oneshot"),
        set("ExecStart", format!("--fresh {}", unit_arg(path)?)).exec("", "runner", &svc.runner)?,
        set("TimeoutStartSec", "10min"),
        set("UMask", "0077"),
    ];
    service.extend(sandbox(&svc, None)?);
    Ok(Unit {
        sections: vec![
            Section {
                name: "Unit",
                settings: vec![set(
                    "Description",
                    format!("Has the data of bkc job {} arrived recently?", job.name),
                )],
            },
            Section {
                name: "Service",
                settings: service,
            },
        ],
    })
}

/// The timer of a freshness check.
pub(crate) fn fresh_timer(job: &Job) -> Result<Unit, minijinja::Error> {
    let name = fresh_unit_name(job);
    Ok(Unit {
        sections: vec![
            Section {
                name: "Unit",
                settings: vec![set(
                    "Description",
                    format!("Timer for the freshness check of bkc job {}", job.name),
                )],
            },
            Section {
                name: "Timer",
                settings: vec![
                    set("OnCalendar", FRESH_CHECK_CALENDAR),
                    set("AccuracySec", "1min"),
                    set("Unit", format!("{name}.service")),
                ],
            },
            Section {
                name: "Install",
                settings: vec![set("WantedBy", "timers.target")],
            },
        ],
    })
}

/// `bkc-verify@<job>.service`: `bkc-run verify --record` on the job spec, in the job's own
/// sandbox and with its priority, its failure told as a failed run's is.
pub(crate) fn verify_service(
    job: &Job,
    spec_path: &str,
    v: &ScheduledVerify,
) -> Result<Unit, minijinja::Error> {
    let mut unit = vec![
        set(
            "Description",
            unit_text(&format!("Verify the copies of bkc job {}", job.name))?,
        ),
        set("After", "network-online.target"),
        set("Wants", "network-online.target"),
    ];
    if job
        .spec
        .notify
        .iter()
        .any(|n| n.on.contains(&NotifyEvent::Failure))
    {
        unit.push(set("OnFailure", format!("{}.service", notify_unit_name(job))).why(
            "A verify that finds corrupted or missing files, or cannot compare, is told as a failed run is.",
        ));
    }
    let mut args = String::from("verify --record");
    if v.checksum {
        args.push_str(" --checksum");
    }
    args.push(' ');
    args.push_str(&unit_arg(spec_path)?);
    let mut service = vec![
        set("Type", "oneshot"),
        set("ExecStart", args).exec("", "runner", &job.service.runner)?,
        set("TimeoutStartSec", "infinity")
            .why("Reading every byte of a large backup may take longer than any run of the job."),
        set("KillMode", "mixed"),
        set("TimeoutStopSec", "30s"),
    ];
    service.extend(priority(job));
    service.push(set("UMask", "0077"));
    service.extend(sandbox(&job.service, job.key.as_ref())?);
    Ok(Unit {
        sections: vec![
            Section {
                name: "Unit",
                settings: unit,
            },
            Section {
                name: "Service",
                settings: service,
            },
        ],
    })
}

/// `bkc-verify@<job>.timer`, on the calendar of the job's `verify`.
pub(crate) fn verify_timer(job: &Job, v: &ScheduledVerify) -> Result<Unit, minijinja::Error> {
    let base = bkc_contract::names::verify_unit_base(&job.name);
    Ok(Unit {
        sections: vec![
            Section {
                name: "Unit",
                settings: vec![set(
                    "Description",
                    unit_text(&format!(
                        "Timer for verifying bkc job {}: {}",
                        job.name, v.calendar
                    ))?,
                )],
            },
            Section {
                name: "Timer",
                settings: vec![
                    set("OnCalendar", unit_text(&v.calendar)?),
                    set("Persistent", "true"),
                    set("Unit", format!("{base}.service")),
                ],
            },
            Section {
                name: "Install",
                settings: vec![set("WantedBy", "timers.target")],
            },
        ],
    })
}

/// The sandbox of a job's helper service (freshness check, watcher): the job's runner, one
/// writable directory, no timeout of the job's.
fn helper_service(job: &Job, writes: String) -> Service {
    Service {
        runner: job.service.runner.clone(),
        writes_home: crate::analyze::paths::is_home(&writes),
        read_write_paths: vec![writes],
        timeout_secs: None,
    }
}

/// `bkc-watch@<job>.service`: `bkc-run watch` on the job spec, running as long as the host does.
/// It reads the watched paths (all the host is read-only in the sandbox), writes only the
/// trigger's directory, and needs neither network nor any capability but reading everything.
pub(crate) fn watch_service(
    job: &Job,
    spec_path: &str,
    w: &Watch,
) -> Result<Unit, minijinja::Error> {
    let trigger_dir = std::path::Path::new(&w.trigger)
        .parent()
        .map_or_else(|| "/".to_string(), |p| p.display().to_string());
    let svc = helper_service(job, trigger_dir);
    let mut service = vec![
        set("Type", "simple"),
        set("ExecStart", format!("watch {}", unit_arg(spec_path)?)).exec("", "runner", &svc.runner)?,
        set("Restart", "on-failure").why(
            "The watcher runs as long as the host; one that fails (a watch limit reached) is tried again.",
        ),
        set("RestartSec", "30s"),
        set("UMask", "0077"),
    ];
    service.extend(sandbox(&svc, None)?);
    for s in &mut service {
        match s.key {
            "RestrictAddressFamilies" => s.value = "AF_UNIX".into(),
            "CapabilityBoundingSet" => {
                s.value = "CAP_DAC_READ_SEARCH".into();
                s.comment = vec![
                    "Watching needs to read every directory below the watched paths, nothing more.",
                ];
            }
            _ => {}
        }
    }
    service.push(set("PrivateNetwork", "yes"));
    Ok(Unit {
        sections: vec![
            Section {
                name: "Unit",
                settings: vec![
                    set(
                        "Description",
                        format!("Watch the files of bkc job {}", job.name),
                    ),
                    set(
                        "X-Bkc-Spec",
                        format!("sha256:{}", super::sha256_hex(job.spec.to_json().as_bytes())),
                    )
                    .why(
                        "The watcher reads the job spec only when it starts: a changed spec changes this\n\
                         unit, and a deploy restarts a changed watcher.",
                    ),
                ],
            },
            Section {
                name: "Service",
                settings: service,
            },
            Section {
                name: "Install",
                settings: vec![set("WantedBy", "multi-user.target")],
            },
        ],
    })
}

/// `bkc-watch@<job>.path`: starts the job's service when its watcher writes the trigger file.
/// `PathChanged=` fires when the file is closed after writing, once per trigger (`PathModified=`
/// would fire on the write as well).
pub(crate) fn watch_path(job: &Job, w: &Watch) -> Result<Unit, minijinja::Error> {
    Ok(Unit {
        sections: vec![
            Section {
                name: "Unit",
                settings: vec![set(
                    "Description",
                    format!("Start bkc job {} when its watched files changed", job.name),
                )],
            },
            Section {
                name: "Path",
                settings: vec![
                    set("PathChanged", unit_path(&w.trigger)?),
                    set("Unit", bkc_contract::names::service_unit(&job.name)),
                ],
            },
            Section {
                name: "Install",
                settings: vec![set("WantedBy", "paths.target")],
            },
        ],
    })
}

/// The job's `nice` and `io-class`.
fn priority(job: &Job) -> Vec<Setting> {
    let mut out = Vec::new();
    if let Some(nice) = job.spec.nice {
        out.push(set("Nice", nice.to_string()));
    }
    if let Some(class) = job.spec.io_class {
        out.push(set(
            "IOSchedulingClass",
            match class {
                IoClass::Realtime => "realtime",
                IoClass::BestEffort => "best-effort",
                IoClass::Idle => "idle",
            },
        ));
    }
    out
}

/// How the service runs the runner: its command, its timeouts and its priority.
fn run(job: &Job, spec_path: &str) -> Result<Vec<Setting>, minijinja::Error> {
    let svc = &job.service;
    let mounted = job.spec.syncs.iter().any(|s| {
        matches!(
            s.source_snapshot,
            Some(SourceSnapshot::Zfs { .. } | SourceSnapshot::Lvm { .. })
        )
    });
    // Two minutes past the runner's own timeout, so the runner always gets to clean up first;
    // with ZFS or LVM snapshots, whose step before the run may wait for the locks as long as the
    // run may, twice that.
    let runs = if mounted { 2 } else { 1 };
    let start_timeout = svc.timeout_secs.map_or_else(
        || "infinity".to_string(),
        |t| format_duration(t.saturating_mul(runs) + 120),
    );
    let mut service = vec![
        set("Type", "oneshot"),
        set("ExecStart", unit_arg(spec_path)?).exec("", "runner", &svc.runner)?,
        set("TimeoutStartSec", start_timeout).why(
            "The runner enforces the job's timeout itself and releases its locks; systemd's is a backstop.",
        ),
        set("KillMode", "mixed").why(
            "SIGTERM goes to the runner alone, which forwards it to rsync and cleans up; then SIGKILL to all.",
        ),
        set("TimeoutStopSec", "30s"),
    ];
    if job.spec.syncs.iter().any(|s| s.source_snapshot.is_some()) {
        let drop = format!("drop-source-snapshots {}", unit_arg(spec_path)?);
        service.push(
            set("ExecStartPre", drop.clone())
                .exec("+", "runner", &svc.runner)?
                .why(
                    "Source snapshots are deleted outside the sandbox, which has no CAP_SYS_ADMIN to delete\n\
                     a btrfs subvolume: a killed run's before this run, this run's after it.",
                ),
        );
        if mounted {
            service.push(
                set(
                    "ExecStartPre",
                    format!("take-source-snapshots {}", unit_arg(spec_path)?),
                )
                .exec("+", "runner", &svc.runner)?
                .why(
                    "ZFS and LVM snapshots are taken and mounted read-only outside the sandbox, under the\n\
                     job's locks; the run copies from the mount.",
                ),
            );
        }
        service.push(set("ExecStopPost", drop).exec("+", "runner", &svc.runner)?);
    }
    service.extend(priority(job));
    service.push(set("UMask", "0077"));
    Ok(service)
}

/// Hardening that is the same for every job.
const HARDENING: &[(&str, &str)] = &[
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("PrivateIPC", "yes"),
    ("PrivateMounts", "yes"),
    ("NoNewPrivileges", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("ProtectProc", "invisible"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("RemoveIPC", "yes"),
    ("KeyringMode", "private"),
    ("DevicePolicy", "closed"),
    ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
    ("SystemCallArchitectures", "native"),
    ("SystemCallFilter", "@system-service"),
    ("SystemCallErrorNumber", "EPERM"),
];

/// The sandbox: writable only where the job's data goes, its own key the only one it sees, and
/// the common hardening.
fn sandbox(svc: &Service, key: Option<&JobKey>) -> Result<Vec<Setting>, minijinja::Error> {
    let mut service = vec![
        set("ProtectSystem", "strict")
            .why("Sandbox, derived from the topology: the job may write only where its data goes.")
            .apart(),
    ];
    for path in &svc.read_write_paths {
        service.push(set("ReadWritePaths", format!("-{}", unit_path(path)?)));
    }
    let mut mkdir_args = String::from("-p --");
    for path in &svc.read_write_paths {
        mkdir_args.push(' ');
        mkdir_args.push_str(&unit_arg(path)?);
    }
    service.push(
        set("ExecStartPre", mkdir_args)
            .exec("+", "mkdir", MKDIR)?
            .why(
                "Writable paths are created before the sandbox is set up: a missing mount point would\n\
                 otherwise stop the unit from starting at all.",
            ),
    );
    service.push(set(
        "ProtectHome",
        if svc.writes_home { "no" } else { "read-only" },
    ));
    if let Some(key) = key {
        service.push(
            set(
                "TemporaryFileSystem",
                format!("{}:ro", unit_path(bkc_contract::names::KEYS_DIR)?),
            )
            .why("Of the jobs' keys on this host, only this job's own is in its sandbox."),
        );
        service.push(set(
            "BindReadOnlyPaths",
            format!("-{}", unit_path(&key.path)?),
        ));
    }
    for (key, value) in HARDENING {
        service.push(set(key, *value));
    }
    service.push(
        set(
            "CapabilityBoundingSet",
            "CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID",
        )
        .why(
            "What rsync needs as root to read everything and to keep owners and modes on what it writes.",
        ),
    );
    service.push(set("AmbientCapabilities", ""));
    Ok(service)
}

/// `bkc-prune@<job>.service` on a host the job pushes append-only snapshots to: `<runner> prune
/// <job>`, idle for I/O, in the same sandbox as a job, writable only where the snapshots and the
/// job's lock on this host are.
pub(crate) fn prune_service(
    job: &str,
    runner: &str,
    read_write_paths: Vec<String>,
) -> Result<Unit, minijinja::Error> {
    let unit = vec![
        set(
            "Description",
            unit_text(&format!("Prune the snapshots bkc job {job} pushed here"))?,
        ),
        set("After", "local-fs.target"),
    ];
    let args = format!("{} {}", unit_arg("prune")?, unit_arg(job)?);
    let mut service = vec![
        set("Type", "oneshot"),
        set("ExecStart", args).exec("", "runner", runner)?,
        set("IOSchedulingClass", "idle"),
        set("UMask", "0077"),
    ];
    let writes_home = read_write_paths
        .iter()
        .any(|p| crate::analyze::paths::is_home(p));
    service.extend(sandbox(
        &Service {
            runner: runner.to_string(),
            read_write_paths,
            writes_home,
            timeout_secs: None,
        },
        None,
    )?);
    Ok(Unit {
        sections: vec![
            Section {
                name: "Unit",
                settings: unit,
            },
            Section {
                name: "Service",
                settings: service,
            },
        ],
    })
}

/// `bkc-prune@<job>.timer`: daily, caught up after downtime.
pub(crate) fn prune_timer(job: &str) -> Result<Unit, minijinja::Error> {
    let base = bkc_contract::names::prune_unit_base(job);
    Ok(Unit {
        sections: vec![
            Section {
                name: "Unit",
                settings: vec![set(
                    "Description",
                    unit_text(&format!("Timer for pruning bkc job {job}'s snapshots"))?,
                )],
            },
            Section {
                name: "Timer",
                settings: vec![
                    set("OnCalendar", "daily"),
                    set("Persistent", "true"),
                    set("RandomizedDelaySec", "1h"),
                    set("Unit", format!("{base}.service")),
                ],
            },
            Section {
                name: "Install",
                settings: vec![set("WantedBy", "timers.target")],
            },
        ],
    })
}

/// The job's timer, which starts its service.
pub(crate) fn timer(job: &Job, t: &Timer) -> Result<Unit, minijinja::Error> {
    let unit = vec![set(
        "Description",
        format!(
            "Timer for bkc job {}: {}",
            job.name,
            unit_text(&t.describe)?
        ),
    )];
    let mut timer = Vec::new();
    for line in &t.on_calendar {
        timer.push(set("OnCalendar", unit_text(line)?));
    }
    timer.push(set(
        "Persistent",
        if t.persistent { "true" } else { "false" },
    ));
    if let Some(secs) = t.random_delay_secs {
        timer.push(set("RandomizedDelaySec", format_duration(secs)));
    }
    if let Some(secs) = t.accuracy_secs {
        timer.push(set("AccuracySec", format_duration(secs)));
    }
    timer.push(set("Unit", bkc_contract::names::service_unit(&job.name)));
    Ok(Unit {
        sections: vec![
            Section {
                name: "Unit",
                settings: unit,
            },
            Section {
                name: "Timer",
                settings: timer,
            },
            Section {
                name: "Install",
                settings: vec![set("WantedBy", "timers.target")],
            },
        ],
    })
}
