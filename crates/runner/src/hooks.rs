//! Hooks: the admin's commands before and after the syncs, on the job's host or, through
//! `bkc-run serve`, on another.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::child::{self, Stop};
use super::{Ctx, ssh};
use bkc_contract::serve::{HookResult as RunOutcome, Request};
use bkc_contract::spec::{Command as HookCommand, Hook};

pub enum HookResult {
    Ok,
    Failed(String),
    Stopped(Stop),
}

/// A short printable form of the command, for events and messages.
pub fn display(c: &HookCommand) -> String {
    match c {
        HookCommand::Shell(s) => s.clone(),
        HookCommand::Argv(v) => ssh::join(v),
    }
}

/// The hook as a local process, with `BKC_JOB` and, for after hooks, how the run went.
fn local(ctx: &Ctx, hook: &Hook, result: Option<RunOutcome>) -> Result<Command, String> {
    let mut c = match &hook.command {
        HookCommand::Shell(s) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(s);
            c
        }
        HookCommand::Argv(v) => {
            let Some((prog, args)) = v.split_first() else {
                return Err("the hook's argv is empty".into());
            };
            let mut c = Command::new(prog);
            c.args(args);
            c
        }
    };
    c.env("BKC_JOB", &ctx.spec.job).stdin(Stdio::null());
    if let Some(r) = result {
        c.env("BKC_RESULT", r.result.as_str())
            .env("BKC_EXIT_CODE", r.exit_code.to_string());
    }
    Ok(c)
}

/// Run `hook`; `result` is how the run went, for after hooks. A remote hook is a `hook` request
/// to `bkc-run serve` on its host, which runs it only if it is the very command the topology
/// gave for that host, and sets the same environment there.
pub fn run(
    ctx: &Ctx,
    hook: &Hook,
    result: Option<RunOutcome>,
    deadline: Option<Instant>,
) -> HookResult {
    let mut request = None;
    let mut cmd = if ctx.spec.is_local(&hook.host) {
        match local(ctx, hook, result) {
            Ok(c) => c,
            Err(m) => return HookResult::Failed(m),
        }
    } else {
        let ep = match ssh::endpoint(&ctx.spec, &hook.host) {
            Ok(ep) => ep,
            Err(m) => return HookResult::Failed(m),
        };
        request = Some(Request::Hook {
            command: hook.command.clone(),
            result,
        });
        let mut c = ssh::command(&ctx.spec, ep, &ssh::serve_line(&ctx.spec, ep));
        c.stdin(Stdio::piped());
        c
    };
    cmd.stdout(child::stderr_stdio());
    let mut r = match child::spawn(&mut cmd, true) {
        Ok(r) => r,
        Err(e) => return HookResult::Failed(format!("cannot start: {e}")),
    };
    if let (Some(req), Some(mut stdin)) = (request, r.child.stdin.take()) {
        // One line, then the end of stdin: the hook itself reads nothing.
        let _ = stdin.write_all(req.to_line().as_bytes());
    }
    match r.wait(deadline) {
        Ok((_, Some(stop))) => HookResult::Stopped(stop),
        Ok((st, None)) if st.success() => HookResult::Ok,
        Ok((st, None)) => HookResult::Failed(format!("exit code {}", child::code(&st))),
        Err(e) => HookResult::Failed(format!("cannot wait: {e}")),
    }
}
