//! Real test hosts for the runner: each host is a network namespace with its own sshd and its
//! own /srv, all on one bridge in a control namespace. Addresses exist only inside namespaces
//! this harness creates and are never routed. Everything is torn down in Drop, also on panic.
//!
//! Needs root, iproute2, openssh-server, rsync, util-linux (nsenter, unshare, flock): the tests
//! that use it are ignored by a plain `cargo test`, and check for these with `common`'s helpers.

pub mod site;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bkc::serve::{ServeFile, serve_path};
use bkc::spec::{
    Command as HookCommand, Endpoint, Hook, HookWhen, JobSpec, Location, Lock, LockMode, OnFailure,
    Sync,
};
use serde_json::Value;

use crate::common::{require_root, require_tool};

/// bkc-run, built on first use (see `common::bkc_run`).
pub fn runner() -> &'static str {
    crate::common::bkc_run()
        .to_str()
        .expect("the target directory is a UTF-8 path")
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Tests that bound how long something takes (a behaviour bound, such as "the waiter enters within
/// a second of the holder's exit") run alone among the tests that start hosts, so the others' ssh
/// handshakes on this small machine cannot eat their margin: they take [`alone`], every other test
/// that starts hosts takes [`shared`].
static TIMING: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub fn alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    TIMING.write().unwrap_or_else(|e| e.into_inner())
}

pub fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    TIMING.read().unwrap_or_else(|e| e.into_inner())
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

/// A new ed25519 key pair without passphrase at `path` (and `path`.pub).
pub fn keygen(path: &Path, comment: Option<&str>) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", "ed25519", "-N", ""]);
    if let Some(c) = comment {
        cmd.args(["-C", c]);
    }
    run_ok(cmd.arg("-f").arg(path));
}

/// The control namespace `ctl` with a bridge br0 at 10.`subnet`.0.1/24.
pub fn bridge(ctl: &str, subnet: u32) {
    ip(&["netns", "add", ctl]);
    ip(&["-n", ctl, "link", "add", "br0", "type", "bridge"]);
    ip(&[
        "-n",
        ctl,
        "addr",
        "add",
        &format!("10.{subnet}.0.1/24"),
        "dev",
        "br0",
    ]);
    ip(&["-n", ctl, "link", "set", "br0", "up"]);
}

/// A new namespace `ns` whose eth0 (at `addr`/24) is plugged into `ctl`'s bridge through `veth`.
pub fn plug(ctl: &str, veth: &str, ns: &str, addr: &str) {
    ip(&["netns", "add", ns]);
    ip(&[
        "-n", ctl, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ]);
    ip(&["-n", ctl, "link", "set", veth, "master", "br0", "up"]);
    ip(&[
        "-n",
        ns,
        "addr",
        "add",
        &format!("{addr}/24"),
        "dev",
        "eth0",
    ]);
    ip(&["-n", ns, "link", "set", "eth0", "up"]);
    ip(&["-n", ns, "link", "set", "lo", "up"]);
}

/// Poll `cond` every `every` for up to `limit`; true if it held at some point.
pub fn poll(limit: Duration, every: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(every);
    }
}

pub struct Host {
    pub name: String,
    pub ns: String,
    pub addr: String,
    /// The host's IPv6 address (without brackets); sshd listens on both.
    pub addr6: String,
    pub dir: PathBuf,
    sshd: Option<Child>,
}

pub struct Net {
    pub id: String,
    pub dir: PathBuf,
    pub ctl: String,
    subnet: u32,
    pub hosts: Vec<Host>,
    spawned: Mutex<Vec<u32>>,
    specs: AtomicU32,
}

/// What one runner invocation did.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub events: Vec<Value>,
    pub stderr: String,
}

impl Ran {
    pub fn events(&self, name: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == name).collect()
    }

    pub fn end(&self) -> &Value {
        self.events("end")
            .last()
            .copied()
            .unwrap_or_else(|| panic!("no end event; stderr: {}", self.stderr))
    }
}

