//! Jobs' own keys (`ssh-keys "restricted"`, docs/SECURITY.md): `bkc apply` makes each missing
//! one on the job's host with ssh-keygen there (keys.sh), so the private half never leaves the
//! host, and reads the public half back for the authorized keys of the hosts the job reaches.
//! This happens before the plan that writes those authorized keys is made (see
//! `cli::apply`): a new key opens nothing until that plan is applied.

use std::collections::BTreeMap;

use super::transport::{Transport, run};
use super::{HostError, quote};
use crate::printable::printable_line;

const KEYS: &str = include_str!("keys.sh");

/// Make the keys of `jobs` on `t`'s host where they are missing; the public half of each, and
/// the jobs whose key was made now.
pub fn make(
    t: &dyn Transport,
    jobs: &[String],
) -> Result<(BTreeMap<String, String>, Vec<String>), HostError> {
    let args: Vec<String> = jobs.iter().map(|j| quote(j)).collect();
    let script = format!("H={}\nset -- {}\n{KEYS}", quote(t.host()), args.join(" "));
    let out = run(t, &script, b"")
        .map_err(|e| HostError::new(t.host(), format!("cannot start ssh: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut keys = BTreeMap::new();
    let mut made = Vec::new();
    let mut ended = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["key", job, ty, blob, ..] if jobs.iter().any(|j| j == job) => {
                let key = super::plan::public_key(ty, blob)
                    .ok_or_else(|| HostError::new(t.host(), refused(line)))?;
                keys.insert(job.to_string(), key);
            }
            ["made", job] if jobs.iter().any(|j| j == job) => made.push(job.to_string()),
            ["error", ..] => {
                return Err(HostError::new(
                    t.host(),
                    format!("cannot make the jobs' keys: {}", &line[6..]),
                ));
            }
            ["end"] => ended = true,
            _ => return Err(HostError::new(t.host(), refused(line))),
        }
    }
    if !ended || keys.len() != jobs.len() {
        return Err(HostError::new(
            t.host(),
            format!(
                "cannot make the jobs' keys: the host's answer was cut short ({})",
                out.stderr.trim()
            ),
        ));
    }
    Ok((keys, made))
}

fn refused(line: &str) -> String {
    format!(
        "making the jobs' keys, the host answered `{}`",
        printable_line(line)
    )
}
