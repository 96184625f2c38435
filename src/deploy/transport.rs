//! The one seam between the deploy logic and a host: start a POSIX `sh` script there, with
//! bytes after the script on its standard input, and read what it prints.
//!
//! [`Ssh`] reaches a real host through the system `ssh` binary (so the user's ssh_config, agents
//! and ControlMaster all work). [`Local`] runs the same scripts on this machine against a
//! directory standing in for the host's `/`, with a stand-in `systemctl`, so the plan and apply
//! logic can be tested in milliseconds without a network.
//!
//! Every script is sent on standard input, not on the command line: a host with a thousand jobs
//! gets a script far longer than the 128 KiB Linux allows for one argument. The remote command
//! is a constant bootstrap that reads exactly the script's bytes (`dd ... count_bytes`, which
//! never reads past them) and evaluates it; whatever follows on stdin is the script's to read.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::quote;

/// A host that can run scripts.
pub trait Transport: Send + Sync {
    /// The host's name in the topology, for messages.
    fn host(&self) -> &str;

    /// Shell text run before every script: it sets `R`, the prefix of every absolute path the
    /// scripts touch (empty on a real host), and may define stand-ins for host commands.
    /// Scripts that start other scripts (the detached activation) include it in them too.
    fn preamble(&self) -> String;

    /// Start `command` (one shell command line) on the host with piped stdin, stdout and stderr.
    fn spawn(&self, command: &str) -> io::Result<Child>;

    /// Start `script` (after the preamble); the returned child's stdin has already received the
    /// script and is open for whatever the script reads next.
    fn start(&self, script: &str) -> io::Result<Child> {
        let full = format!("{}\n{script}\n", self.preamble());
        let boot = format!(
            "exec sh -c {}",
            quote(&format!(
                "eval \"$(dd bs=65536 iflag=fullblock,count_bytes count={} status=none)\"",
                full.len()
            ))
        );
        let mut child = self.spawn(&boot)?;
        if let Some(stdin) = child.stdin.as_mut()
            && let Err(e) = stdin.write_all(full.as_bytes())
        {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        Ok(child)
    }
}

/// What a script printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// The exit code; `None` when killed by a signal.
    pub code: Option<i32>,
}

