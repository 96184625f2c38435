//! With `ssh-keys "restricted"` (docs/SECURITY.md): who may log in to a host, and as what.
//!
//! Every job that reaches other hosts has a key of its own. Each host it reaches gets, in
//! `/etc/bkc/authorized_keys/<user>`, one line for that key which lets it run nothing but
//! `<runner> serve <job>` (`restrict`, a forced `command=`, and `from=` when the job's host has
//! an IP address), and an sshd drop-in that makes sshd read that file besides the ones it read
//! before. The far side then decides what the job may do there, not the job.
//!
//! A key that is neither pinned in the topology nor read from its host yet cannot be written:
//! its line is a comment saying so, which sshd ignores, until `bkc apply` makes the key and
//! fills the line in. What the hosts say (their keys, sshd's own list) comes in as [`Facts`].

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use bkc_contract::names::{
    AUTHORIZED_KEYS_PATTERN, SSHD_DROPIN_PATH, authorized_keys_path, key_path, shell_quote,
};

use crate::topology::{SshKeys, Topology};

/// What the hosts said, for the files only they can complete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The public half (`TYPE BASE64`) of each job's key, read on the job's host.
    pub keys: BTreeMap<String, String>,
    /// Per host, the files its sshd reads as `AuthorizedKeysFile` (without bkc's own).
    pub authorized_keys_files: BTreeMap<String, Vec<String>>,
}

/// OpenSSH's own `AuthorizedKeysFile`, for a host whose sshd was not asked.
pub const SSHD_DEFAULT_FILES: [&str; 2] = [".ssh/authorized_keys", ".ssh/authorized_keys2"];

/// One job's right to log in to a host: its key may run `<runner> serve <job>` and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub job: String,
    /// The host the job runs on, where its key is.
    pub job_host: String,
    pub runner: String,
    /// The job's host's IP address, when it has one (`from=`).
    pub from: Option<String>,
    /// The key the topology pins, if it pins one.
    pub pinned: Option<String>,
}

/// A job of this host that needs a key of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnKey {
    pub job: String,
    pub pinned: Option<String>,
}

/// Everything about restricted keys on one host: the jobs that may log in to it (by the user
/// they log in as) and the jobs of its own that need a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAccess {
    pub host: String,
    pub grants: BTreeMap<String, Vec<Grant>>,
    pub keys: Vec<OwnKey>,
}

/// The access of every host of `topology` (empty with `ssh-keys "operator"`), in one pass over
/// the jobs: asking per host would go over every job once per host.
pub fn all(topology: &Topology) -> BTreeMap<String, HostAccess> {
    let mut out: BTreeMap<String, HostAccess> = topology
        .hosts
        .keys()
        .map(|h| {
            let access = HostAccess {
                host: h.clone(),
                ..HostAccess::default()
            };
            (h.clone(), access)
        })
        .collect();
    if topology.ssh_keys != SshKeys::Restricted {
        return out;
    }
    for job in topology.jobs.values() {
        let Some(key) = &job.key else { continue };
        if let Some(own) = out.get_mut(&job.host) {
            own.keys.push(OwnKey {
                job: job.name.clone(),
                pinned: key.pinned.clone(),
            });
        }
        let from = ip_address(&topology.hosts[&job.host].address);
        for host in job.spec.hosts.keys() {
            let (Some(access), Some(h)) = (out.get_mut(host), topology.hosts.get(host)) else {
                continue;
            };
            access
                .grants
                .entry(h.user.clone())
                .or_default()
                .push(Grant {
                    job: job.name.clone(),
                    job_host: job.host.clone(),
                    runner: job.service.runner.clone(),
                    from: from.clone(),
                    pinned: key.pinned.clone(),
                });
        }
    }
    out
}

/// The address as an IP address, when it is one. A host name is never used in `from=`: sshd
/// would match it only with `UseDNS yes`, by a reverse lookup whose answer belongs to whoever
/// controls the address's PTR record.
fn ip_address(address: &str) -> Option<String> {
    if let Some(v6) = address.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().ok().map(|a| a.to_string());
    }
    address.parse::<Ipv4Addr>().ok().map(|a| a.to_string())
}

