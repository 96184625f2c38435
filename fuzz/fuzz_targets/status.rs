//! Any bytes as a host's answer to `bkc status` (status lines and framed state files), and as a
//! state file and a lock file's holder line on their own: never a panic, nothing that reaches
//! the terminal keeps a control character (tabs are shown as they are, see src/printable.rs),
//! and a host cannot add a line of its own to the table.
#![no_main]

use std::sync::OnceLock;

use bkc::topology::Topology;
use libfuzzer_sys::fuzz_target;

fn topology() -> &'static Topology {
    static T: OnceLock<Topology> = OnceLock::new();
    T.get_or_init(|| {
        let text = include_str!("../../examples/seed-chain.kdl");
        bkc::analyze::compile("seed-chain.kdl", text)
            .topology
            .expect("the example compiles")
    })
}

fuzz_target!(|data: &[u8]| {
    let jobs: Vec<_> = topology().jobs.values().collect();
    if let Ok(rows) = bkc::deploy::status::read_status(&jobs, data) {
        let table = bkc::deploy::status::table(&rows);
        assert!(
            !table
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "a control character reaches the terminal: {table:?}"
        );
        assert_eq!(table.lines().count(), rows.len() + 1, "{table:?}");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(state) = serde_json::from_str::<bkc_contract::state::RunState>(text) {
            // Times read as the epoch: every line that needs one is written.
            let _ = bkc_contract::metrics::textfile(&state, |_| Some(0));
            let again: bkc_contract::state::RunState =
                serde_json::from_str(&state.to_json()).expect("a state file written reads again");
            assert_eq!(again.to_json(), state.to_json());
        }
        if let Some(h) = bkc_contract::lockfile::Holder::read(text) {
            assert_eq!(bkc_contract::lockfile::Holder::read(&h.to_line()), Some(h));
        }
    }
});
