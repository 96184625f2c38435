//! The fault campaign: the seed chain (desktop -> backup_a with `--delete`, backup_a -> backup_b
//! as append-only hardlinked snapshots on a small tmpfs, pruned by backup_b's own
//! `bkc-run prune`) runs again and again on namespace hosts with real sshd and rsync, every
//! remote step through `bkc-run serve <job>` behind the job's own key, and every chain run meets
//! one fault:
//!
//! - kill -9 of the runner, of rsync, of the ssh client or of the far sshd's sessions, at a
//!   random moment of the run;
//! - the link to the far host cut and restored during the run;
//! - the snapshot destination's file system filled up;
//! - the clocks of the job's host and of the snapshots' host a day back, or a week ahead, for
//!   one run. The hosts share the machine's clock, which a test must not move, so every process
//!   of the hosts' sessions (the runner, `bkc-run serve` and `bkc-run prune`, and what they start)
//!   reads its host's clock through a small `LD_PRELOAD` library, compiled here, that adds the
//!   host's `/srv/.clock-shift` seconds to the time;
//! - a power cut in the middle of a snapshot: every process of the three hosts but their
//!   listening sshd killed at once.
//!
//! After every fault the next run must succeed; every destination must equal its source as of
//! its last successful run (trees compared by content); no complete snapshot that retention keeps
//! may be lost or changed, and a snapshot that looks complete must hold a whole run's data; no
//! lock may be left held; no partial snapshot may be a base.
//!
//! A fourth host takes `bkc apply`s over real ssh (bkc's own transport, from the bridge's
//! namespace), into a stand-in root with the stand-in systemctl of the `Local` transport: two
//! generations of a topology, applied in turn, meet a link cut during the apply, or a second
//! apply at once. After each the host must hold exactly one whole generation (its files those
//! `bkc build` makes for one of them, byte for byte), no deploy lock held, and the next apply
//! must succeed and leave nothing to plan.
//!
//! `fault_campaign_slice` runs one fault of each kind (CI runs it with `--ignored`).
//! `BKC_FAULTS=1000 cargo test --test integration faults::fault_campaign -- --ignored` is the
//! documented campaign, which also rewrites the table in docs/RELIABILITY.md. `BKC_FAULT_SEED`
//! replays a campaign.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common;
use crate::harness::*;
use bkc::deploy::transport::Transport as _;
use bkc::spec::{JobSpec, Location, LockMode, Retention, Snapshot};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillRunner,
    KillRsync,
    KillSsh,
    KillSshd,
    LinkCut,
    DiskFull,
    ClockBack,
    ClockForward,
    PowerCut,
    ApplyLinkCut,
    ApplyTwice,
}

const FAULTS: [Fault; 11] = [
    Fault::KillRunner,
    Fault::KillRsync,
    Fault::KillSsh,
    Fault::KillSshd,
    Fault::LinkCut,
    Fault::DiskFull,
    Fault::ClockBack,
    Fault::ClockForward,
    Fault::PowerCut,
    Fault::ApplyLinkCut,
    Fault::ApplyTwice,
];

impl Fault {
    fn describe(self) -> &'static str {
        match self {
            Fault::KillRunner => "kill -9 of the runner",
            Fault::KillRsync => "kill -9 of rsync",
            Fault::KillSsh => "kill -9 of the ssh client",
            Fault::KillSshd => "kill -9 of the far sshd's sessions",
            Fault::LinkCut => "link cut for 0.3 to 2 s",
            Fault::DiskFull => "snapshot file system full",
            Fault::ClockBack => "clocks a day back for a run",
            Fault::ClockForward => "clocks a week ahead for a run",
            Fault::PowerCut => "power cut mid-snapshot (everything killed)",
            Fault::ApplyLinkCut => "link cut for 0.3 to 6 s during `bkc apply`",
            Fault::ApplyTwice => "two `bkc apply` at once on one host",
        }
    }

    /// Faults that only mean something for the snapshotting job.
    fn on_snapshots_only(self) -> bool {
        matches!(
            self,
            Fault::DiskFull | Fault::ClockBack | Fault::ClockForward | Fault::PowerCut
        )
    }
}

#[derive(Default, Clone, Copy)]
struct Tally {
    tries: u32,
    /// Faulted runs that failed. The others met their fault and still succeeded: a kill after
    /// the run's last step, a link cut that TCP rode out, an rsync killed and retried, a clock off
    /// by a day.
    hit: u32,
    data_lost: u32,
    locks_left: u32,
    partial_base: u32,
    /// Applies only: the host held neither generation whole.
    mixed: u32,
    next_ok: u32,
}

const KEEP_LAST: u32 = 3;
/// Each host's clock offset, in seconds, as the clock library reads it.
const CLOCK_SHIFT: &str = "/srv/.clock-shift";

/// The clock library: `clock_gettime` (and `gettimeofday`, `time`) of the wall clock plus the
/// seconds in the file `$BKC_CLOCK_SHIFT_FILE`, read at every call.
const CLOCK_SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long shift(void) {
    const char *p = getenv("BKC_CLOCK_SHIFT_FILE");
    long s = 0;
    FILE *f = p ? fopen(p, "r") : NULL;
    if (f) {
        if (fscanf(f, "%ld", &s) != 1) s = 0;
        fclose(f);
    }
    return s;
}