impl HostAccess {
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty() && self.keys.is_empty()
    }

    /// The public key a grant's line carries: the pinned one, else the one read on the host.
    fn key<'a>(g: &'a Grant, facts: &'a Facts) -> Option<&'a str> {
        g.pinned
            .as_deref()
            .or_else(|| facts.keys.get(&g.job).map(String::as_str))
    }

    /// How many lines are comments for want of a key.
    pub fn missing_keys(&self, facts: &Facts) -> usize {
        self.grants
            .values()
            .flatten()
            .filter(|g| Self::key(g, facts).is_none())
            .count()
    }

    /// The files of this host: an authorized keys file per user and the sshd drop-in, none
    /// when no job reaches the host. `runner` replaces the topology's runner in the forced
    /// commands (the NixOS module puts its own there).
    pub fn files(&self, facts: &Facts, runner: Option<&str>) -> Vec<(String, String)> {
        if self.grants.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<(String, String)> = self
            .grants
            .iter()
            .map(|(user, grants)| {
                let mut text = String::from(
                    "# Generated by bkc: do not edit. Each key below may run only its job's\n\
                     # `bkc-run serve` on this host (docs/SECURITY.md).\n",
                );
                for g in grants {
                    text.push_str(&line(g, Self::key(g, facts), runner));
                }
                (authorized_keys_path(user), text)
            })
            .collect();
        let found = facts.authorized_keys_files.get(&self.host);
        out.push((SSHD_DROPIN_PATH.to_string(), dropin(found)));
        out
    }
}

/// One grant's line, or a comment in its place when its key is not known yet.
fn line(g: &Grant, key: Option<&str>, runner: Option<&str>) -> String {
    let runner = runner.map_or_else(|| shell_quote(&g.runner), str::to_string);
    let command = format!("{runner} serve {}", g.job).replace('"', "\\\"");
    let mut options = format!("restrict,command=\"{command}\"");
    if let Some(from) = &g.from {
        options.push_str(&format!(",from=\"{from}\""));
    }
    match key {
        Some(key) => format!("{options} {key} bkc:{}@{}\n", g.job, g.job_host),
        None => format!(
            "# {options} <the key of job {job}, not known yet: `bkc apply` makes {path} on {host} and writes it here, or pin it with key \"…\" in the job>\n",
            job = g.job,
            path = key_path(&g.job),
            host = g.job_host
        ),
    }
}

/// The sshd drop-in: the files sshd read before (`found`, or OpenSSH's default when its answer
/// is not known), then bkc's.
fn dropin(found: Option<&Vec<String>>) -> String {
    let mut files: Vec<&str> = match found {
        Some(list) => list.iter().map(String::as_str).collect(),
        None => SSHD_DEFAULT_FILES.to_vec(),
    };
    files.retain(|f| *f != AUTHORIZED_KEYS_PATTERN && *f != "none");
    files.push(AUTHORIZED_KEYS_PATTERN);
    format!(
        "# Generated by bkc: do not edit. sshd reads the keys bkc authorizes for the jobs that\n\
         # reach this host, after the files it read before, which stay as they were.\n\
         AuthorizedKeysFile {}\n",
        files.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(from: Option<&str>, pinned: Option<&str>) -> Grant {
        Grant {
            job: "a-to-b".into(),
            job_host: "backup_a".into(),
            runner: "/usr/local/bin/bkc-run".into(),
            from: from.map(str::to_string),
            pinned: pinned.map(str::to_string),
        }
    }

    #[test]
    fn a_line_forces_the_jobs_serve() {
        assert_eq!(
            line(
                &grant(Some("10.0.0.5"), Some("ssh-ed25519 AAAA")),
                Some("ssh-ed25519 AAAA"),
                None
            ),
            "restrict,command=\"/usr/local/bin/bkc-run serve a-to-b\",from=\"10.0.0.5\" ssh-ed25519 AAAA bkc:a-to-b@backup_a\n"
        );
        let mut g = grant(None, None);
        g.runner = "/opt/my bkc/bkc-run".into();
        assert_eq!(
            line(&g, Some("ssh-ed25519 BBBB"), None),
            "restrict,command=\"'/opt/my bkc/bkc-run' serve a-to-b\" ssh-ed25519 BBBB bkc:a-to-b@backup_a\n"
        );
        assert!(line(&g, None, None).starts_with("# restrict,"));
        assert!(line(&g, Some("k"), Some("${r}")).contains("command=\"${r} serve a-to-b\""));
    }

    #[test]
    fn only_ip_addresses_go_into_from() {
        assert_eq!(ip_address("10.1.2.3").as_deref(), Some("10.1.2.3"));
        assert_eq!(ip_address("[2001:db8::5]").as_deref(), Some("2001:db8::5"));
        assert_eq!(ip_address("backup-a.example.com"), None);
        assert_eq!(ip_address("10.1.2"), None);
    }

    #[test]
    fn the_dropin_keeps_what_sshd_read() {
        assert!(dropin(None).ends_with(
            "AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys2 /etc/bkc/authorized_keys/%u\n"
        ));
        let found = vec![
            "/etc/ssh/keys/%u".to_string(),
            AUTHORIZED_KEYS_PATTERN.to_string(),
        ];
        assert!(
            dropin(Some(&found))
                .ends_with("AuthorizedKeysFile /etc/ssh/keys/%u /etc/bkc/authorized_keys/%u\n")
        );
        assert!(
            dropin(Some(&vec!["none".to_string()]))
                .ends_with("AuthorizedKeysFile /etc/bkc/authorized_keys/%u\n")
        );
    }
}
