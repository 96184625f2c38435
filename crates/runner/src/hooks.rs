//! Hooks: the admin's commands before and after the syncs, on the job's host or over SSH.

use std::process::{Command, Stdio};
use std::time::Instant;

use super::child::{self, Stop};
use super::{Ctx, ssh};
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

/// The command line sent over SSH. A shell string is the admin's own line and goes as is; an argv
/// is quoted word by word. The environment is exported first so it reaches every command of a
/// compound line, not just the first.
pub fn remote_line(c: &HookCommand, env: &[(String, String)]) -> String {
    let body = match c {
        HookCommand::Shell(s) => s.clone(),
        HookCommand::Argv(v) => ssh::join(v),
    };
    if env.is_empty() {
        return body;
    }
    let assigns: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k}={}", ssh::quote(v)))
        .collect();
    format!("export {}; {body}", assigns.join(" "))
}

pub fn run(
    ctx: &Ctx,
    hook: &Hook,
    env: &[(String, String)],
    deadline: Option<Instant>,
) -> HookResult {
    let mut cmd = if ctx.spec.is_local(&hook.host) {
        let mut c = match &hook.command {
            HookCommand::Shell(s) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(s);
                c
            }
            HookCommand::Argv(v) => {
                let Some((prog, args)) = v.split_first() else {
                    return HookResult::Failed("the hook's argv is empty".into());
                };
                let mut c = Command::new(prog);
                c.args(args);
                c
            }
        };
        c.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    } else {
        let ep = match ssh::endpoint(&ctx.spec, &hook.host) {
            Ok(ep) => ep,
            Err(m) => return HookResult::Failed(m),
        };
        ssh::command(&ctx.spec, ep, &remote_line(&hook.command, env))
    };
    cmd.stdin(Stdio::null()).stdout(child::stderr_stdio());
    let mut r = match child::spawn(&mut cmd, true) {
        Ok(r) => r,
        Err(e) => return HookResult::Failed(format!("cannot start: {e}")),
    };
    match r.wait(deadline) {
        Ok((_, Some(stop))) => HookResult::Stopped(stop),
        Ok((st, None)) if st.success() => HookResult::Ok,
        Ok((st, None)) => HookResult::Failed(format!("exit code {}", child::code(&st))),
        Err(e) => HookResult::Failed(format!("cannot wait: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_lines() {
        let env = vec![("BKC_JOB".to_string(), "a b".to_string())];
        assert_eq!(
            remote_line(&HookCommand::Shell("x; y".into()), &env),
            "export BKC_JOB='a b'; x; y"
        );
        assert_eq!(
            remote_line(
                &HookCommand::Argv(vec!["touch".into(), "/tmp/it's here".into()]),
                &[]
            ),
            r"touch '/tmp/it'\''s here'"
        );
    }
}
