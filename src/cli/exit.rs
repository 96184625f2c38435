//! How a `bkc` command ends. Every command ends with an [`Exit`], a meaning; [`Exit::code`] is
//! the one place a meaning becomes a number, and the exit-code tables of README.md and
//! docs/DEPLOY.md are generated from it (the tests below fail when they differ).

use std::fmt::Display;
use std::process::ExitCode;

/// Why a command ended, as its exit code documents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// The topology (or the imported config) has errors, or warnings with `--deny-warnings`.
    Invalid,
    NotFormatted,
    WouldTimeOut,
    HostFailed,
    /// Asked on a terminal and not told `yes`.
    Declined,
    /// `apply plan.json`: a host, or the local bkc-run, changed since the plan was made.
    StalePlan,
    /// `restore` would have overwritten or mixed data unasked, or had nothing to restore.
    Refused,
    /// `verify` found a corrupted or missing file.
    Found,
    /// Unreadable input, unwritable output, bad arguments, a `--host` that matches no host.
    CouldNotRun,
    /// `plan --detailed-exitcode` only.
    Changes,
    /// `run --wait`: the run's own exit code, passed on.
    Runner(u8),
    /// `status --check`: a job is stale or its last run failed.
    NotFresh,
}

/// Which numbering a command promised. `plan --detailed-exitcode` follows Terraform's, where 2
/// means "there are changes", so there every error is 1: a script that applies on 2 must never
/// apply after a typo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codes {
    Plain,
    Detailed,
    /// `status --check`, for cron, CI and Nagios-style monitors: 1 is a finding about the
    /// backups, 2 that bkc could not look (a host out of reach, or any other error).
    Check,
}

impl Exit {
    /// Every meaning, in the order of the documented table.
    const ALL: [Exit; 13] = [
        Exit::Success,
        Exit::Invalid,
        Exit::NotFormatted,
        Exit::WouldTimeOut,
        Exit::HostFailed,
        Exit::Declined,
        Exit::StalePlan,
        Exit::NotFresh,
        Exit::Refused,
        Exit::Found,
        Exit::CouldNotRun,
        Exit::Changes,
        Exit::Runner(0),
    ];

    /// The meanings `plan --detailed-exitcode` can end with.
    #[cfg(test)]
    const DETAILED: [Exit; 5] = [
        Exit::Success,
        Exit::Invalid,
        Exit::HostFailed,
        Exit::CouldNotRun,
        Exit::Changes,
    ];

    /// The meanings `status --check` can end with.
    #[cfg(test)]
    const CHECK: [Exit; 4] = [
        Exit::Success,
        Exit::NotFresh,
        Exit::HostFailed,
        Exit::CouldNotRun,
    ];