int clock_gettime(clockid_t c, struct timespec *t) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int r = real(c, t);
    if (r == 0 && (c == CLOCK_REALTIME || c == CLOCK_REALTIME_COARSE)) t->tv_sec += shift();
    return r;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    int r = clock_gettime(CLOCK_REALTIME, &ts);
    if (r == 0 && tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    (void)tz;
    return r;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}
"#;
const SNAPS: &str = "/srv/offsite/backup_a";
const SEED_LOCK: &str = "/srv/seed-locks/desktop-sync.lock";

/// Content digest of a tree: every path under `root` (sorted), its kind, and its bytes or link
/// target. Modes and times are left out: the chain promises the data.
fn digest(root: &Path) -> String {
    let mut entries = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let Ok(m) = p.symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                entries.push((rel, "d".to_string()));
                stack.push(p);
            } else if m.is_symlink() {
                let t = std::fs::read_link(&p).unwrap_or_default();
                entries.push((rel, format!("l{}", t.display())));
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                entries.push((rel, format!("f{:x}", Sha256::digest(&bytes))));
            }
        }
    }
    entries.sort();
    let mut h = Sha256::new();
    for (p, v) in entries {
        h.update(p.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    format!("{:x}", h.finalize())
}

/// A process in a namespace: pid, command name, parent.
fn procs(ns: &str) -> Vec<(i32, String, i32)> {
    let out = std::process::Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let open = stat.find('(')?;
            let close = stat.rfind(')')?;
            let comm = stat[open + 1..close].to_string();
            let ppid = stat[close + 2..].split_whitespace().nth(1)?.parse().ok()?;
            Some((p.parse().ok()?, comm, ppid))
        })
        .collect()
}

/// The sshd each harness host listens with: started by this process.
fn is_listener(p: &(i32, String, i32)) -> bool {
    p.1 == "sshd" && p.2 == std::process::id() as i32
}

fn kill_in(ns: &str, pick: impl Fn(&(i32, String, i32)) -> bool) -> usize {
    let victims: Vec<i32> = procs(ns)
        .iter()
        .filter(|p| !is_listener(p) && pick(p))
        .map(|p| p.0)
        .collect();
    for &v in &victims {
        signal(v, libc::SIGKILL);
    }
    victims.len()
}

/// Two generations of a topology for the host `desktop` (h4), which `bkc apply` switches
/// between: deploy_local's, with h4's address and host key, and one with a changed schedule and
/// an exclude, a job removed and one added.
fn generations(addr: &str, key: &str) -> [String; 2] {
    let topology = crate::deploy_local::TOPOLOGY;
    let desktop = topology.find("host \"desktop\"").unwrap();
    let end = desktop + topology[desktop..].find('}').unwrap() + 1;
    let first = format!(
        "{}host \"desktop\" address=\"{addr}\" {{\n    host-key \"{key}\"\n}}{}",
        &topology[..desktop],
        &topology[end..]
    );
    let jobs = first.find("job \"music\"").unwrap();
    let second = format!(
        "{}{}",
        &first[..jobs],
        r#"job "music" on="desktop" {
    schedule "hourly"
    sync "/home/music/" "nas:/srv/music/" {
        exclude "*.tmp"
    }
}
job "docs" on="desktop" {
    schedule "daily"
    sync "/home/docs/" "nas:/srv/docs/"
}
"#
    );
    [first, second]
}

/// Where h4's stand-in root is, as h4 sees it.
const STANDIN: &str = "/srv/root";

/// bkc's own ssh transport to the host, with the preamble of the `Local` transport: every path
/// under the stand-in root, systemctl the stand-in.
struct Standin {
    ssh: bkc::deploy::transport::Ssh,
    preamble: String,
}

impl bkc::deploy::transport::Transport for Standin {
    fn host(&self) -> &str {
        self.ssh.host()
    }

    fn preamble(&self) -> String {
        self.preamble.clone()
    }

    fn spawn(&self, command: &str) -> std::io::Result<std::process::Child> {
        self.ssh.spawn(command)
    }
}

/// `bkc apply` to h4, as the operator runs it from the bridge's namespace.
struct Deploy {
    ctl: String,
    key: PathBuf,
    /// h4's real path of the stand-in root.
    root: PathBuf,
    gens: Vec<(bkc::deploy::Desired, bkc::deploy::transport::Target)>,
    /// Every file either generation has.
    paths: BTreeSet<String>,
    runner: Vec<u8>,
    arch: String,
    /// The generation the host holds whole.
    on: usize,
}

