//! Prometheus alerting rules from the topology (`bkc build --emit prometheus`): each job's
//! staleness with its own `alert-after`, a failed last run, a failed scheduled verify, a lock
//! wait near its timeout, and
//! per host, textfiles that stopped changing. The rules are data here; the template
//! (templates/prometheus.rules.yml.j2) only lays them out as YAML.

use std::collections::BTreeMap;

use bkc_contract::metrics::{LAST_EXIT_CODE, LAST_SUCCESS, LOCK_WAIT, VERIFY_EXIT_CODE};
use serde::Serialize;

use super::{EmitError, PROMETHEUS, render};
use crate::schedule::format_duration;
use crate::topology::{Job, Topology};

/// Where `bkc build --emit prometheus` writes the rules, in the output directory.
pub const RULES_FILE: &str = "bkc.rules.yml";

/// The label that carries the job's name once Prometheus scraped it: the textfile's `job`,
/// renamed because the scrape has a `job` label of its own (`honor_labels: false`).
const JOB_LABEL: &str = "exported_job";

/// A lock wait this share of its timeout is worth a warning before it becomes a failure.
const NEAR: f64 = 0.8;

#[derive(Debug, Serialize)]
struct Group {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Serialize)]
struct Rule {
    alert: &'static str,
    expr: String,
    /// `for:`; empty for none.
    for_: String,
    labels: BTreeMap<&'static str, String>,
    annotations: BTreeMap<&'static str, String>,
}

/// A Prometheus duration: whole seconds, minutes, hours or days.
fn duration(secs: u64) -> String {
    for (unit, per) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= per && secs.is_multiple_of(per) {
            return format!("{}{unit}", secs / per);
        }
    }
    format!("{secs}s")
}

/// A label value inside a PromQL string in double quotes.
fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The regular expression (RE2, anchored by Prometheus) of a name, taken literally.
fn literal(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\\\{c}")
            }
        })
        .collect()
}

fn rule(alert: &'static str, job: &Job, severity: &str, expr: String, for_: String) -> Rule {
    let mut labels = BTreeMap::new();
    labels.insert("severity", severity.to_string());
    labels.insert("bkc_job", job.name.clone());
    labels.insert("bkc_host", job.host.clone());
    Rule {
        alert,
        expr,
        for_,
        labels,
        annotations: BTreeMap::new(),
    }
}

fn annotate(mut r: Rule, summary: String, description: &str) -> Rule {
    r.annotations.insert("summary", summary);
    r.annotations.insert("description", description.to_string());
    r
}

fn job_rules(job: &Job) -> Vec<Rule> {
    let sel = format!("{{{JOB_LABEL}=\"{}\"}}", quoted(&job.name));
    let name = &job.name;
    let mut rules = Vec::new();
    if let Some(f) = &job.freshness {
        let limit = f.alert_after_secs;
        rules.push(annotate(
            rule(
                "BkcJobStale",
                job,
                "critical",
                format!("time() - max({}{sel}) > {limit}", LAST_SUCCESS.name),
                "5m".into(),
            ),
            format!("bkc job {name} on {} is stale", job.host),
            &format!(
                "The last success of {name} was {{{{ $value | humanizeDuration }}}} ago; it alerts after {} (alert-after).",
                format_duration(limit)
            ),
        ));
        rules.push(annotate(
            rule(
                "BkcJobNeverSucceeded",
                job,
                "critical",
                format!("absent({}{sel})", LAST_SUCCESS.name),
                duration(limit),
            ),
            format!("bkc job {name} on {} has no success on record", job.host),
            &format!(
                "No {} for {name} for {}: it never succeeded, or its host writes no metrics (metrics-dir).",
                LAST_SUCCESS.name,
                format_duration(limit)
            ),
        ));
    }
    rules.push(annotate(
        rule(
            "BkcJobFailed",
            job,
            "warning",
            format!("max({}{sel}) != 0", LAST_EXIT_CODE.name),
            String::new(),
        ),
        format!("the last run of bkc job {name} on {} failed", job.host),
        &format!("It exited with {{{{ $value }}}} (docs/RUNNER.md lists the codes); `journalctl -u bkc-{name} EVENT=error` says why."),
    ));
    if job.spec.verify.is_some() {
        rules.push(annotate(
            rule(
                "BkcVerifyFailed",
                job,
                "critical",
                format!("max({}{sel}) != 0", VERIFY_EXIT_CODE.name),
                String::new(),
            ),
            format!("the last verify of bkc job {name} on {} failed", job.host),
            &format!(
                "It exited with {{{{ $value }}}}: 1 when files are corrupted or missing (bkc_verify_problems counts them), 2 when it could not compare; `bkc verify {name}` lists them."
            ),
        ));
    }
    let timeout = job
        .spec
        .locks
        .iter()
        .map(|l| l.timeout_secs)
        .chain(job.spec.wait_files.iter().map(|w| w.timeout_secs))
        .max();
    if let Some(t) = timeout {
        let near = (t as f64 * NEAR).round();
        rules.push(annotate(
            rule(
                "BkcLockWaitNearTimeout",
                job,
                "warning",
                format!("max({}{sel}) > {near}", LOCK_WAIT.name),
                String::new(),
            ),
            format!("bkc job {name} on {} waited long for its locks", job.host),
            &format!(
                "The last run waited {{{{ $value | humanizeDuration }}}} for locks; it gives up after {}.",
                format_duration(t)
            ),
        ));
    }
    rules
}

