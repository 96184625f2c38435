//! Real hosts with systemd for the deploy tests: systemd-nspawn containers booted from a
//! minimal Debian root (debootstrap, cached in /var/cache/bkc-test), each on an overlay of its
//! own and in a network namespace of its own with sshd, all on one bridge in a control
//! namespace. Addresses exist only inside namespaces made here and are never routed; bkc reaches
//! them through `ip netns exec <ctl> nc` as an ssh ProxyCommand.
//!
//! Booting takes seconds, so a test binary boots its containers once ([`shared`]) and its tests
//! take turns; they are stopped (a clean poweroff) and removed when the test binary exits. That
//! binary is tests/deploy_fleet.rs alone, so that the containers are gone before other tests run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub const ROOT: &str = "/var/cache/bkc-test/bookworm-root";
const PACKAGES: &str = "systemd,systemd-sysv,dbus,openssh-server,rsync,iproute2,util-linux";

// The test hosts' network plumbing, of which the containers use a part.
#[allow(dead_code)]
#[path = "../harness/mod.rs"]
mod harness;

use crate::common::{require_root, require_tool};
use harness::{bridge, ip, keygen, plug, poll, run_ok};

/// The Debian root, made once per machine under a lock so parallel test binaries do not race.
fn debian_root() {
    if Path::new(ROOT).join("usr/lib/systemd/systemd").exists() {
        return;
    }
    std::fs::create_dir_all("/var/cache/bkc-test").unwrap();
    let script = format!(
        "test -e {ROOT}/usr/lib/systemd/systemd || {{ rm -rf {ROOT}.tmp && \
         debootstrap --variant=minbase --include={PACKAGES} bookworm {ROOT}.tmp >/var/cache/bkc-test/debootstrap.log 2>&1 && \
         mv {ROOT}.tmp {ROOT}; }}"
    );
    eprintln!("building the Debian root for the containers (once, about 90 s)");
    run_ok(Command::new("flock").args([&format!("{ROOT}.lock"), "sh", "-c", &script]));
}

pub struct Machine {
    pub name: String,
    pub addr: String,
    pub ns: String,
    dir: PathBuf,
    pub host_key: String,
    nspawn: Option<Child>,
    mounted: bool,
}

pub struct Fleet {
    pub dir: PathBuf,
    pub ctl: String,
    pub machines: Vec<Machine>,
    /// ssh_config that reaches the machines (ProxyCommand through the control namespace).
    pub ssh_config: PathBuf,
}