impl Deploy {
    fn new(net: &Net) -> Deploy {
        let h4 = net.host("h4");
        let key = std::fs::read_to_string(h4.dir.join("host_key.pub")).unwrap();
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        let gens: Vec<_> = generations(&h4.addr, &key.join(" "))
            .iter()
            .map(|text| {
                let c = bkc::analyze::compile("faults.kdl", text);
                let topo = c.topology.as_ref().expect("the apply topology compiles");
                let a = bkc::emit::emit(topo, &["desktop".to_string()]).unwrap();
                bkc::deploy::desired(topo, a).into_iter().next().unwrap()
            })
            .collect();
        let paths = gens
            .iter()
            .flat_map(|(w, _)| w.files.files.keys().cloned())
            .collect();
        let arch = std::process::Command::new("uname")
            .arg("-m")
            .output()
            .unwrap();
        let d = Deploy {
            ctl: net.ctl.clone(),
            key: net.dir.join("client_key"),
            root: net.srv("h4").join(STANDIN.trim_start_matches("/srv/")),
            gens,
            paths,
            runner: b"#!/bin/sh\necho stand-in runner\n".to_vec(),
            arch: String::from_utf8(arch.stdout).unwrap().trim().to_string(),
            on: 0,
        };
        std::fs::create_dir_all(&d.root).unwrap();
        let r = d.apply(0);
        assert!(r.is_ok(), "the first apply: {r:?}");
        assert_eq!(
            d.holds(),
            Some(0),
            "the first apply left a whole generation"
        );
        d
    }

    /// Plan and apply generation `g` (observe, compare, apply, as `bkc apply` does), from the
    /// bridge's namespace: this thread moves into it.
    fn apply(&self, g: usize) -> Result<u64, String> {
        self.in_ctl(|| self.apply_here(g))
    }

    /// `f` with h4 behind bkc's real ssh transport and the stand-in root, generation `g`'s
    /// build, and what h4 holds now against it.
    fn on_h4<R>(
        &self,
        g: usize,
        f: impl FnOnce(&Standin, &bkc::deploy::plan::Observed, &str) -> Result<R, String>,
    ) -> Result<R, String> {
        let (w, target) = &self.gens[g];
        let session = bkc::deploy::transport::SshSession::new(
            [target],
            None,
            vec![format!("IdentityFile={}", self.key.display())],
        )
        .map_err(|e| e.to_string())?;
        let t = Standin {
            ssh: session.host("desktop", target, 0),
            preamble: bkc::deploy::transport::Local::new("desktop", Path::new(STANDIN)).preamble(),
        };
        let sha = bkc::emit::sha256_hex(&self.runner);
        let obs = bkc::deploy::plan::observe(&t, w).map_err(|e| e.to_string())?;
        f(&t, &obs, &sha)
    }

    fn apply_here(&self, g: usize) -> Result<u64, String> {
        let w = &self.gens[g].0;
        self.on_h4(g, |t, obs, sha| {
            let p = bkc::deploy::plan::compare(w, obs, Some((sha, &self.arch)));
            let runner = bkc::deploy::apply::Runner {
                bytes: &self.runner,
                arch: &self.arch,
            };
            bkc::deploy::apply::apply_host(t, w, obs, &p, Some(&runner), &|_| {})
                .map(|a| a.generation)
                .map_err(|e| e.to_string())
        })
    }

    /// Whether a plan for generation `g` finds nothing to do.
    fn plan_is_empty(&self, g: usize) -> Result<bool, String> {
        self.in_ctl(|| self.plan_here(g))
    }

    fn plan_here(&self, g: usize) -> Result<bool, String> {
        let w = &self.gens[g].0;
        self.on_h4(g, |_, obs, sha| {
            Ok(!bkc::deploy::plan::compare(w, obs, Some((sha, &self.arch))).has_changes())
        })
    }

    /// Run `f` in a thread of its own in the bridge's namespace.
    fn in_ctl<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                enter_netns(&self.ctl);
                f()
            })
            .join()
            .unwrap()
        })
    }

    /// The generation whose files the host holds, all of them byte for byte and none of the
    /// other's, with its timers and only those enabled; `None` for a mix.
    fn holds(&self) -> Option<usize> {
        let wants = self.root.join("etc/systemd/system/timers.target.wants");
        let enabled: BTreeSet<String> = std::fs::read_dir(&wants)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        (0..self.gens.len()).find(|&g| {
            let files = &self.gens[g].0.files.files;
            let timers: BTreeSet<String> = files
                .keys()
                .filter_map(|p| p.strip_prefix("/etc/systemd/system/"))
                .filter(|n| n.ends_with(".timer") && !n.contains('/'))
                .map(String::from)
                .collect();
            timers == enabled
                && self.paths.iter().all(|p| {
                    let on = std::fs::read(self.root.join(p.trim_start_matches('/'))).ok();
                    on.as_deref() == files.get(p).map(|f| f.bytes.as_slice())
                })
        })
    }
}

/// Move this thread into the network namespace `name` (the children it starts follow).
fn enter_netns(name: &str) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
    // SAFETY: setns(2) on a descriptor we own; it changes this thread's namespace only.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
}

struct Chain {
    net: Net,
    deploy: Deploy,
    d2a: JobSpec,
    a2b: JobSpec,
    /// The clock library (see [`CLOCK_SHIM`]).
    shim: PathBuf,
    rng: common::Rng,
    /// Complete snapshots under SNAPS and their digests, as last checked.
    snaps: BTreeMap<String, String>,
    tally: BTreeMap<Fault, Tally>,
    /// What went wrong, for the report.
    notes: Vec<String>,
    /// The round being run, for the notes.
    round: usize,
}

