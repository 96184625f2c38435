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
use bkc_contract::names::{known_hosts_pattern, ssh_host};

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
                text.push_str(&format!(
                    "{} {key}\n",
                    known_hosts_pattern(&t.address, t.port)
                ));
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
        // A host bkc deploys to gets nothing of the operator's: no agent, no forwarded ports,
        // whatever the operator's ssh_config says for interactive use.
        opt("ForwardAgent=no".into());
        opt("ForwardX11=no".into());
        opt("ClearAllForwardings=yes".into());
        if !target.host_keys.is_empty() {
            // Only the pinned keys count: not the system's known hosts, and looked up under the
            // name bkc wrote them with, even when the operator's ssh_config maps the address
            // to another HostName (an alias, a jump host).
            opt(format!("UserKnownHostsFile={}", self.known_hosts.display()));
            opt("GlobalKnownHostsFile=/dev/null".into());
            opt(format!(
                "HostKeyAlias={}",
                known_hosts_pattern(&target.address, target.port)
            ));
            opt("StrictHostKeyChecking=yes".into());
        }
        args.push("-p".into());
        args.push(target.port.to_string().into());
        args.push("-l".into());
        args.push(target.user.clone().into());
        // Options end before the address: one read from a saved plan can never become one.
        args.push("--".into());
        args.push(ssh_host(&target.address).into());
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
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }
}

/// A directory on this machine standing in for a host's `/`, with a stand-in `systemctl` (a
/// shell function) that answers every verb bkc uses as systemd 252 does, and refuses the rest
/// (`reload` only of a unit the test marked active, as bkc reloads only a running sshd), and
/// `sshd` as the machine's real sshd reading `<root>/etc/ssh/sshd_config`:
/// a stand-in that answers wrongly hides exactly the bugs that matter (one that called a running
/// oneshot `active` hid apply deleting a running backup's files). Enablement is kept as symlinks
/// in `timers.target.wants`; a unit's `ActiveState` is the word in `<root>/run/bkc-standin/<unit>`
/// (`inactive` when absent: a test writes `activating` there for a running backup); every call
/// is logged to `<root>/systemctl.log`. tests/deploy_fleet.rs asks the same questions of a booted
/// systemd and of this stand-in and compares the answers.
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
_sc_state() { cat "$R/run/bkc-standin/$1" 2>/dev/null || echo inactive; }
_sc_file() {
  _f="$R/etc/systemd/system/$1"
  if [ -L "$_f" ] && [ "$(readlink "$_f")" = /dev/null ]; then echo masked
  elif [ ! -f "$_f" ]; then echo "Failed to get unit file state for $1: No such file or directory" >&2; return 1
  elif ! grep -q '^\[Install\]' "$_f"; then echo static
  elif [ -L "$R/etc/systemd/system/timers.target.wants/$1" ]; then echo enabled
  else echo disabled
  fi
}
systemctl() {
  printf '%s\n' "$*" >> "$R/systemctl.log"
  _v=$1; shift
  _quiet=; _now=; _prop=; _units=
  while [ $# -gt 0 ]; do
    case $1 in
    --quiet) _quiet=1 ;;
    --now) _now=1 ;;
    --no-block | --value | --) ;;
    -p) shift; _prop=$1 ;;
    -*) echo "stand-in systemctl: option $1 is not simulated" >&2; return 1 ;;
    *) _units="$_units $1" ;;
    esac
    shift
  done
  mkdir -p "$R/run/bkc-standin" "$R/etc/systemd/system/timers.target.wants"
  case $_v in
  is-active)
    _rc=3
    for _a in $_units; do
      _st=$(_sc_state "$_a")
      [ -n "$_quiet" ] || echo "$_st"
      case $_st in active | reloading) _rc=0 ;; esac
    done
    return $_rc ;;
  is-enabled)
    _rc=1
    for _a in $_units; do
      _st=$(_sc_file "$_a") || return 1
      [ -n "$_quiet" ] || echo "$_st"
      case $_st in enabled | static) _rc=0 ;; esac
    done
    return $_rc ;;
  show)
    [ "$_prop" = ActiveState ] || { echo "stand-in systemctl: show -p $_prop is not simulated" >&2; return 1; }
    for _a in $_units; do _sc_state "$_a"; done ;;
  enable | disable)
    for _a in $_units; do
      if [ "$_v" = enable ]; then
        ln -sf "/etc/systemd/system/$_a" "$R/etc/systemd/system/timers.target.wants/$_a"
        [ -z "$_now" ] || systemctl start "$_a" || return
      else
        rm -f "$R/etc/systemd/system/timers.target.wants/$_a"
        [ -z "$_now" ] || systemctl stop "$_a" || return
      fi
    done ;;
  reload)
    for _a in $_units; do
      [ "$(_sc_state "$_a")" = active ] || { echo "Failed to reload $_a: Unit $_a is not active." >&2; return 1; }
    done ;;
  start | restart | stop)
    for _a in $_units; do
      case $_a in *.timer) ;; *) echo "stand-in systemctl: cannot run $_a" >&2; return 1 ;; esac
      if [ "$_v" = stop ]; then
        rm -f "$R/run/bkc-standin/$_a"
      elif [ -f "$R/etc/systemd/system/$_a" ]; then
        echo active > "$R/run/bkc-standin/$_a"
      else
        echo "Failed to $_v $_a: Unit $_a not found." >&2; return 5
      fi
    done ;;
  daemon-reload) ;;
  *) echo "stand-in systemctl: $_v is not simulated" >&2; return 1 ;;
  esac
}
sshd() {
  printf 'sshd %s\n' "$*" >> "$R/sshd.log"
  /usr/sbin/sshd -f "$R/etc/ssh/sshd_config" "$@"
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
    fn an_address_is_never_an_option_and_pinned_keys_stand_alone() {
        let target = Target {
            address: "-oProxyCommand=touch /tmp/x".into(),
            port: 2222,
            user: "root".into(),
            host_keys: vec!["ssh-ed25519 AAAA".into()],
        };
        let session = SshSession::new([&target], None, vec![]).unwrap();
        let args: Vec<String> = session
            .host("h", &target, 0)
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let n = args.len();
        assert_eq!(&args[n - 2..], ["--", "-oProxyCommand=touch /tmp/x"]);
        for o in [
            "ForwardAgent=no",
            "ClearAllForwardings=yes",
            "GlobalKnownHostsFile=/dev/null",
            "HostKeyAlias=[-oProxyCommand=touch /tmp/x]:2222",
            "StrictHostKeyChecking=yes",
        ] {
            assert!(args.iter().any(|a| a == o), "{o} missing from {args:?}");
        }
    }

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
