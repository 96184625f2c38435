//! The dead man's switch on the receiving side. A source host that is off, dead or unable to
//! run never reports anything, so the host its data goes to watches for it: at the end of each
//! successful run, bkc-run leaves a [`Marker`] in every destination on another host, and
//! `bkc-fresh-<job>.timer` on that host runs `bkc-run --fresh` on a [`FreshSpec`], which raises
//! the job's `stale` notifications when the newest marker is older than the job's `alert-after`.

use serde::{Deserialize, Serialize};

use crate::spec::Notify;

/// Bumped on any change a reader of the previous version would misread.
pub const FRESH_VERSION: u32 = 1;

/// `/etc/bkc/fresh/<job>.json` on a destination host: what its freshness check looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FreshSpec {
    pub version: u32,
    /// The job whose data arrives here.
    pub job: String,
    /// The host the job runs on, where the data comes from.
    pub source: String,
    /// This host.
    pub host: String,
    /// The markers the job leaves here, one per destination on this host.
    pub markers: Vec<String>,
    /// The job is stale when the oldest marker is older than this.
    pub alert_after_secs: u64,
    /// Where the check remembers what it saw (`<state-dir>/fresh/<job>.json`).
    pub state_dir: String,
    /// The job's notifications for `stale` and `recovery`, run on this host.
    pub notify: Vec<Notify>,
}

/// The marker a successful run leaves in a destination: one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Marker {
    pub job: String,
    /// The run's id, as in its event lines.
    pub run: String,
    /// When the run ended (RFC 3339).
    pub end: String,
}

/// What a freshness check remembers between its runs, in `<state-dir>/fresh/<job>.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct FreshState {
    /// The first check on this host: before any marker arrived, age counts from here, so a job
    /// deployed a minute ago is not stale.
    pub first_check: Option<String>,
    /// The newest arrival seen so far (a marker's `end`).
    pub last_arrival: Option<String>,
    /// The last check found the job stale (and notified).
    pub stale: bool,
}

impl FreshSpec {
    pub fn from_json(text: &str) -> Result<FreshSpec, String> {
        let spec: FreshSpec =
            serde_json::from_str(text).map_err(|e| format!("freshness spec is not valid: {e}"))?;
        if spec.version != FRESH_VERSION {
            return Err(format!(
                "freshness spec version {} is not understood by this bkc-run (it reads version {FRESH_VERSION})",
                spec.version
            ));
        }
        Ok(spec)
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a FreshSpec always serialises");
        s.push('\n');
        s
    }
}

/// Where a freshness check keeps its [`FreshState`]. A directory of its own, so it never meets
/// a job's state file (`<state-dir>/<job>.json`), whatever the jobs are called.
pub fn fresh_state_file(state_dir: &str, job: &str) -> String {
    format!("{}/fresh/{job}.json", state_dir.trim_end_matches('/'))
}