/// Per host: the newest of its jobs' textfiles is older than its longest `alert-after`, so
/// the host has finished no run for longer than any of its jobs may go without one.
fn host_rule(host: &str, jobs: &[&Job]) -> Option<Rule> {
    let limit = jobs
        .iter()
        .filter_map(|j| j.freshness.as_ref().map(|f| f.alert_after_secs))
        .max()?;
    let files: Vec<String> = jobs.iter().map(|j| literal(&j.name)).collect();
    let expr = format!(
        "time() - max(node_textfile_mtime_seconds{{file=~\"(.*/)?bkc_({})\\\\.prom\"}}) > {limit}",
        files.join("|")
    );
    let mut labels = BTreeMap::new();
    labels.insert("severity", "critical".to_string());
    labels.insert("bkc_host", host.to_string());
    Some(annotate(
        Rule {
            alert: "BkcHostTextfilesStale",
            expr,
            for_: "15m".into(),
            labels,
            annotations: BTreeMap::new(),
        },
        format!("no bkc job on {host} has reported for too long"),
        &format!(
            "The newest bkc textfile of {host} is {{{{ $value | humanizeDuration }}}} old, more than {}: the host may be off, or its runs stopped.",
            format_duration(limit)
        ),
    ))
}

/// The rules file of the whole topology (whatever hosts a build selects: the rules run on the
/// Prometheus server, not on a host).
pub(crate) fn rules(topology: &Topology) -> Result<String, EmitError> {
    let env = super::environment();
    let mut groups = Vec::new();
    let mut by_host: BTreeMap<&str, Vec<&Job>> = BTreeMap::new();
    for j in topology.jobs.values() {
        by_host.entry(&j.host).or_default().push(j);
    }
    for (host, jobs) in &by_host {
        let mut rules: Vec<Rule> = jobs.iter().flat_map(|j| job_rules(j)).collect();
        rules.extend(host_rule(host, jobs));
        groups.push(Group {
            name: format!("bkc-{host}"),
            rules,
        });
    }
    render(
        &env,
        PROMETHEUS,
        || "the Prometheus rules".to_string(),
        minijinja::context! { groups },
    )
}

/// A YAML scalar that reads back as exactly `s`: a JSON string is a YAML double-quoted one.
pub(super) fn yaml(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_quoting() {
        assert_eq!(duration(177_300), "2955m");
        assert_eq!(duration(86_400), "1d");
        assert_eq!(duration(90), "90s");
        assert_eq!(quoted("a\"b"), "a\\\"b");
        assert_eq!(literal("a.b-c"), "a\\\\.b-c");
        assert_eq!(yaml("{{ $value }}\n"), "\"{{ $value }}\\n\"");
    }
}
