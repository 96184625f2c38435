//! `bkc-run serve <job>`: the far end of every remote step of a job, behind a forced command.
//!
//! sshd starts it as `bkc-run serve <job>` for the job's key, with what the peer asked for in
//! `SSH_ORIGINAL_COMMAND`; a login without a forced command (an operator's key) reaches the same
//! code through the account's shell, with the request as arguments. Either way the request is
//! `<runner> serve <job>` followed by nothing (a JSON request line follows on stdin) or by
//! `rsync --server ...` (rsync's own server side, checked and confined). What the job may do on
//! this host comes from `/etc/bkc/serve/<job>.json` alone. Anything else is refused: exit
//! [`REFUSED`], a line on stderr for the peer and one in the host's journal, naming the job and
//! the command. Nothing here runs a shell. docs/SERVE.md has the protocol, docs/SECURITY.md what
//! it guards against.

mod back;
mod fsx;
mod locks;
mod prune;
mod rsync;
mod sandbox;
mod snap;
mod stdin;
mod words;

use std::ffi::{CString, OsString};
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use bkc_contract::names::is_valid_name;
use bkc_contract::serve::{
    HookResult, REFUSED, Reply, Request, ServeFile, SourceState, serve_path,
};
use bkc_contract::spec::Command;

use fsx::{Dir, Kind};

/// What sshd puts the peer's command line in when a forced command runs instead.
const ORIGINAL: &str = "SSH_ORIGINAL_COMMAND";

/// One serve process: its job, the command it was asked for (for messages), and whether its
/// stdout speaks reply lines (it does not when it becomes rsync).
pub(crate) struct Session {
    pub job: String,
    pub command: String,
    pub replies: bool,
}

impl Session {
    /// Refuse the request: say why on stderr and in the journal, answer with a `refused` line
    /// (or, to rsync, with a line it takes for a broken protocol), and give the exit code.
    pub fn refuse(&self, why: &str) -> i32 {
        let line = format!(
            "bkc-run serve {}: refused {:?}: {why}",
            self.job,
            shorten(&self.command)
        );
        crate::report::say!("{line}");
        journal(&line);
        self.answer(Reply::Refused {
            message: why.to_string(),
        });
        REFUSED
    }

    /// The request was allowed but did not work: say why, answer `failed`, exit 1.
    pub fn fail(&self, why: &str) -> i32 {
        crate::report::say!("bkc-run serve {}: {why}", self.job);
        self.answer(Reply::Failed {
            message: why.to_string(),
        });
        1
    }

    /// The last word on stdout: a reply line for a peer that reads them. rsync reads a protocol
    /// version first, and text there makes it stop with its code 2 (protocol incompatibility),
    /// or 126 when ssh has passed on serve's code by then: failures the runner does not retry.
    /// Were stdout left empty, rsync would take the end of the session for a broken link (its
    /// code 12, retried as a network error) whenever ssh had not exited yet when rsync looked.
    fn answer(&self, r: Reply) {
        if self.replies {
            self.reply(&r);
        } else {
            use std::io::Write;
            // rsync stops the moment it reads this, and ssh with it: give ssh the time to pass
            // on the reason (on stderr) first.
            std::thread::sleep(std::time::Duration::from_millis(50));
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "bkc-run serve {}: not served", self.job);
            let _ = out.flush();
        }
    }

    pub fn reply(&self, r: &Reply) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(r.to_line().as_bytes());
        let _ = out.flush();
    }
}

/// At most 300 characters of a command the peer sent, for messages.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// A line in the host's journal (through syslog(3), as sshd logs), with the authentication
/// messages where an administrator looks for who tried what.
fn journal(line: &str) {
    let Ok(msg) = CString::new(line.replace('\0', "?")) else {
        return;
    };
    // SAFETY: openlog keeps the pointer to a static C string; syslog gets a constant format
    // and one NUL-terminated argument.
    unsafe {
        libc::openlog(c"bkc-run".as_ptr(), libc::LOG_PID, libc::LOG_AUTH);
        libc::syslog(libc::LOG_WARNING, c"%s".as_ptr(), msg.as_ptr());
    }
}