    pub fn code(self, codes: Codes) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Invalid
            | Exit::NotFormatted
            | Exit::WouldTimeOut
            | Exit::Declined
            | Exit::StalePlan
            | Exit::NotFresh
            | Exit::Refused
            | Exit::Found => 1,
            Exit::HostFailed => match codes {
                Codes::Plain | Codes::Detailed => 1,
                Codes::Check => 2,
            },
            Exit::CouldNotRun => match codes {
                Codes::Plain | Codes::Check => 2,
                Codes::Detailed => 1,
            },
            Exit::Changes => 2,
            Exit::Runner(code) => code,
        }
    }

    pub fn exit_code(self, codes: Codes) -> ExitCode {
        ExitCode::from(self.code(codes))
    }

    /// This finding when `found`, else success.
    pub fn when(self, found: bool) -> Exit {
        if found { self } else { Exit::Success }
    }

    /// The meaning as the docs' table says it.
    fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "success (with `plan --detailed-exitcode`: and no changes)",
            Exit::Invalid => {
                "the topology (or the imported config) has errors, or warnings with `--deny-warnings`"
            }
            Exit::NotFormatted => "`fmt --check` found a file to format",
            Exit::WouldTimeOut => {
                "`simulate` (or `check --simulate`) found a run that would time out"
            }
            Exit::HostFailed => {
                "a host failed or could not be reached (`plan`, `apply`, `rollback`, `status`, `run`, \
                 `snapshots`, `restore`)"
            }
            Exit::Declined => {
                "`apply`, `rollback` or `restore --in-place` asked and was not told `yes`; nothing changed"
            }
            Exit::StalePlan => {
                "`apply plan.json`: a host, or the local bkc-run, changed since the plan was made; \
                 nothing was applied"
            }
            Exit::Refused => {
                "`restore` refused: a `--to` directory that is not empty (without `--force`), a path \
                 not in the snapshot, no snapshot at `--at`; nothing changed"
            }
            Exit::Found => "`verify` found a corrupted or missing file",
            Exit::CouldNotRun => {
                "bkc could not do its work: an unreadable file, an unwritable output, bad arguments, \
                 a `--host` that matches no host, an unknown job; `verify` that could not compare"
            }
            Exit::Changes => "`plan --detailed-exitcode` found changes",
            Exit::Runner(_) => "`run --wait`: N is the run's own exit code (docs/RUNNER.md)",
            Exit::NotFresh => "`status --check` found a stale job or a failed last run",
        }
    }

    /// The exit codes as `bkc --help` and the manual page list them.
    pub fn help() -> String {
        let mut t =
            String::from("Exit codes (with `plan --detailed-exitcode`, every error is 1):\n");
        for e in Exit::ALL {
            let code = match e {
                Exit::Runner(_) => "N".to_string(),
                _ => e.code(Codes::Plain).to_string(),
            };
            t.push_str(&format!("  {code:<3}{}\n", e.meaning()));
        }
        t
    }

    /// The Markdown table of `exits` under `codes`.
    #[cfg(test)]
    fn table(exits: &[Exit], codes: Codes) -> String {
        let mut t = String::from("| exit | meaning |\n|---|---|\n");
        for e in exits {
            let code = match e {
                Exit::Runner(_) => "`N`".to_string(),
                _ => format!("`{}`", e.code(codes)),
            };
            t.push_str(&format!("| {code} | {} |\n", e.meaning()));
        }
        t
    }
}

/// End a command on an error, saying it on standard error first.
pub trait OrExit<T, E> {
    /// `error: <e>`, then `exit`.
    fn or_exit(self, exit: Exit) -> Result<T, Exit>
    where
        E: Display;

    /// The error as a diagnostic (code, help), then `exit`.
    fn or_report(self, exit: Exit) -> Result<T, Exit>
    where
        E: miette::Diagnostic + Send + Sync + 'static;
}

impl<T, E> OrExit<T, E> for Result<T, E> {
    fn or_exit(self, exit: Exit) -> Result<T, Exit>
    where
        E: Display,
    {
        self.map_err(|e| {
            eprintln!("error: {e}");
            exit
        })
    }

    fn or_report(self, exit: Exit) -> Result<T, Exit>
    where
        E: miette::Diagnostic + Send + Sync + 'static,
    {
        self.map_err(|e| {
            eprintln!("{:?}", miette::Report::new(e));
            exit
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(path: &str) -> String {
        std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn the_readme_has_the_table() {
        let want = Exit::table(&Exit::ALL, Codes::Plain);
        assert!(
            doc("README.md").contains(&want),
            "README.md must have this exit-code table:\n{want}"
        );
    }

    #[test]
    fn the_deploy_doc_has_the_detailed_table() {
        let want = Exit::table(&Exit::DETAILED, Codes::Detailed);
        assert!(
            doc("docs/DEPLOY.md").contains(&want),
            "docs/DEPLOY.md must have this exit-code table for plan --detailed-exitcode:\n{want}"
        );
    }

    #[test]
    fn the_readme_has_the_check_table() {
        let want = Exit::table(&Exit::CHECK, Codes::Check);
        assert!(
            doc("README.md").contains(&want),
            "README.md must have this exit-code table for status --check:\n{want}"
        );
    }

    /// A script that applies when `plan --detailed-exitcode` exits 2 must never see 2 for an error.
    #[test]
    fn detailed_codes_keep_2_for_changes() {
        for e in Exit::ALL {
            let code = e.code(Codes::Detailed);
            assert_eq!(code == 2, e == Exit::Changes, "{e:?}");
            if !matches!(e, Exit::Runner(_)) {
                assert!(code <= 2, "{e:?}");
            }
        }
        assert_eq!(Exit::CouldNotRun.code(Codes::Plain), 2);
        assert_eq!(Exit::Runner(143).code(Codes::Plain), 143);
    }
}