/// Run `script` with `input` after it on stdin, to the end.
pub fn run(t: &dyn Transport, script: &str, input: &[u8]) -> io::Result<Output> {
    let mut child = t.start(script)?;
    let mut stdin = child.stdin.take();
    let mut err = child.stderr.take();
    std::thread::scope(|s| {
        // Input is written while stdout is read, so neither side can fill a pipe and stall.
        s.spawn(move || {
            if let Some(w) = stdin.as_mut() {
                let _ = w.write_all(input);
            }
            drop(stdin);
        });
        let errs = s.spawn(move || {
            let mut text = String::new();
            if let Some(e) = err.as_mut() {
                let mut bytes = Vec::new();
                let _ = e.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        });
        let mut stdout = Vec::new();
        if let Some(o) = child.stdout.as_mut() {
            o.read_to_end(&mut stdout)?;
        }
        let status = child.wait()?;
        Ok(Output {
            stdout,
            stderr: errs.join().unwrap_or_default(),
            code: status.code(),
        })
    })
}

/// How to reach one host over SSH; it is saved in plan files, so it is a contract type.
pub use bkc_contract::plan::Target;

/// What every SSH connection of one bkc command shares: a private directory (0700) for the
/// ControlMaster sockets and the pinned known_hosts, and the user's extra ssh options.
/// Dropping it closes every master connection and removes the directory.
pub struct SshSession {
    dir: PathBuf,
    known_hosts: PathBuf,
    config: Option<PathBuf>,
    options: Vec<String>,
    sockets: std::sync::Mutex<Vec<PathBuf>>,
}

impl SshSession {
    /// `targets` are every host this command may reach, for the known_hosts file; `config` is
    /// an ssh_config (`-F`), `options` extra `-o` options, which take precedence over bkc's.
    pub fn new<'a>(
        targets: impl IntoIterator<Item = &'a Target>,
        config: Option<PathBuf>,
        options: Vec<String>,
    ) -> io::Result<SshSession> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = base.join(format!("bkc-ssh-{}-{nanos:x}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let known_hosts = dir.join("known_hosts");
        let mut text = String::new();
        for t in targets {
            for key in &t.host_keys {
                text.push_str(&format!("{} {key}\n", host_pattern(&t.address, t.port)));
            }
        }
        std::fs::write(&known_hosts, text)?;
        Ok(SshSession {
            dir,
            known_hosts,
            config,
            options,
            sockets: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// A transport to `host` at `target`. `index` makes the host's ControlMaster socket name:
    /// short, because a Unix socket path has at most 107 bytes.
    pub fn host(&self, host: &str, target: &Target, index: usize) -> Ssh {
        let socket = self.dir.join(format!("{index}.sock"));
        if let Ok(mut s) = self.sockets.lock() {
            s.push(socket.clone());
        }
        let mut args: Vec<OsString> = Vec::new();
        if let Some(c) = &self.config {
            args.push("-F".into());
            args.push(c.into());
        }
        // ssh keeps the first value it sees for an option: the user's come first.
        for o in &self.options {
            args.push("-o".into());
            args.push(o.into());
        }
        let mut opt = |o: String| {
            args.push("-o".into());
            args.push(o.into());
        };
        opt("BatchMode=yes".into());
        opt("ConnectTimeout=10".into());
        opt("ServerAliveInterval=5".into());
        opt("ServerAliveCountMax=3".into());
        opt("ControlMaster=auto".into());
        opt(format!("ControlPath={}", socket.display()));
        // Long enough to serve the second round trip of a plan and the apply after it; the
        // session's Drop closes it earlier.
        opt("ControlPersist=60".into());
        if !target.host_keys.is_empty() {
            opt(format!("UserKnownHostsFile={}", self.known_hosts.display()));
            opt("StrictHostKeyChecking=yes".into());
        }
        args.push("-p".into());
        args.push(target.port.to_string().into());
        args.push("-l".into());
        args.push(target.user.clone().into());
        args.push(target.address.clone().into());
        Ssh {
            host: host.to_string(),
            args,
        }
    }
}

impl Drop for SshSession {
    fn drop(&mut self) {
        let sockets = self.sockets.lock().map(|s| s.clone()).unwrap_or_default();
        // All at once: closing forty masters one after the other took longer than the plan.
        let closing: Vec<Child> = sockets
            .iter()
            .filter(|s| s.exists())
            .filter_map(|socket| {
                Command::new("ssh")
                    .arg("-o")
                    .arg(format!("ControlPath={}", socket.display()))
                    .args(["-O", "exit", "bkc-master"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok()
            })
            .collect();
        for mut c in closing {
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `address` or `[address]:port`, as known_hosts writes a host.
fn host_pattern(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
    }
}

/// A host reached with the system `ssh`.
pub struct Ssh {
    host: String,
    args: Vec<OsString>,
}

impl Transport for Ssh {
    fn host(&self) -> &str {
        &self.host
    }

    fn preamble(&self) -> String {
        "R=".into()
    }

    fn spawn(&self, command: &str) -> io::Result<Child> {
        Command::new("ssh")
            .args(&self.args)
            .arg("--")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }
}

/// A directory on this machine standing in for a host's `/`. `systemctl` is a shell function
/// that keeps enablement as symlinks in `timers.target.wants`, reports units listed under
/// `<root>/run/active/` as active and logs every call to `<root>/systemctl.log`.
pub struct Local {
    host: String,
    root: PathBuf,
}

impl Local {
    pub fn new(host: &str, root: &Path) -> Local {
        Local {
            host: host.to_string(),
            root: root.to_path_buf(),
        }
    }
}

const FAKE_SYSTEMCTL: &str = r#"
systemctl() {
  _u="$R/etc/systemd/system"; _w="$_u/timers.target.wants"
  printf '%s\n' "$*" >> "$R/systemctl.log"
  case $1 in
  is-enabled)
    shift; _rc=1
    for _a in "$@"; do
      [ "$_a" = -- ] && continue
      if [ -L "$_w/$_a" ]; then echo enabled; _rc=0; else echo disabled; fi
    done
    return $_rc ;;
  is-active) shift; [ "$1" = --quiet ] && shift; [ -e "$R/run/active/$1" ] ;;
  enable|disable)
    _c=$1; shift
    for _a in "$@"; do
      case $_a in
      --*) ;;
      *) if [ "$_c" = enable ]; then mkdir -p "$_w" && ln -sf "/etc/systemd/system/$_a" "$_w/$_a"; else rm -f "$_w/$_a"; fi ;;
      esac
    done ;;
  *) : ;;
  esac
}
"#;

impl Transport for Local {
    fn host(&self) -> &str {
        &self.host
    }

    fn preamble(&self) -> String {
        format!(
            "R={}\n{FAKE_SYSTEMCTL}",
            quote(&self.root.display().to_string())
        )
    }

    fn spawn(&self, command: &str) -> io::Result<Child> {
        Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_and_input_arrive_exactly() {
        let dir = std::env::temp_dir().join(format!("bkc-transport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = Local::new("h", &dir);
        // The script reads exactly 3 bytes, then the rest: dd must not have eaten them.
        let out = run(
            &t,
            "a=$(dd bs=65536 iflag=fullblock,count_bytes count=3 status=none); b=$(cat); echo \"$a|$b|$R\"",
            b"abcdef",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("abc|def|{}\n", dir.display())
        );
        assert_eq!(out.code, Some(0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
