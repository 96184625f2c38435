//! Everything about reaching another host: the one set of ssh options, argv building, and the
//! one remote command (`<runner> serve <job>`). Every SSH connection the runner makes goes through here, so the options
//! (pinned known_hosts, no prompts, bounded connect and liveness) cannot drift between the lock
//! sessions, hooks, directory listings and rsync's own transport.

use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use bkc_contract::spec::{Endpoint, JobSpec};

/// The directory of the shared connections' sockets, once [`share_connections`] made it.
static SHARED: OnceLock<PathBuf> = OnceLock::new();

/// While it lives, every connection to one host goes through one SSH connection (ssh's
/// `ControlMaster`): the first one made, a lock session in practice, carries the listing and
/// rsync after it. For the operator's commands (restore, verify, snapshots), where each step's
/// own handshake was a fixed cost paid while someone waits: three of them made a restore of
/// 1 GiB 8 to 10 % slower than bare rsync. A scheduled run keeps one connection per step, so a
/// step that fails does not take the others' connection with it. Dropped, it removes the
/// sockets' directory.
pub struct Shared(PathBuf);

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Share connections from now on (see [`Shared`]); `None` if a private directory for the sockets
/// cannot be made, and each connection is then its own, as in a run.
pub fn share_connections() -> Option<Shared> {
    let template = std::env::temp_dir().join("bkc-ssh-XXXXXX");
    let mut bytes = std::ffi::CString::new(template.into_os_string().into_encoded_bytes())
        .ok()?
        .into_bytes_with_nul();
    // SAFETY: a writable NUL-terminated template; mkdtemp(3) makes the directory 0700 and
    // writes its name into the template.
    if unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) }.is_null() {
        return None;
    }
    bytes.pop();
    let dir = PathBuf::from(std::ffi::OsString::from_vec(bytes));
    SHARED.set(dir.clone()).ok()?;
    Some(Shared(dir))
}

/// Quote `s` for a POSIX shell: the one quoter bkc's deploy scripts use too.
pub use bkc_contract::names::shell_quote as quote;

/// Quote each word and join them into one command line.
pub fn join(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

/// The remote command of every session a runner opens: `<runner> serve <job>`. It is the whole
/// command where a forced command runs it, and what the account's shell runs otherwise; the
/// request follows on stdin (or, for rsync, after it on the same line).
pub fn serve_line(spec: &JobSpec, ep: &Endpoint) -> String {
    join(&[ep.runner.clone(), "serve".to_string(), spec.job.clone()])
}

/// The options every connection uses. `BatchMode` and `StrictHostKeyChecking=yes` make a missing
/// key or an unknown host a fast, clear failure instead of a prompt nobody answers; the alive
/// settings bound how long a dead link goes unnoticed.
///
/// Only the pinned keys count (`GlobalKnownHostsFile=/dev/null`), looked up under the name bkc
/// wrote them with (`HostKeyAlias`), and nothing of this host is handed to the next: no agent,
/// no forwardings.
pub fn options(spec: &JobSpec, ep: &Endpoint) -> Vec<String> {
    let mut o: Vec<String> = Vec::new();
    if let Some(id) = &spec.identity {
        o.push("-i".into());
        o.push(id.clone());
    }
    for opt in [
        format!("UserKnownHostsFile={}", spec.known_hosts),
        "GlobalKnownHostsFile=/dev/null".to_string(),
        format!(
            "HostKeyAlias={}",
            bkc_contract::names::known_hosts_pattern(&ep.address, ep.port)
        ),
        "ForwardAgent=no".to_string(),
        "ClearAllForwardings=yes".to_string(),
        "StrictHostKeyChecking=yes".to_string(),
        "BatchMode=yes".to_string(),
        "ConnectTimeout=10".to_string(),
        "ServerAliveInterval=15".to_string(),
        "ServerAliveCountMax=3".to_string(),
    ] {
        o.push("-o".into());
        o.push(opt);
    }
    if let Some(dir) = SHARED.get() {
        // %C: a hash of this host, the peer, its port and user, so each peer has its own.
        for opt in [
            "ControlMaster=auto".to_string(),
            format!("ControlPath={}/%C", dir.display()),
            "ControlPersist=no".to_string(),
        ] {
            o.push("-o".into());
            o.push(opt);
        }
    }
    o
}

/// The endpoint of a remote host, or a message for the spec error.
pub fn endpoint<'a>(spec: &'a JobSpec, host: &str) -> Result<&'a Endpoint, String> {
    spec.hosts
        .get(host)
        .ok_or_else(|| format!("host {host:?} is not the job's host and has no entry in `hosts`"))
}

/// `ssh ... address REMOTE_COMMAND`: `remote` is one command line for the remote user's shell.
pub fn command(spec: &JobSpec, ep: &Endpoint, remote: &str) -> Command {
    let mut c = Command::new("ssh");
    c.args(argv(spec, ep, remote));
    c
}

/// The arguments after `ssh`, split out for tests and for logging.
pub fn argv(spec: &JobSpec, ep: &Endpoint, remote: &str) -> Vec<String> {
    let mut a = options(spec, ep);
    a.extend([
        "-T".to_string(),
        "-p".to_string(),
        ep.port.to_string(),
        "-l".to_string(),
        ep.user.clone(),
        "--".to_string(),
        bkc_contract::names::ssh_host(&ep.address).to_string(),
        remote.to_string(),
    ]);
    a
}

/// The value of rsync's `-e`. rsync splits it itself, honouring quotes, so each option is quoted
/// as for a shell (paths to keys or known_hosts may contain spaces).
pub fn rsync_rsh(spec: &JobSpec, ep: &Endpoint) -> String {
    let mut words = vec!["ssh".to_string()];
    words.extend(options(spec, ep));
    words.push("-p".into());
    words.push(ep.port.to_string());
    join(&words)
}

/// `user@address:path` as rsync wants it; an IPv6 literal goes in brackets so its colons are not
/// taken for the host/path separator.
pub fn rsync_remote(ep: &Endpoint, path: &str) -> String {
    if ep.address.contains(':') && !ep.address.starts_with('[') {
        format!("{}@[{}]:{}", ep.user, ep.address, path)
    } else {
        format!("{}@{}:{}", ep.user, ep.address, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_sh(line: &str) -> String {
        let out = Command::new("sh").arg("-c").arg(line).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn quoting_survives_a_real_shell() {
        let nasty = [
            "plain",
            "with space",
            "it's",
            "$(rm -rf /)",
            "`x`",
            "a\nb",
            "",
            "\\",
            "*?[",
            "--",
            "é ü",
        ];
        for s in nasty {
            let line = format!("printf %s {}", quote(s));
            assert_eq!(run_sh(&line), s, "{line}");
        }
    }

    #[test]
    fn remote_paths() {
        let ep = Endpoint {
            address: "fd00::2".into(),
            port: 22,
            user: "root".into(),
            runner: "/usr/local/bin/bkc-run".into(),
        };
        assert_eq!(rsync_remote(&ep, "/srv/x y/"), "root@[fd00::2]:/srv/x y/");
        let ep = Endpoint {
            address: "b.example".into(),
            port: 22,
            user: "bk".into(),
            runner: "/usr/local/bin/bkc-run".into(),
        };
        assert_eq!(rsync_remote(&ep, "/srv"), "bk@b.example:/srv");
    }
}