impl Net {
    /// `n` hosts named h1..hn, or `None` (after saying why) when this machine cannot host them.
    /// Each host sees its own writable /etc (an overlay on the machine's), where its serve files
    /// go and where deploy benchmarks put bkc's files.
    pub fn new(n: usize) -> Option<Net> {
        let ok = require_root("a network namespace with its own sshd")
            && [
                "ip",
                // Started by this path in each host's namespace.
                "/usr/sbin/sshd",
                "ssh",
                "ssh-keygen",
                "rsync",
                "nsenter",
                "unshare",
                "flock",
            ]
            .iter()
            .all(|t| require_tool(t));
        if !ok {
            return None;
        }
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        let id = format!("bk{}x{seq}", std::process::id());
        let dir = PathBuf::from(format!("/tmp/{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut net = Net {
            ctl: format!("{id}c"),
            subnet: 100 + (std::process::id() + seq) % 100,
            id,
            dir,
            hosts: Vec::new(),
            spawned: Mutex::new(Vec::new()),
            specs: AtomicU32::new(0),
        };
        net.setup(n);
        net.plain_root_shell();
        Some(net)
    }

    /// Sessions on the hosts run root's shell: plain sh, so that this machine's root dotfiles
    /// (a bash that runs its rc file for every ssh command, which may take a lock of its own)
    /// neither slow nor stall each one. Each host has its own /etc/passwd for it.
    fn plain_root_shell(&self) {
        let passwd: String = std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .lines()
            .map(|l| match l.strip_prefix("root:") {
                Some(rest) => {
                    let mut f: Vec<&str> = rest.split(':').collect();
                    if let Some(shell) = f.last_mut() {
                        *shell = "/bin/sh";
                    }
                    format!("root:{}\n", f.join(":"))
                }
                None => format!("{l}\n"),
            })
            .collect();
        for h in &self.hosts {
            self.write_etc(&h.name, "/etc/passwd", &passwd);
        }
    }

    fn setup(&mut self, n: usize) {
        std::fs::create_dir_all("/run/sshd").unwrap();
        let key = self.dir.join("client_key");
        keygen(&key, None);
        let pubkey = std::fs::read_to_string(self.dir.join("client_key.pub")).unwrap();
        bridge(&self.ctl, self.subnet);
        let mut known = String::new();
        for i in 1..=n {
            let name = format!("h{i}");
            let ns = format!("{}h{i}", self.id);
            let addr = format!("10.{}.0.{}", self.subnet, 10 + i);
            let addr6 = format!("fd77:{}::{}", self.subnet, 10 + i);
            let hdir = self.dir.join(&name);
            std::fs::create_dir_all(hdir.join("srv")).unwrap();
            // Registered before anything can fail, so Drop removes what was made.
            self.hosts.push(Host {
                name: name.clone(),
                ns: ns.clone(),
                addr: addr.clone(),
                addr6: addr6.clone(),
                dir: hdir.clone(),
                sshd: None,
            });
            plug(&self.ctl, &format!("vh{i}"), &ns, &addr);
            // No duplicate address detection: the address is usable at once, before sshd binds.
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr6}/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
            let hk = hdir.join("host_key");
            keygen(&hk, None);
            let hpub = std::fs::read_to_string(hdir.join("host_key.pub")).unwrap();
            let mut it = hpub.split_whitespace();
            let (kind, key) = (it.next().unwrap(), it.next().unwrap());
            known.push_str(&format!("{addr} {kind} {key}\n{addr6} {kind} {key}\n"));
            std::fs::write(hdir.join("authorized_keys"), &pubkey).unwrap();
            let cfg = format!(
                "ListenAddress {addr}\nListenAddress {addr6}\nHostKey {hk}\nPidFile none\nUsePAM no\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nAuthorizedKeysFile {ak}\nStrictModes no\n\
                 ClientAliveInterval 1\nClientAliveCountMax 3\nMaxStartups 200\nMaxSessions 100\nPrintMotd no\n\
                 LogLevel INFO\nAcceptEnv none\n",
                hk = hk.display(),
                ak = hdir.join("authorized_keys").display(),
            );
            std::fs::write(hdir.join("sshd_config"), cfg).unwrap();
            let (up, work) = (hdir.join("etc-upper"), hdir.join("etc-work"));
            std::fs::create_dir_all(&up).unwrap();
            std::fs::create_dir_all(&work).unwrap();
            let etc = format!(
                "mount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc && ",
                up.display(),
                work.display()
            );
            let script = format!(
                "hostname {name} && {etc}mount --bind {srv} /srv && exec /usr/sbin/sshd -D -f {cfg} -E {log}",
                srv = hdir.join("srv").display(),
                cfg = hdir.join("sshd_config").display(),
                log = hdir.join("sshd.log").display(),
            );
            let child = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "unshare",
                    "--mount",
                    "--uts",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                ])
                .arg(script)
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            self.hosts.last_mut().unwrap().sshd = Some(child);
        }
        std::fs::write(self.dir.join("known_hosts"), known).unwrap();
        let start = Instant::now();
        for h in &self.hosts {
            loop {
                let log = std::fs::read_to_string(h.dir.join("sshd.log")).unwrap_or_default();
                if log.contains("Server listening") {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "sshd on {} did not start: {log}",
                    h.name
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// The real path of `host`'s /srv, for preparing and checking data from the test.
    pub fn srv(&self, host: &str) -> PathBuf {
        self.host(host).dir.join("srv")
    }

    /// A command run inside `host`: its network, its mounts (its /srv), its hostname.
    pub fn cmd(&self, host: &str, argv: &[&str]) -> Command {
        let pid = self.host(host).sshd.as_ref().unwrap().id().to_string();
        let mut c = Command::new("nsenter");
        c.args(["-t", &pid, "-n", "-m", "-u", "--"]).args(argv);
        c
    }

    pub fn sh(&self, host: &str, script: &str) -> Output {
        self.cmd(host, &["sh", "-c", script]).output().unwrap()
    }

    /// True when `path` on `host` can be locked exclusively right now.
    pub fn lock_free(&self, host: &str, path: &str) -> bool {
        self.sh(
            host,
            &format!("mkdir -p \"$(dirname {path})\" && flock -n -x {path} true"),
        )
        .status
        .success()
    }

    /// Poll `cond` for up to `secs`; true if it held at some point.
    pub fn eventually(secs: f64, cond: impl FnMut() -> bool) -> bool {
        poll(
            Duration::from_secs_f64(secs),
            Duration::from_millis(20),
            cond,
        )
    }

    pub fn link_down(&self, host: &str) {
        let i = &host[1..];
        ip(&["-n", &self.ctl, "link", "set", &format!("vh{i}"), "down"]);
    }

    pub fn link_up(&self, host: &str) {
        let i = &host[1..];
        ip(&["-n", &self.ctl, "link", "set", &format!("vh{i}"), "up"]);
    }

    /// A spec for `job` on `host` that can reach every other host, with state under its /srv.
    pub fn spec(&self, job: &str, host: &str) -> JobSpec {
        let hosts: BTreeMap<String, Endpoint> = self
            .hosts
            .iter()
            .filter(|h| h.name != host)
            .map(|h| {
                (
                    h.name.clone(),
                    Endpoint {
                        address: h.addr.clone(),
                        port: 22,
                        user: "root".into(),
                        runner: runner().into(),
                    },
                )
            })
            .collect();
        JobSpec {
            version: bkc::spec::SPEC_VERSION,
            job: job.into(),
            host: host.into(),
            state_dir: "/srv/bkc/state".into(),
            metrics_dir: Some("/srv/bkc/metrics".into()),
            known_hosts: self.dir.join("known_hosts").display().to_string(),
            identity: Some(self.dir.join("client_key").display().to_string()),
            hosts,
            every: None,
            timeout_secs: None,
            nice: None,
            io_class: None,
            retries: 0,
            retry_delay_secs: 1,
            locks: vec![],
            lock_files: vec![],
            wait_files: vec![],
            hooks: vec![],
            syncs: vec![],
            notify: vec![],
            ping: None,
            fresh_markers: vec![],
            restore_to: vec![],
            verify: None,
            slot: None,
            watch: None,
        }
    }

    /// Write `spec` for its runner, and on every host it reaches the serve file bkc would
    /// emit for it there.
    pub fn write_spec(&self, spec: &JobSpec) -> PathBuf {
        let n = self.specs.fetch_add(1, Ordering::SeqCst);
        let p = self.dir.join(format!("spec-{}-{n}.json", spec.job));
        std::fs::write(&p, spec.to_json()).unwrap();
        for host in spec.hosts.keys() {
            if let Some(f) = ServeFile::for_host(spec, host) {
                self.write_etc(host, &serve_path(&spec.job), &f.to_json());
            }
        }
        p
    }

    /// Write `text` to `path` (under /etc) as `host` sees it, through its own /etc.
    pub fn write_etc(&self, host: &str, path: &str, text: &str) {
        let pid = self.host(host).sshd.as_ref().unwrap().id();
        let p = PathBuf::from(format!("/proc/{pid}/root{path}"));
        write(&p, text);
    }

    /// The ssh options `spec`'s runner uses, for a test to speak as that job would.
    pub fn ssh_options(&self, spec: &JobSpec) -> Vec<String> {
        let mut o = vec![
            "-o".to_string(),
            format!("UserKnownHostsFile={}", spec.known_hosts),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "ConnectTimeout=10".into(),
        ];
        if let Some(id) = &spec.identity {
            o.push("-i".into());
            o.push(id.clone());
        }
        o
    }

    /// `ssh <options> root@<to> <remote>` from `spec`'s host, with `spec`'s key.
    pub fn ssh(&self, spec: &JobSpec, to: &str, remote: &str) -> Command {
        let mut argv = vec!["ssh".to_string()];
        argv.extend(self.ssh_options(spec));
        argv.push("-T".into());
        argv.push(format!("root@{}", self.host(to).addr));
        if !remote.is_empty() {
            argv.push(remote.to_string());
        }
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.cmd(&spec.host, &refs)
    }

    /// rsync from `spec`'s host with `args`, through `bkc-run serve <job>` on the far side and
    /// `spec`'s key, as the job's runner would run it (or as a peer holding its key could).
    pub fn rsync(&self, spec: &JobSpec, args: &[&str]) -> Command {
        let rsh = format!("ssh {}", self.ssh_options(spec).join(" "));
        let path = format!("--rsync-path={} serve {} rsync", runner(), spec.job);
        let mut argv = vec!["rsync", "-a", &path, "-e", &rsh];
        argv.extend_from_slice(args);
        self.cmd(&spec.host, &argv)
    }

    /// `root@<address of host>:<path>`, for rsync.
    pub fn remote(&self, host: &str, path: &str) -> String {
        format!("root@{}:{path}", self.host(host).addr)
    }

    /// Give `spec`'s job a key of its own, which every host it does something on accepts only
    /// for `bkc-run serve <job>` (the line bkc installs in /etc/bkc/authorized_keys/<user>).
    /// Call it once the spec says what the job does.
    pub fn restrict(&self, spec: &mut JobSpec) {
        let key = self.dir.join(format!("key-{}", spec.job));
        if !key.exists() {
            keygen(&key, Some(&spec.job));
        }
        let public = std::fs::read_to_string(format!("{}.pub", key.display())).unwrap();
        let line = format!(
            "restrict,command=\"{} serve {}\" {}",
            runner(),
            spec.job,
            public.trim()
        );
        // Only the hosts the job does something on, as bkc installs it.
        let reached = spec
            .hosts
            .keys()
            .filter(|h| ServeFile::for_host(spec, h).is_some());
        for host in reached {
            let ak = self.host(host).dir.join("authorized_keys");
            let mut text = std::fs::read_to_string(&ak).unwrap();
            if !text.contains(&line) {
                text.push_str(&line);
                text.push('\n');
                std::fs::write(&ak, text).unwrap();
            }
        }
        spec.identity = Some(key.display().to_string());
    }

    /// The runner for `spec`, on the spec's host, as a command to adjust and start.
    pub fn runner(&self, spec: &JobSpec, args: &[&str]) -> Command {
        let p = self.write_spec(spec);
        let p = p.display().to_string();
        let mut argv = vec![runner(), p.as_str()];
        argv.extend_from_slice(args);
        let mut c = self.cmd(&spec.host, &argv);
        c.env_remove("BKC_RUN_NOW");
        c
    }

    /// Start a command and remember its pid, so Drop can kill it if the test fails first.
    pub fn spawn(&self, mut cmd: Command) -> Child {
        let c = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.spawned.lock().unwrap().push(c.id());
        c
    }

    /// Run the runner to the end.
    pub fn run(&self, spec: &JobSpec, args: &[&str], env: &[(&str, &str)]) -> Ran {
        let mut c = self.runner(spec, args);
        c.envs(env.iter().copied());
        collect(self.spawn(c))
    }
}

/// Wait for a spawned runner and parse its events.
pub fn collect(child: Child) -> Ran {
    let out = child.wait_with_output().unwrap();
    parse(out)
}

pub fn parse(out: Output) -> Ran {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
        })
        .collect();
    Ran {
        code: out.status.code().unwrap_or(-1),
        events,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Read a spawned runner's events as they come until `name` appears; returns the events so far
/// and keeps the rest of stdout flowing into a thread that collects it.
pub struct Live {
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    pub seen: Vec<Value>,
}

impl Live {
    pub fn new(mut child: Child) -> Live {
        let out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            use std::io::Read;
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Live {
            child,
            lines: rx,
            stderr: Some(stderr),
            seen: Vec::new(),
        }
    }

    pub fn wait_event(&mut self, name: &str, secs: u64) -> Value {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let l = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {name} event in {secs}s: {:?}", self.seen));
            let v: Value = serde_json::from_str(&l).unwrap();
            self.seen.push(v.clone());
            if v["event"] == name {
                return v;
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Wait for exit (up to `secs`) and return the code and all events.
    pub fn finish(mut self, secs: u64) -> Ran {
        let end = Instant::now() + Duration::from_secs(secs);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < end,
                "runner still running after {secs}s: {:?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(serde_json::from_str(&l).unwrap());
        }
        Ran {
            code: status.code().unwrap_or(-1),
            events: self.seen,
            stderr,
        }
    }
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a child we started.
    unsafe {
        libc::kill(pid, sig);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for pid in self.spawned.lock().map(|v| v.clone()).unwrap_or_default() {
            signal(pid as i32, libc::SIGKILL);
        }
        // Whatever still lives in our namespaces (runners, ssh sessions, sshd) goes too.
        let mut all: Vec<String> = self.hosts.iter().map(|h| h.ns.clone()).collect();
        all.push(self.ctl.clone());
        for ns in &all {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(p) = pid.parse::<i32>() {
                        signal(p, libc::SIGKILL);
                    }
                }
            }
        }
        for h in &mut self.hosts {
            if let Some(mut c) = h.sshd.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for ns in &all {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if std::env::var("BKC_KEEP_TEST_DIR").is_err() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// Small builders, so tests read like topologies.

pub fn at(host: &str, path: &str) -> Location {
    Location {
        host: host.into(),
        path: path.into(),
    }
}

pub fn lock_path(job: &str) -> String {
    format!("/srv/bkc/locks/{job}.lock")
}

pub fn lock(host: &str, job: &str, mode: LockMode, owner: &str) -> Lock {
    Lock {
        at: at(host, &lock_path(job)),
        mode,
        owner: owner.into(),
        wait_secs: 1,
        timeout_secs: 30,
    }
}

pub fn sync(src: Location, dst: Location) -> Sync {
    Sync {
        source: src,
        dest: dst,
        opts: vec!["-a".into()],
        exclude: vec![],
        bwlimit: None,
        deletes: false,
        allow_empty_source: false,
        snapshot: None,
        source_snapshot: None,
    }
}

pub fn hook(when: HookWhen, host: &str, shell: &str, on_failure: OnFailure) -> Hook {
    Hook {
        when,
        host: host.into(),
        command: HookCommand::Shell(shell.into()),
        on_failure,
    }
}

/// Lock every host a sync touches exclusively, sorted as the compiler sorts them.
pub fn own_locks(spec: &mut JobSpec) {
    let mut hosts: Vec<String> = spec
        .syncs
        .iter()
        .flat_map(|s| [s.source.host.clone(), s.dest.host.clone()])
        .collect();
    hosts.sort();
    hosts.dedup();
    let job = spec.job.clone();
    spec.locks.extend(
        hosts
            .iter()
            .map(|h| lock(h, &job, LockMode::Exclusive, &job)),
    );
    spec.locks.sort_by(|a, b| a.at.cmp(&b.at));
}

pub fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}
