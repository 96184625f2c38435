//! The saved plan, `bkc plan -o plan.json`: what `bkc apply plan.json` carries out exactly as it
//! was shown, on hosts that have not changed since.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Mode;

/// Bumped on any change a bkc of the previous version would misread.
pub const PLAN_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    pub version: u32,
    /// The sha256 of the local bkc-run the plan installs, if it installs one anywhere.
    pub runner_sha256: Option<String>,
    pub hosts: BTreeMap<String, PlannedHost>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PlannedHost {
    pub target: Target,
    /// The host's tags when planned, for `bkc apply plan.json --host @tag`. Left out when
    /// there are none, so a plan of untagged hosts reads as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// A hash of the host's state when planned; apply refuses a host whose state differs.
    pub fingerprint: String,
    /// The host's manifest when planned (none: it had none).
    pub manifest_sha256: Option<String>,
    pub plan: HostPlan,
    pub runner_paths: Vec<String>,
    /// Every file of the new generation: path -> (mode, UTF-8 content).
    pub files: BTreeMap<String, (Mode, String)>,
}

/// How to reach one host over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Target {
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Pinned host keys (`TYPE BASE64`); none means ssh's own known_hosts decide.
    pub host_keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Add,
    Change,
    Remove,
}

/// What a plan item is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ItemKind {
    /// A job: its units and its spec together.
    Job,
    /// A file that belongs to no job (known_hosts, the manifest).
    File,
    /// bkc-run at one of the paths the units run it from.
    Runner,
    /// A job's own SSH key on its host (`/etc/bkc/keys/<job>`): made by apply when it is
    /// missing and not pinned; drift when it differs from the pinned one.
    Key,
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemKind::Job => "job",
            ItemKind::File => "file",
            ItemKind::Runner => "runner",
            ItemKind::Key => "key",
        })
    }
}

/// One thing a plan changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Item {
    pub action: Action,
    pub kind: ItemKind,
    pub name: String,
    /// The files it touches, each with its own action.
    pub files: Vec<(Action, String)>,
    /// What changed on the host behind bkc's back, which this plan puts right.
    pub drift: Vec<String>,
}

/// The difference between a host and the topology, and the work that closes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HostPlan {
    pub items: Vec<Item>,
    /// Files present that the new generation does not have.
    pub remove: Vec<String>,
    /// Files present whose content or mode differs.
    pub changed: Vec<String>,
    /// Runner paths that get the local `bkc-run`.
    pub runner_install: Vec<String>,
    /// Why this host cannot be applied, if it cannot.
    pub blocked: Option<String>,
    /// Things to know that are not changes (an interrupted activation to be rolled back).
    pub notes: Vec<String>,
}

impl HostPlan {
    /// How many items add, change and remove.
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |a| self.items.iter().filter(|i| i.action == a).count();
        (n(Action::Add), n(Action::Change), n(Action::Remove))
    }

    pub fn has_changes(&self) -> bool {
        !self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_kinds_are_written_as_they_are_shown() {
        for k in [
            ItemKind::Job,
            ItemKind::File,
            ItemKind::Runner,
            ItemKind::Key,
        ] {
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
    }
}