pub use prune::main as prune;

/// `bkc-run serve <job> [request...]`, with `args` the words after `serve`. Returns the exit code.
pub fn main(args: &[OsString]) -> i32 {
    let mut s = Session {
        job: String::new(),
        command: describe(args),
        replies: false,
    };
    let Some(job) = args
        .first()
        .and_then(|a| a.to_str())
        .filter(|j| is_valid_name(j))
    else {
        s.job = "?".into();
        return s.refuse("usage: bkc-run serve <job>, with a valid job name");
    };
    s.job = job.to_string();
    let words = match request(job, args) {
        Ok((words, line)) => {
            s.command = line;
            words
        }
        Err(why) => return s.refuse(&why),
    };
    let file = match load(job) {
        Ok(f) => f,
        Err(why) => return s.refuse(&why),
    };
    if let Err(e) = in_use(job) {
        return s.fail(&format!("cannot lock {}: {e}", serve_path(job)));
    }
    match words.first().map(String::as_str) {
        None => json(&mut s, &file),
        Some("rsync") => rsync::serve(&s, &file, &words),
        Some(other) => s.refuse(&format!("`{other}` is not something serve does")),
    }
}

/// The longest request line: a lock session of many locks, or a long hook command.
const MAX_REQUEST: usize = 1 << 20;

/// A request on stdin: read it, check it, do it.
fn json(s: &mut Session, file: &ServeFile) -> i32 {
    s.replies = true;
    let line = match stdin::line(MAX_REQUEST) {
        Ok(Some(l)) => l,
        Ok(None) => return s.refuse("no request on stdin"),
        Err(e) => return s.refuse(&e.to_string()),
    };
    s.command = format!("{} <<< {line}", s.command);
    let req: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => return s.refuse(&format!("not a request: {e}")),
    };
    match req {
        Request::Lock { holder, locks } => locks::session(s, file, &holder, &locks),
        Request::CreateFile { path, holder } => locks::create_file(s, file, &path, &holder),
        Request::RemoveIf { path, line } => locks::remove_if(s, file, &path, &line),
        Request::FileState { path } => locks::file_state(s, file, &path),
        Request::SourceState { path } => source_state(s, file, &path),
        Request::SnapshotList { root, create } => snap::list(s, file, &root, create),
        Request::SnapshotRename { root, from, to } => snap::rename(s, file, &root, &from, &to),
        Request::SnapshotComplete {
            root,
            partial,
            name,
        } => snap::complete(s, file, &root, &partial, &name),
        Request::SnapshotPrune { root, current } => snap::prune(s, file, &root, &current),
        Request::WriteMarkers { paths, content } => back::write_markers(s, file, &paths, &content),
        Request::SnapshotWalk { root } => back::walk(s, file, &root),
        Request::Have { root, dirs, paths } => back::have(s, file, &root, &dirs, &paths),
        Request::Hook { command, result } => hook(s, file, &command, result),
    }
}

/// `source-state`: what a pull source holds, for the empty-source guard.
fn source_state(s: &Session, file: &ServeFile, path: &str) -> i32 {
    // A source (the empty-source guard), or a restore's target (new or empty unless forced).
    if !file.read.iter().any(|p| p == path) && file.restore_root(path).is_none() {
        return s.refuse(&format!(
            "{path} is not one of the job's sources here, nor inside a directory it may restore to"
        ));
    }
    let state = match Dir::parent_of(path, false) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(SourceState::Missing),
        Err(e) => Err(e),
        Ok((dir, name)) => match dir.kind(&name) {
            Ok(None) => Ok(SourceState::Missing),
            Ok(Some(Kind::Dir)) => dir.sub(&name).and_then(|d| d.names()).map(|n| {
                if n.is_empty() {
                    SourceState::Empty
                } else {
                    SourceState::NonEmpty
                }
            }),
            Ok(Some(Kind::Symlink)) => Err(std::io::Error::other(
                "it is a symlink, which serve never follows",
            )),
            Ok(Some(_)) => Ok(SourceState::NonEmpty),
            Err(e) => Err(e),
        },
    };
    match state {
        Ok(state) => {
            s.reply(&Reply::Source { state });
            0
        }
        Err(e) => s.fail(&format!("cannot look at {path}: {e}")),
    }
}

