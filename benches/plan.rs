//! `cargo bench --bench plan` (as root): `bkc plan` with nothing to change on 1, 10 and 40
//! hosts. The hosts are network namespaces with their own sshd and their own /etc
//! (tests/harness), each already holding what the topology wants, so a plan is one round trip
//! per host and finds nothing. Each host runs one job that pushes to the next host, once with
//! `ssh-keys "operator"` and once with restricted keys (each job's key on its host, pinned, and
//! its line in the next host's authorized keys), where reading a host also reads its jobs' keys
//! (`ssh-keygen -y`) and asks its sshd what it reads (`sshd -T`). Prints the median wall time
//! of several plans and the number of SSH connections each host accepted per plan (from its
//! sshd log), beside the floor: the same number of bare `ssh HOST true` logins, 16 at a time as
//! `bkc plan -j 16` connects. All the hosts' sshd share this machine's cores, so the floor
//! itself grows with the host count here; on a real fleet each host does its own side of the
//! handshake. Without root it says so and does nothing.

// The integration tests' helpers, of which this benchmark uses a few.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../tests/harness/mod.rs"]
mod harness;

use std::fmt::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use harness::Net;

const RUNS: usize = 5;

/// Each host's job pushes to the next host. With `keys` (a public key per host, in order), the
/// keys are restricted and pinned; without, the operator's.
fn topology(net: &Net, keys: Option<&[String]>) -> String {
    let settings = if keys.is_some() {
        ""
    } else {
        "    ssh-keys \"operator\"\n"
    };
    let mut s = format!("defaults {{\n    runner \"/etc/bkc-bench/bkc-run\"\n{settings}}}\n");
    for (i, h) in net.hosts.iter().enumerate() {
        let key = std::fs::read_to_string(h.dir.join("host_key.pub")).unwrap();
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        let next = &net.hosts[(i + 1) % net.hosts.len()].name;
        let pin = keys.map_or(String::new(), |k| format!("    key \"{}\"\n", k[i]));
        // No schedule: no timer, so the machine's own systemd (which these hosts share) is
        // never asked about a unit it cannot know.
        writeln!(
            s,
            "host \"{}\" address=\"{}\" {{\n    host-key \"{}\"\n}}\njob \"copy-{}\" on=\"{}\" {{\n{pin}    sync \"/srv/a/\" \"{next}:/srv/b/{}/\"\n}}",
            h.name,
            h.addr,
            key.join(" "),
            h.name,
            h.name,
            h.name
        )
        .unwrap();
    }
    s
}

/// A key for each host's job, made on this machine: (private key files, public halves).
fn job_keys(net: &Net) -> (Vec<std::path::PathBuf>, Vec<String>) {
    net.hosts
        .iter()
        .map(|h| {
            let path = h.dir.join("job_key");
            harness::keygen(&path, None);
            let public = std::fs::read_to_string(h.dir.join("job_key.pub")).unwrap();
            let public: Vec<&str> = public.split_whitespace().take(2).collect();
            (path, public.join(" "))
        })
        .unzip()
}

fn accepted(net: &Net) -> usize {
    net.hosts
        .iter()
        .map(|h| {
            std::fs::read_to_string(h.dir.join("sshd.log"))
                .unwrap_or_default()
                .matches("Accepted publickey")
                .count()
        })
        .sum()
}

/// Seconds for one bare login to every host, at most 16 at a time.
fn bare_logins(net: &Net, config: &std::path::Path) -> f64 {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..16.min(net.hosts.len()) {
            s.spawn(|| {
                while let Some(h) = net.hosts.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let ok = Command::new("ssh")
                        .arg("-F")
                        .arg(config)
                        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
                        .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
                        .args([&h.addr, "true"])
                        .status()
                        .is_ok_and(|s| s.success());
                    assert!(ok, "bare ssh to {} failed", h.name);
                }
            });
        }
    });
    start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench plan: skipped, it needs root (network namespaces with their own sshd)");
        return;
    }
    let bkc = env!("CARGO_BIN_EXE_bkc");
    let runner = common::bkc_run();
    println!(
        "| hosts | keys | bkc plan, median of {RUNS} | bare ssh logins (floor) | SSH connections per host per plan |"
    );
    println!("|---|---|---|---|---|");
    for n in [1, 10, 40] {
        for restricted in [false, true] {
            let Some(net) = Net::new(n) else {
                return;
            };
            let row = plan_row(&net, bkc, runner, restricted);
            println!(
                "| {n} | {} | {row} |",
                if restricted { "restricted" } else { "operator" }
            );
        }
    }
}

/// `bkc plan` on hosts that hold what the topology wants: its median time, the floor, and the
/// connections per host per plan.
fn plan_row(net: &Net, bkc: &str, runner: &std::path::Path, restricted: bool) -> String {
    let n = net.hosts.len();
    let (private, public) = job_keys(net);
    let topo = net.dir.join("bench.kdl");
    let keys = restricted.then_some(public.as_slice());
    std::fs::write(&topo, topology(net, keys)).unwrap();
    let out = net.dir.join("out");
    let built = Command::new(bkc)
        .args(["-q", "build"])
        .arg(&topo)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(built.success());
    // Each host gets exactly what the topology wants, as after an apply: its files, its job's
    // key, and an sshd configuration of its own that reads the drop-ins, as Debian's does.
    for (h, key) in net.hosts.iter().zip(&private) {
        let key = if restricted {
            format!(
                "mkdir -p -m 0700 /etc/bkc/keys && install -m 0600 {} /etc/bkc/keys/copy-{} && ",
                key.display(),
                h.name
            )
        } else {
            String::new()
        };
        let script = format!(
            "cp -a {out}/{name}/etc/. /etc/ && mkdir -p /etc/bkc-bench && cp {runner} /etc/bkc-bench/bkc-run && \
             {key}mkdir -p /etc/ssh/sshd_config.d && \
             printf 'Include /etc/ssh/sshd_config.d/*.conf\\nHostKey {hk}\\nUsePAM no\\n' > /etc/ssh/sshd_config",
            out = out.display(),
            name = h.name,
            runner = runner.display(),
            hk = h.dir.join("host_key").display(),
        );
        let o = net.sh(&h.name, &script);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let config = net.dir.join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host *\n  ProxyCommand ip netns exec {} nc %h %p\n  IdentityFile {}\n  User root\n",
            net.ctl,
            net.dir.join("client_key").display()
        ),
    )
    .unwrap();
    let mut times = Vec::new();
    let before = accepted(net);
    for _ in 0..RUNS {
        let start = Instant::now();
        let o = Command::new(bkc)
            .args(["plan", "--detailed-exitcode"])
            .arg(&topo)
            .env("BKC_SSH_CONFIG", &config)
            .output()
            .unwrap();
        times.push(start.elapsed().as_secs_f64());
        assert_eq!(
            o.status.code(),
            Some(0),
            "the plan should find nothing to change: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let per_host = (accepted(net) - before) as f64 / (RUNS * n) as f64;
    let floor = median((0..RUNS).map(|_| bare_logins(net, &config)).collect());
    format!(
        "{:.0} ms | {:.0} ms | {per_host:.1}",
        median(times) * 1000.0,
        floor * 1000.0
    )
}
