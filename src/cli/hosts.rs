//! `--host`: the hosts a command works on, by name or by `@tag`, the same for every command.

use std::fmt;
use std::str::FromStr;

use bkc::diag::did_you_mean;
use bkc::topology::Topology;

/// One `--host` word, parsed once: a host's name, or `@tag` for every host with that tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Name(String),
    Tag(String),
}

impl FromStr for Selector {
    type Err = String;

    fn from_str(s: &str) -> Result<Selector, String> {
        match s.strip_prefix('@') {
            Some("") => Err("write @TAG, such as @offsite".into()),
            Some(tag) => Ok(Selector::Tag(tag.into())),
            None if s.is_empty() => Err("write a host's name, or @TAG".into()),
            None => Ok(Selector::Name(s.into())),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Name(n) => f.write_str(n),
            Selector::Tag(t) => write!(f, "@{t}"),
        }
    }
}

/// Every host, or the hosts that the selectors match. A selector that matches no host is an
/// error, never a quietly smaller selection: `--host @ofsite` must not plan nothing and succeed.
#[derive(Debug, Clone)]
pub struct HostFilter {
    selectors: Vec<Selector>,
}

/// A host as a filter sees it: its name and its tags.
pub type Candidate<'a> = (&'a str, &'a [String]);

impl HostFilter {
    pub fn new(selectors: &[Selector]) -> HostFilter {
        HostFilter {
            selectors: selectors.to_vec(),
        }
    }

    /// The hosts of the topology in `file` that the filter selects.
    pub fn in_topology(&self, t: &Topology, file: &str) -> Result<Selected, Unmatched> {
        let hosts: Vec<Candidate> = t
            .hosts
            .values()
            .map(|h| (h.name.as_str(), h.tags.as_slice()))
            .collect();
        self.select(&hosts, file)
    }

    /// The names among `hosts` that the filter selects, sorted; `of` names where the hosts come
    /// from, for the error.
    pub fn select(&self, hosts: &[Candidate], of: &str) -> Result<Selected, Unmatched> {
        if self.selectors.is_empty() {
            return Ok(Selected::All);
        }
        let mut chosen = Vec::new();
        let mut unmatched = Vec::new();
        for s in &self.selectors {
            let before = chosen.len();
            chosen.extend(
                hosts
                    .iter()
                    .filter(|(name, tags)| match s {
                        Selector::Name(n) => name == n,
                        Selector::Tag(t) => tags.contains(t),
                    })
                    .map(|(name, _)| name.to_string()),
            );
            if chosen.len() == before {
                unmatched.push(no_match(s, hosts, of));
            }
        }
        if !unmatched.is_empty() {
            return Err(Unmatched(unmatched));
        }
        chosen.sort();
        chosen.dedup();
        Ok(Selected::Only(chosen))
    }
}

/// What a filter selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selected {
    All,
    Only(Vec<String>),
}

impl Selected {
    /// The names as `emit` and `graph` take them: none for every host.
    pub fn only(&self) -> &[String] {
        match self {
            Selected::All => &[],
            Selected::Only(names) => names,
        }
    }

    pub fn contains(&self, host: &str) -> bool {
        match self {
            Selected::All => true,
            Selected::Only(names) => names.binary_search_by(|n| n.as_str().cmp(host)).is_ok(),
        }
    }
}

/// Selectors that match no host: one message each, with what was probably meant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\nerror: "))]
pub struct Unmatched(Vec<String>);

fn no_match(s: &Selector, hosts: &[Candidate], of: &str) -> String {
    let (what, known): (&str, Vec<String>) = match s {
        Selector::Name(_) => ("hosts", hosts.iter().map(|(n, _)| n.to_string()).collect()),
        Selector::Tag(_) => {
            let mut tags: Vec<String> = hosts
                .iter()
                .flat_map(|(_, tags)| tags.iter().map(|t| format!("@{t}")))
                .collect();
            tags.sort();
            tags.dedup();
            ("tags", tags)
        }
    };
    let typed = s.to_string();
    let hint = did_you_mean(&typed, known.iter().map(String::as_str))
        .map_or(String::new(), |k| format!("; did you mean `{k}`?"));
    let list = if known.is_empty() {
        format!("it has no {what}")
    } else {
        format!("its {what}: {}", known.join(", "))
    };
    let missing = match s {
        Selector::Name(_) => format!("no host `{typed}`"),
        Selector::Tag(_) => format!("no host with the tag `{typed}`"),
    };
    format!("{missing} in {of}{hint} ({list})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(words: &[&str]) -> HostFilter {
        let s: Vec<Selector> = words.iter().map(|w| w.parse().unwrap()).collect();
        HostFilter::new(&s)
    }

    const NO_TAGS: &[String] = &[];

    fn hosts(tags: &[String]) -> Vec<Candidate<'_>> {
        vec![("backup_a", tags), ("backup_b", NO_TAGS), ("desktop", tags)]
    }

    #[test]
    fn names_and_tags_select_sorted_once() {
        let lan = ["lan".to_string()];
        let h = hosts(&lan);
        assert_eq!(filter(&[]).select(&h, "f"), Ok(Selected::All));
        assert_eq!(
            filter(&["desktop", "@lan", "backup_b"]).select(&h, "f"),
            Ok(Selected::Only(vec![
                "backup_a".into(),
                "backup_b".into(),
                "desktop".into()
            ]))
        );
    }

    #[test]
    fn every_unmatched_selector_is_an_error_with_a_hint() {
        let lan = ["lan".to_string()];
        let h = hosts(&lan);
        let e = filter(&["desktp", "desktop", "@lna"])
            .select(&h, "site.kdl")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no host `desktp` in site.kdl; did you mean `desktop`? \
             (its hosts: backup_a, backup_b, desktop)\n\
             error: no host with the tag `@lna` in site.kdl; did you mean `@lan`? (its tags: @lan)"
        );
        let e = filter(&["@lan"])
            .select(&hosts(NO_TAGS), "p.json")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no host with the tag `@lan` in p.json (it has no tags)"
        );
    }

    #[test]
    fn words_parse_once() {
        assert_eq!("@x".parse(), Ok(Selector::Tag("x".into())));
        assert_eq!("x".parse(), Ok(Selector::Name("x".into())));
        assert!("@".parse::<Selector>().is_err());
        assert!("".parse::<Selector>().is_err());
    }
}