/// `hook`: run one of the job's hooks on this host, exactly as the topology wrote it (a one-string
/// hook is the administrator's own shell line; the peer can only pick it, not change it).
fn hook(s: &Session, file: &ServeFile, command: &Command, result: Option<HookResult>) -> i32 {
    if !file.hooks.contains(command) {
        return s.refuse("this command is not one of the job's hooks here");
    }
    let mut c = match command {
        Command::Shell(line) => {
            let mut c = std::process::Command::new("sh");
            c.arg("-c").arg(line);
            c
        }
        Command::Argv(argv) => {
            let Some((prog, args)) = argv.split_first() else {
                return s.fail("the hook's argv is empty");
            };
            let mut c = std::process::Command::new(prog);
            c.args(args);
            c
        }
    };
    c.env("BKC_JOB", &s.job).stdin(Stdio::null());
    if let Some(r) = result {
        c.env("BKC_RESULT", r.result.as_str())
            .env("BKC_EXIT_CODE", r.exit_code.to_string());
    }
    // The hook takes serve's place: its output is the session's, its exit code serve's.
    let e = c.exec();
    s.fail(&format!("cannot run the hook: {e}"))
}

/// The command line as given, for messages.
fn describe(args: &[OsString]) -> String {
    let words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!("serve {}", words.join(" "))
}

/// The words of the request after `<runner> serve <job>`, and the command line they came from.
/// Under a forced command they come from `SSH_ORIGINAL_COMMAND`, which must name this very job:
/// a key for one job cannot ask for another's.
fn request(job: &str, args: &[OsString]) -> Result<(Vec<String>, String), String> {
    let Some(original) = std::env::var_os(ORIGINAL) else {
        let words = args[1..]
            .iter()
            .map(|a| {
                a.to_str()
                    .map(String::from)
                    .ok_or_else(|| "an argument that is not UTF-8".to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((words, describe(args)));
    };
    if args.len() > 1 {
        return Err(format!(
            "{ORIGINAL} is set, so this is a forced command, which must be exactly `bkc-run serve <job>`"
        ));
    }
    let line = original
        .into_string()
        .map_err(|_| "a command that is not UTF-8".to_string())?;
    let words = words::split(&line).map_err(|e| format!("the command has {e}"))?;
    match words.as_slice() {
        [_, serve, asked, rest @ ..] if serve == "serve" && asked == job => {
            Ok((rest.to_vec(), line))
        }
        [_, serve, asked, ..] if serve == "serve" => {
            Err(format!("this key serves job {job}, not job {asked:?}"))
        }
        _ => Err("only `<runner> serve <job> ...` is served; there is no shell".into()),
    }
}

/// Hold the job's serve file locked, shared, for as long as this session (or the rsync or hook
/// it becomes) lives: `bkc apply` then keeps the file while a run of the job uses it, even when
/// the job is removed meanwhile (see deploy::running_sh).
fn in_use(job: &str) -> std::io::Result<()> {
    use std::os::fd::IntoRawFd;
    let fd = std::fs::File::open(serve_path(job))?.into_raw_fd();
    // SAFETY: fcntl(2) and flock(2) on the descriptor just opened, which is deliberately left
    // open and inherited across exec to hold the lock.
    unsafe {
        if libc::fcntl(fd, libc::F_SETFD, 0) < 0 || libc::flock(fd, libc::LOCK_SH) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The job's serve file, checked.
fn load(job: &str) -> Result<ServeFile, String> {
    let path = serve_path(job);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {path}: {e} (is job {job} deployed to this host?)"))?;
    let f = ServeFile::from_json(&text).map_err(|e| format!("{path} is not valid: {e}"))?;
    if f.version != bkc_contract::serve::SERVE_VERSION {
        return Err(format!(
            "{path} has version {}; this bkc-run reads version {}",
            f.version,
            bkc_contract::serve::SERVE_VERSION
        ));
    }
    if f.job != job {
        return Err(format!("{path} is for job {:?}", f.job));
    }
    Ok(f)
}