impl Chain {
    fn new(seed: u64) -> Option<Chain> {
        if !common::require_tool("cc") {
            return None;
        }
        // h1 desktop, h2 backup_a, h3 backup_b; h4 takes the applies.
        let net = Net::new(4)?;
        // backup_b's snapshots live on a small file system of their own, in h3's namespace.
        let out = net.sh(
            "h3",
            "mkdir -p /srv/offsite && mount -t tmpfs -o size=24m bkc-small /srv/offsite",
        );
        assert!(out.status.success(), "{out:?}");
        let mut d2a = net.spec("desktop-to-a", "h1");
        let mut s = sync(at("h1", "/srv/home/"), at("h2", "/srv/backup/desktop/"));
        s.opts.extend(["--delete".into(), "--timeout=10".into()]);
        s.deletes = true;
        s.bwlimit = Some("1500".into());
        d2a.syncs.push(s);
        d2a.lock_files.push(Location {
            host: "h2".into(),
            path: SEED_LOCK.into(),
        });
        own_locks(&mut d2a);
        d2a.locks
            .push(lock("h2", "a-to-b", LockMode::Shared, "a-to-b"));
        let mut a2b = net.spec("a-to-b", "h2");
        let mut s = sync(at("h2", "/srv/backup/"), at("h3", SNAPS));
        s.opts.push("--timeout=10".into());
        s.bwlimit = Some("1500".into());
        // Append-only, as every snapshot a job pushes is by default: backup_b names each by
        // its own clock and prunes them itself.
        s.snapshot = Some(Snapshot {
            retention: Retention {
                keep_last: Some(KEEP_LAST),
                ..Default::default()
            },
            append_only: true,
        });
        a2b.syncs.push(s);
        own_locks(&mut a2b);
        a2b.locks
            .push(lock("h2", "desktop-to-a", LockMode::Shared, "desktop-to-a"));
        for spec in [&mut d2a, &mut a2b] {
            spec.locks.sort_by(|a, b| a.at.cmp(&b.at));
            spec.retries = 1;
            spec.retry_delay_secs = 1;
            spec.timeout_secs = Some(120);
            for l in &mut spec.locks {
                l.timeout_secs = 60;
            }
            // A key of its own, which the far hosts take only for `bkc-run serve <job>`.
            net.restrict(spec);
        }
        let deploy = Deploy::new(&net);
        let shim = net.dir.join("clock.so");
        std::fs::write(net.dir.join("clock.c"), CLOCK_SHIM).unwrap();
        run_ok(
            std::process::Command::new("cc")
                .args(["-shared", "-fPIC", "-o"])
                .arg(&shim)
                .arg(net.dir.join("clock.c"))
                .arg("-ldl"),
        );
        // Every process a job's key starts on a host reads that host's clock.
        for h in ["h1", "h2", "h3"] {
            let ak = net.host(h).dir.join("authorized_keys");
            let text = std::fs::read_to_string(&ak).unwrap().replace(
                &format!("command=\"{} serve ", runner()),
                &format!(
                    "command=\"env LD_PRELOAD={} BKC_CLOCK_SHIFT_FILE={CLOCK_SHIFT} {} serve ",
                    shim.display(),
                    runner()
                ),
            );
            std::fs::write(&ak, text).unwrap();
        }
        let mut chain = Chain {
            net,
            deploy,
            d2a,
            a2b,
            shim,
            rng: common::Rng(seed | 1),
            snaps: BTreeMap::new(),
            tally: BTreeMap::new(),
            notes: Vec::new(),
            round: 0,
        };
        for i in 0..12 {
            chain.write_source(&format!("f{i}.txt"), 100 + i * 50);
        }
        chain.write_source("blob", 512 * 1024);
        Some(chain)
    }

    /// h3's view of `path`, through its namespace (the tmpfs exists only there).
    fn h3(&self, path: &str) -> PathBuf {
        let pid = procs(&self.net.host("h3").ns)
            .into_iter()
            .find(is_listener)
            .expect("h3's sshd")
            .0;
        PathBuf::from(format!("/proc/{pid}/root{path}"))
    }

    fn write_source(&mut self, name: &str, len: usize) {
        let bytes: Vec<u8> = (0..len).map(|_| self.rng.next() as u8).collect();
        write(
            &self.net.srv("h1").join("home").join(name),
            &String::from_utf8_lossy(&bytes),
        );
    }

    /// A new version of the desktop's data: the big file rewritten (so that each run takes a
    /// moment), one file changed, one added, one removed.
    fn change_source(&mut self, round: usize) {
        self.write_source("blob", 512 * 1024);
        let n = self.rng.below(12);
        self.write_source(&format!("f{n}.txt"), 200);
        self.write_source(&format!("new-{round}.txt"), 300);
        if round >= 3 {
            let _ = std::fs::remove_file(
                self.net
                    .srv("h1")
                    .join(format!("home/new-{}.txt", round - 3)),
            );
        }
    }