impl Fleet {
    /// Machines with these names, booted; `None` (after saying why) when this machine cannot.
    pub fn boot(names: &[&str]) -> Option<Fleet> {
        let root = require_root("a systemd-nspawn container");
        let tools = [
            "ip",
            "systemd-nspawn",
            "debootstrap",
            "ssh",
            "ssh-keygen",
            "nc",
            "flock",
        ];
        if !root || !tools.iter().all(|t| require_tool(t)) {
            return None;
        }
        debian_root();
        let id = format!("bd{}", std::process::id());
        let dir = PathBuf::from(format!("/tmp/{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let subnet = 10 + std::process::id() % 90;
        let mut fleet = Fleet {
            ctl: format!("{id}c"),
            ssh_config: dir.join("ssh_config"),
            dir,
            machines: Vec::new(),
        };
        fleet.setup(&id, subnet, names);
        Some(fleet)
    }

    fn setup(&mut self, id: &str, subnet: u32, names: &[&str]) {
        let key = self.dir.join("client_key");
        keygen(&key, Some("bkc-test"));
        let pubkey = std::fs::read_to_string(self.dir.join("client_key.pub")).unwrap();
        let private = std::fs::read(&key).unwrap();
        bridge(&self.ctl, subnet);
        std::fs::write(
            &self.ssh_config,
            format!(
                "Host *\n  ProxyCommand ip netns exec {} nc %h %p\n  IdentityFile {}\n  User root\n",
                self.ctl,
                key.display()
            ),
        )
        .unwrap();
        for (i, name) in names.iter().enumerate() {
            let i = i + 1;
            let ns = format!("{id}n{i}");
            let addr = format!("10.{subnet}.0.{}", 10 + i);
            let mdir = self.dir.join(name);
            for sub in ["upper", "work", "merged"] {
                std::fs::create_dir_all(mdir.join(sub)).unwrap();
            }
            self.machines.push(Machine {
                name: name.to_string(),
                addr: addr.clone(),
                ns: ns.clone(),
                dir: mdir.clone(),
                host_key: String::new(),
                nspawn: None,
                mounted: false,
            });
            plug(&self.ctl, &format!("vc{i}"), &ns, &addr);
            // The machine's own identity, written into its upper layer.
            let up = mdir.join("upper");
            let put = |p: &str, bytes: &[u8], mode: u32| {
                use std::os::unix::fs::PermissionsExt;
                let t = up.join(p);
                std::fs::create_dir_all(t.parent().unwrap()).unwrap();
                std::fs::write(&t, bytes).unwrap();
                std::fs::set_permissions(&t, std::fs::Permissions::from_mode(mode)).unwrap();
            };
            let hk = mdir.join("host_key");
            keygen(&hk, Some(name));
            let hpub = std::fs::read_to_string(mdir.join("host_key.pub")).unwrap();
            let hpub: Vec<&str> = hpub.split_whitespace().take(2).collect();
            self.machines.last_mut().unwrap().host_key = hpub.join(" ");
            put(
                "etc/ssh/ssh_host_ed25519_key",
                &std::fs::read(&hk).unwrap(),
                0o600,
            );
            put(
                "etc/ssh/ssh_host_ed25519_key.pub",
                &std::fs::read(mdir.join("host_key.pub")).unwrap(),
                0o644,
            );
            put("root/.ssh/authorized_keys", pubkey.as_bytes(), 0o600);
            put("etc/bkc/id_ed25519", &private, 0o600);
            put(
                "etc/ssh/sshd_config.d/bkc-test.conf",
                b"ClientAliveInterval 2\nClientAliveCountMax 3\nUseDNS no\nHostKey /etc/ssh/ssh_host_ed25519_key\n",
                0o644,
            );
            put(
                "etc/hostname",
                format!("{}\n", name.replace('_', "-")).as_bytes(),
                0o644,
            );
            let merged = mdir.join("merged");
            run_ok(
                Command::new("mount")
                    .args(["-t", "overlay", "overlay", "-o"])
                    .arg(format!(
                        "lowerdir={ROOT},upperdir={},workdir={}",
                        up.display(),
                        mdir.join("work").display()
                    ))
                    .arg(&merged),
            );
            self.machines.last_mut().unwrap().mounted = true;
            let log = std::fs::File::create(mdir.join("console.log")).unwrap();
            let child = Command::new("systemd-nspawn")
                .arg("-D")
                .arg(&merged)
                .args(["-M", &format!("{id}m{i}")])
                .args([
                    "--boot",
                    "--register=no",
                    "--keep-unit",
                    "--console=passive",
                ])
                .arg(format!("--network-namespace-path=/run/netns/{ns}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            self.machines.last_mut().unwrap().nspawn = Some(child);
        }
        let start = Instant::now();
        for m in &self.machines {
            loop {
                let out = self.ssh(&m.name, "systemctl is-system-running");
                let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if state == "running" || state == "degraded" {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(120),
                    "{} did not boot: {state} {}",
                    m.name,
                    std::fs::read_to_string(m.dir.join("console.log")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }

    pub fn machine(&self, name: &str) -> &Machine {
        self.machines
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no machine {name}"))
    }

    /// The pid of a machine's init (systemd), for entering its namespaces from the host.
    pub fn leader(&self, name: &str) -> u32 {
        let nspawn = self.machine(name).nspawn.as_ref().expect("booted").id();
        let children =
            std::fs::read_to_string(format!("/proc/{nspawn}/task/{nspawn}/children")).unwrap();
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{name}: systemd-nspawn {nspawn} has no child"))
    }

    /// Run a shell command on a machine as root, over ssh.
    pub fn ssh(&self, name: &str, command: &str) -> Output {
        self.ssh_cmd(name, command).output().unwrap()
    }

    pub fn ssh_cmd(&self, name: &str, command: &str) -> Command {
        let m = self.machine(name);
        let mut c = Command::new("ssh");
        c.arg("-F")
            .arg(&self.ssh_config)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=2",
                &m.addr,
                "--",
                command,
            ])
            .stdin(Stdio::null());
        c
    }

    /// stdout of a command that must succeed.
    pub fn sh(&self, name: &str, command: &str) -> String {
        let out = self.ssh(name, command);
        assert!(
            out.status.success(),
            "{name}: `{command}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn link_down(&self, name: &str) {
        let i = self.machines.iter().position(|m| m.name == name).unwrap() + 1;
        ip(&["-n", &self.ctl, "link", "set", &format!("vc{i}"), "down"]);
    }

    pub fn link_up(&self, name: &str) {
        let i = self.machines.iter().position(|m| m.name == name).unwrap() + 1;
        ip(&["-n", &self.ctl, "link", "set", &format!("vc{i}"), "up"]);
    }

    /// Poll `cond` for up to `secs`; true if it held at some point.
    pub fn eventually(secs: u64, cond: impl FnMut() -> bool) -> bool {
        poll(Duration::from_secs(secs), Duration::from_millis(250), cond)
    }

    fn teardown(&mut self) {
        // A clean poweroff of every container at once.
        for m in &mut self.machines {
            if let Some(c) = &m.nspawn {
                // SAFETY: kill(2) on a child we started.
                unsafe {
                    libc::kill(c.id() as i32, libc::SIGTERM);
                }
            }
        }
        for m in &mut self.machines {
            if let Some(mut c) = m.nspawn.take() {
                let end = Instant::now() + Duration::from_secs(20);
                while Instant::now() < end {
                    if let Ok(Some(_)) = c.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
            if m.mounted {
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(m.dir.join("merged"))
                    .status();
                m.mounted = false;
            }
            let _ = Command::new("ip").args(["netns", "del", &m.ns]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ctl])
            .status();
        if std::env::var("BKC_KEEP_TEST_DIR").is_err() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.teardown();
    }
}

static SHARED: OnceLock<Option<Mutex<Fleet>>> = OnceLock::new();

extern "C" fn stop_shared() {
    if let Some(Some(m)) = SHARED.get() {
        let mut f = m.lock().unwrap_or_else(|e| e.into_inner());
        f.teardown();
    }
}

/// The containers of this test binary, booted on first use, for one test at a time: the guard
/// serialises tests. `None` when this machine cannot run them (the test then returns).
pub fn shared(names: &[&str]) -> Option<MutexGuard<'static, Fleet>> {
    let f = SHARED.get_or_init(|| {
        let fleet = Fleet::boot(names)?;
        // Statics are never dropped: stop the containers when the test binary exits.
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(stop_shared);
        }
        Some(Mutex::new(fleet))
    });
    f.as_ref()
        .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
}