    /// The complete snapshots under SNAPS now, with their digests; and where `latest` points.
    fn snapshots(&self) -> (BTreeMap<String, String>, Option<String>) {
        let dir = self.h3(SNAPS);
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() == 18 && name.ends_with('Z') && e.path().is_dir() {
                out.insert(name, digest(&e.path()));
            }
        }
        let latest = std::fs::read_link(dir.join("latest"))
            .ok()
            .map(|l| l.display().to_string());
        (out, latest)
    }

    /// The runner of `spec` on its host, reading the host's clock.
    fn runner(&self, spec: &JobSpec) -> std::process::Command {
        let mut c = self.net.runner(spec, &[]);
        c.env("LD_PRELOAD", &self.shim)
            .env("BKC_CLOCK_SHIFT_FILE", CLOCK_SHIFT);
        c
    }

    /// Set `host`'s clock `secs` off the machine's.
    fn shift_clock(&self, host: &str, secs: i64) {
        write(
            &self
                .net
                .srv(host)
                .join(CLOCK_SHIFT.trim_start_matches("/srv/")),
            &format!("{secs}\n"),
        );
    }

    /// Run `spec`, with `fault` at a random moment; returns the run.
    fn run(&mut self, spec: &JobSpec, fault: Option<Fault>) -> Ran {
        let far = spec
            .syncs
            .iter()
            .map(|s| {
                if s.source.host == spec.host {
                    s.dest.host.clone()
                } else {
                    s.source.host.clone()
                }
            })
            .next()
            .expect("a sync");
        let ballast = self.h3("/srv/offsite/ballast");
        if fault == Some(Fault::DiskFull) {
            // Leave about 300 KiB: less than one run's new data.
            let out = self
                .net
                .sh("h3", "df -k --output=avail /srv/offsite | tail -n 1");
            let avail: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            let fill = avail.saturating_sub(300) * 1024;
            std::fs::write(&ballast, vec![0u8; fill]).unwrap();
        }
        let shift = match fault {
            Some(Fault::ClockBack) => -24 * 3600,
            Some(Fault::ClockForward) => 7 * 24 * 3600,
            _ => 0,
        };
        if shift != 0 {
            self.shift_clock(&spec.host, shift);
            self.shift_clock(&far, shift);
        }
        let live = Live::new(self.net.spawn(self.runner(spec)));
        let moment = Duration::from_millis(self.rng.below(1500) as u64);
        let job_ns = self.net.host(&spec.host).ns.clone();
        let far_ns = self.net.host(&far).ns.clone();
        if let Some(f) = fault {
            std::thread::sleep(moment);
            match f {
                Fault::KillRunner => signal(live.pid(), libc::SIGKILL),
                Fault::KillRsync => {
                    kill_in(&job_ns, |p| p.1 == "rsync");
                }
                Fault::KillSsh => {
                    kill_in(&job_ns, |p| p.1 == "ssh");
                }
                Fault::KillSshd => {
                    kill_in(&far_ns, |p| p.1 == "sshd");
                }
                Fault::LinkCut => {
                    self.net.link_down(&far);
                    std::thread::sleep(Duration::from_millis(300 + self.rng.below(1700) as u64));
                    self.net.link_up(&far);
                }
                Fault::PowerCut => {
                    for h in ["h1", "h2", "h3"] {
                        kill_in(&self.net.host(h).ns, |_| true);
                    }
                }
                Fault::DiskFull | Fault::ClockBack | Fault::ClockForward => {}
                Fault::ApplyLinkCut | Fault::ApplyTwice => unreachable!("an apply fault"),
            }
        }
        let r = live.finish(180);
        if std::env::var_os("BKC_FAULT_TRACE").is_some() {
            eprintln!("  {} with {fault:?}: exit {}", spec.job, r.code);
        }
        let _ = std::fs::remove_file(&ballast);
        // What a killed runner left behind ends with it (or with its session on the far side).
        Net::eventually(10.0, || {
            ["h1", "h2", "h3"].iter().all(|h| {
                procs(&self.net.host(h).ns)
                    .iter()
                    .all(|p| is_listener(p) || p.1 == "sshd")
            })
        });
        r
    }

    /// One round: a new version of the data, then the chain, with `fault` in the run of one
    /// of its two jobs, each faulted run followed by the next, which must succeed.
    fn round(&mut self, round: usize, fault: Fault) {
        if matches!(fault, Fault::ApplyLinkCut | Fault::ApplyTwice) {
            return self.apply_round(round, fault);
        }
        self.round = round;
        self.change_source(round);
        let target_a2b = fault.on_snapshots_only() || self.rng.one_in(2);
        let mut t = self.tally.get(&fault).copied().unwrap_or_default();
        t.tries += 1;
        let mut ok = true;
        let mut data = true;
        let mut partial = true;
        for a2b in [false, true] {
            let spec = if a2b {
                self.a2b.clone()
            } else {
                self.d2a.clone()
            };
            let faulted = a2b == target_a2b;
            let source = self.source_digest(a2b);
            let before = self.snaps.clone();
            let r = self.run(&spec, faulted.then_some(fault));
            if faulted && r.code != 0 {
                t.hit += 1;
            }
            if faulted && r.code == 0 && matches!(fault, Fault::ClockBack | Fault::ClockForward) {
                // The snapshot's name is backup_b's clock: off by the shift, or the clock library
                // did not take and the fault was none.
                let name = r.events("snapshot")[0]["name"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let at = jiff::civil::DateTime::strptime("%Y-%m-%dT%H%M%SZ", &name).unwrap();
                let now = jiff::Timestamp::now()
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .datetime();
                let off = at.duration_since(now).as_secs();
                assert!(
                    off.abs() > 20 * 3600,
                    "snapshot {name} is not named by a shifted clock"
                );
            }
            // The host's prune runs on the clock the run had.
            let (d, p) = self.check_after(a2b, &r, &source, &before, fault);
            data &= d;
            partial &= p;
            for h in ["h1", "h2", "h3"] {
                self.shift_clock(h, 0);
            }
            if faulted {
                let source = self.source_digest(a2b);
                let before = self.snaps.clone();
                let again = self.run(&spec, None);
                if again.code != 0 {
                    ok = false;
                    self.note(fault, &format!("the next run failed: {}", again.stderr));
                }
                let (d, p) = self.check_after(a2b, &again, &source, &before, fault);
                data &= d;
                partial &= p;
            }
        }
        let held = self.locks_held();
        if !held.is_empty() {
            self.note(fault, &format!("locks left: {held:?}"));
        }
        t.next_ok += u32::from(ok);
        t.data_lost += u32::from(!data);
        t.partial_base += u32::from(!partial);
        t.locks_left += u32::from(!held.is_empty());
        self.tally.insert(fault, t);
    }

    /// A round of applies on h4: from the generation it holds to the other, meeting `fault`;
    /// then the host must hold one generation whole and no deploy lock, and a following apply
    /// must succeed and leave nothing to plan.
    fn apply_round(&mut self, round: usize, fault: Fault) {
        self.round = round;
        let mut t = self.tally.get(&fault).copied().unwrap_or_default();
        t.tries += 1;
        let to = 1 - self.deploy.on;
        let failed = match fault {
            Fault::ApplyLinkCut => {
                let moment = Duration::from_millis(self.rng.below(1500) as u64);
                let cut = Duration::from_millis(300 + self.rng.below(5700) as u64);
                let (net, deploy) = (&self.net, &self.deploy);
                let r = std::thread::scope(|s| {
                    let h = s.spawn(|| deploy.apply(to));
                    std::thread::sleep(moment);
                    net.link_down("h4");
                    std::thread::sleep(cut);
                    net.link_up("h4");
                    h.join().unwrap()
                });
                if std::env::var_os("BKC_FAULT_TRACE").is_some() {
                    eprintln!("  apply with a cut of {cut:?} at {moment:?}: {r:?}");
                }
                r.is_err()
            }
            Fault::ApplyTwice => {
                // The other apply is of either generation: two operators, or one twice.
                let other = if self.rng.one_in(2) { to } else { 1 - to };
                let moment = Duration::from_millis(self.rng.below(400) as u64);
                let deploy = &self.deploy;
                let (a, b) = std::thread::scope(|s| {
                    let a = s.spawn(|| deploy.apply(to));
                    std::thread::sleep(moment);
                    let b = s.spawn(|| deploy.apply(other));
                    (a.join().unwrap(), b.join().unwrap())
                });
                if std::env::var_os("BKC_FAULT_TRACE").is_some() {
                    eprintln!("  applies of {to} and {other} {moment:?} apart: {a:?} {b:?}");
                }
                a.is_err() || b.is_err()
            }
            _ => unreachable!("not an apply fault: {fault:?}"),
        };
        t.hit += u32::from(failed);
        // A switch cut off from its apply runs on, detached, holding the deploy lock till it ends.
        let lock = format!("{STANDIN}/var/lib/bkc/deploy.lock");
        let free = Net::eventually(60.0, || self.net.lock_free("h4", &lock));
        if !free {
            t.locks_left += 1;
            self.note(fault, "the deploy lock is still held after a minute");
        }
        match self.deploy.holds() {
            Some(g) => self.deploy.on = g,
            None => {
                t.mixed += 1;
                self.note(fault, "the host holds neither generation whole");
            }
        }
        let next = self.deploy.apply(to);
        let clean = self.deploy.plan_is_empty(to);
        let whole = self.deploy.holds();
        if next.is_ok() && clean == Ok(true) && whole == Some(to) {
            t.next_ok += 1;
            self.deploy.on = to;
        } else {
            self.note(
                fault,
                &format!(
                    "the next apply: {next:?}; plan empty after it: {clean:?}; host holds {whole:?}"
                ),
            );
            if let Some(g) = whole {
                self.deploy.on = g;
            }
        }
        if !self.net.lock_free("h4", &lock) {
            t.locks_left += 1;
            self.note(fault, "the next apply left the deploy lock held");
        }
        self.tally.insert(fault, t);
    }

    fn source_digest(&self, a2b: bool) -> String {
        if a2b {
            digest(&self.net.srv("h2").join("backup"))
        } else {
            digest(&self.net.srv("h1").join("home"))
        }
    }

    fn note(&mut self, fault: Fault, what: &str) {
        self.notes.push(format!(
            "round {} ({}): {what}",
            self.round,
            fault.describe()
        ));
    }

    /// backup_b's own prune of the job's append-only snapshots (`bkc-prune@a-to-b`), as its
    /// timer runs it; true if it succeeded.
    fn prune(&mut self, fault: Fault) -> bool {
        let shim = format!("LD_PRELOAD={}", self.shim.display());
        let shift = format!("BKC_CLOCK_SHIFT_FILE={CLOCK_SHIFT}");
        let out = self
            .net
            .cmd("h3", &["env", &shim, &shift, runner(), "prune", "a-to-b"])
            .output()
            .unwrap();
        if !out.status.success() {
            self.note(
                fault,
                &format!(
                    "bkc-run prune failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            );
        }
        out.status.success()
    }

    /// Check what a run left (after backup_b's prune, for `a-to-b`). Returns (no data lost, no
    /// partial snapshot as a base).
    fn check_after(
        &mut self,
        a2b: bool,
        r: &Ran,
        source: &str,
        before: &BTreeMap<String, String>,
        fault: Fault,
    ) -> (bool, bool) {
        let mut data = true;
        let mut partial = true;
        let mut problems = Vec::new();
        if !a2b {
            if r.code == 0 {
                let got = digest(&self.net.srv("h2").join("backup/desktop"));
                if got != *source {
                    data = false;
                    problems.push("backup_a does not hold the desktop's data".to_string());
                }
            }
        } else {
            let (made, made_latest) = self.snapshots();
            // Snapshots that were not there before the run: at most the run's own, whole.
            let appeared: Vec<String> = made
                .keys()
                .filter(|s| !before.contains_key(*s))
                .cloned()
                .collect();
            let named: Vec<String> = r
                .events("snapshot")
                .iter()
                .filter_map(|e| e["name"].as_str().map(String::from))
                .collect();
            if appeared.len() > 1 {
                data = false;
                problems.push(format!("more than one new snapshot: {appeared:?}"));
            }
            for s in &appeared {
                if made[s] != source {
                    data = false;
                    problems.push(format!(
                        "snapshot {s} looks complete but is not this run's data"
                    ));
                }
            }
            if r.code == 0 {
                if made_latest.as_ref() != named.first() {
                    data = false;
                    problems.push(format!(
                        "latest is {made_latest:?}, not the run's snapshot {named:?}"
                    ));
                }
                if appeared != named {
                    data = false;
                    problems.push(format!(
                        "the run said it made {named:?}, the destination holds {appeared:?} new"
                    ));
                }
                for e in r.events("snapshot") {
                    if let Some(base) = e["base"].as_str() {
                        let base = base
                            .trim_end_matches('/')
                            .rsplit('/')
                            .next()
                            .unwrap_or(base);
                        if !before.contains_key(base) {
                            partial = false;
                            problems.push(format!("base {base} was not a complete snapshot"));
                        }
                    }
                }
            }
            let pruned = self.prune(fault);
            data &= pruned;
            let (now_snaps, latest) = self.snapshots();
            // backup_b's retention keeps the newest KEEP_LAST by name (names are its own clock's),
            // and the last snapshot made, which `latest` points at, whatever its name.
            let mut all: Vec<&String> = before.keys().chain(appeared.iter()).collect();
            all.sort();
            all.dedup();
            let expected: BTreeSet<String> = all
                .iter()
                .rev()
                .take(KEEP_LAST as usize)
                .map(|s| s.to_string())
                .chain(made_latest.clone().filter(|l| made.contains_key(l)))
                .collect();
            for s in &expected {
                match (before.get(s).or(made.get(s)), now_snaps.get(s)) {
                    (Some(was), Some(is)) if was != is => {
                        data = false;
                        problems.push(format!("snapshot {s} changed"));
                    }
                    (_, None) => {
                        data = false;
                        problems.push(format!("snapshot {s}, which retention keeps, is gone"));
                    }
                    _ => {}
                }
            }
            for s in now_snaps.keys() {
                if !expected.contains(s) {
                    data = false;
                    problems.push(format!("snapshot {s} should have been pruned"));
                }
            }
            if latest != made_latest {
                data = false;
                problems.push(format!(
                    "the prune moved latest from {made_latest:?} to {latest:?}"
                ));
            }
            if let Some(l) = &latest
                && !now_snaps.contains_key(l)
            {
                data = false;
                problems.push(format!("latest points at {l}, which is not complete"));
            }
            self.snaps = now_snaps;
        }
        for p in problems {
            self.note(fault, &p);
        }
        (data, partial)
    }

    /// Locks still held, or seed lock files still there, on any host.
    fn locks_held(&self) -> Vec<String> {
        let mut held = Vec::new();
        for spec in [&self.d2a, &self.a2b] {
            for l in &spec.locks {
                if !self.net.lock_free(&l.at.host, &l.at.path) {
                    held.push(format!("{}:{}", l.at.host, l.at.path));
                }
            }
        }
        if self
            .net
            .srv("h2")
            .join(SEED_LOCK.trim_start_matches("/srv/"))
            .exists()
        {
            held.push(format!("h2:{SEED_LOCK}"));
        }
        held
    }
}

/// What a campaign found: per fault, what went wrong, how long it took, and its seed.
struct Report {
    tally: BTreeMap<Fault, Tally>,
    notes: Vec<String>,
    took: Duration,
    seed: u64,
}

/// Run `count` faults (the kinds in turn).
fn campaign(count: usize) -> Option<Report> {
    let seed = std::env::var("BKC_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("fault campaign: {count} faults, BKC_FAULT_SEED={seed}");
    let start = Instant::now();
    let mut chain = Chain::new(seed)?;
    // A first, clean run of the chain: the state every fault starts from.
    for spec in [chain.d2a.clone(), chain.a2b.clone()] {
        let r = chain.run(&spec, None);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    chain.snaps = chain.snapshots().0;
    for i in 0..count {
        let t = Instant::now();
        chain.round(i + 1, FAULTS[i % FAULTS.len()]);
        if std::env::var_os("BKC_FAULT_TRACE").is_some() {
            eprintln!(
                "round {}: {:?} {:?}",
                i + 1,
                FAULTS[i % FAULTS.len()],
                t.elapsed()
            );
        }
        if (i + 1) % 50 == 0 {
            eprintln!("{} faults, {:?}", i + 1, start.elapsed());
        }
    }
    Some(Report {
        tally: chain.tally,
        notes: chain.notes,
        took: start.elapsed(),
        seed,
    })
}

fn table(tally: &BTreeMap<Fault, Tally>) -> String {
    let mut out = String::from(
        "| fault | tries | run failed | data lost | locks left | partial snapshot as base | generation mixed | next run ok |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut total = Tally::default();
    let row = |name: &str, t: &Tally| {
        format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |\n",
            t.tries, t.hit, t.data_lost, t.locks_left, t.partial_base, t.mixed, t.next_ok
        )
    };
    for (f, t) in tally {
        out.push_str(&row(f.describe(), t));
        total.tries += t.tries;
        total.hit += t.hit;
        total.data_lost += t.data_lost;
        total.locks_left += t.locks_left;
        total.partial_base += t.partial_base;
        total.mixed += t.mixed;
        total.next_ok += t.next_ok;
    }
    out.push_str(&row("**all**", &total));
    out
}

fn assert_clean(tally: &BTreeMap<Fault, Tally>, notes: &[String]) {
    let bad = tally
        .values()
        .any(|t| t.data_lost + t.locks_left + t.partial_base + t.mixed > 0 || t.next_ok < t.tries);
    assert!(!bad, "{}\n{}", table(tally), notes.join("\n"));
}

const NEEDS: &str = "needs root, sshd and rsync (namespace hosts)";

/// One fault of each kind: the slice CI runs.
#[test]
#[ignore = "needs root, sshd and rsync (namespace hosts)"]
fn fault_campaign_slice() {
    let _serial = shared();
    let Some(r) = campaign(FAULTS.len()) else {
        return;
    };
    eprintln!("{}took {:?}", table(&r.tally), r.took);
    assert_clean(&r.tally, &r.notes);
}

const BEGIN: &str = "<!-- fault table: written by tests/faults.rs -->\n";
const END: &str = "<!-- end of fault table -->\n";

/// The documented campaign: `BKC_FAULTS` faults (none without it: it is not for CI), and the
/// table in docs/RELIABILITY.md rewritten.
#[test]
#[ignore = "needs root, sshd and rsync (namespace hosts)"]
fn fault_campaign() {
    let Some(count) = std::env::var("BKC_FAULTS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    else {
        eprintln!("skipping: set BKC_FAULTS to the number of faults ({NEEDS})");
        return;
    };
    let _serial = shared();
    let Some(Report {
        tally,
        notes,
        took,
        seed,
    }) = campaign(count)
    else {
        return;
    };
    let doc = Path::new("docs/RELIABILITY.md");
    let text = std::fs::read_to_string(doc).unwrap();
    let (head, rest) = text.split_once(BEGIN).expect("the table's start marker");
    let (_, tail) = rest.split_once(END).expect("the table's end marker");
    let mut found = String::new();
    if !notes.is_empty() {
        found = format!(
            "\nWhat went wrong:\n\n{}\n",
            notes
                .iter()
                .map(|n| format!("- {}\n", n.replace('\n', " ")))
                .collect::<String>()
        );
    }
    let body = format!(
        "{BEGIN}{count} faults, `BKC_FAULT_SEED={seed}`, {:.0} minutes on this machine:\n\n{}{found}{END}",
        took.as_secs_f64() / 60.0,
        table(&tally)
    );
    std::fs::write(doc, format!("{head}{body}{tail}")).unwrap();
    eprintln!("{body}");
    assert_clean(&tally, &notes);
}
