//! Every contract of bkc-contract has its JSON Schema (the metrics: their table) committed under
//! docs/schemas/, where users find them. This test regenerates each one and fails when a file
//! differs, so any change of a contract shows in review as a change of its schema. After a
//! deliberate change: `BKC_UPDATE_SCHEMAS=1 cargo test --test contracts`, then review the diff
//! (and bump the contract's version if an older reader would misread the new form).

use std::path::Path;

use bkc_contract::{
    event, fresh, lockfile, manifest, metrics, plan, serve, snapshots, spec, state, verify,
};
use schemars::schema_for;

/// File name under docs/schemas/ and its text.
fn contracts() -> Vec<(&'static str, String)> {
    let json = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap() + "\n";
    let schema = |s: schemars::Schema| json(s.to_value());
    vec![
        ("job-spec.json", schema(schema_for!(spec::JobSpec))),
        ("run-state.json", schema(schema_for!(state::RunState))),
        ("event-line.json", schema(schema_for!(event::EventLine))),
        ("lock-holder.json", schema(schema_for!(lockfile::Holder))),
        ("fresh-spec.json", schema(schema_for!(fresh::FreshSpec))),
        ("fresh-marker.json", schema(schema_for!(fresh::Marker))),
        ("fresh-state.json", schema(schema_for!(fresh::FreshState))),
        ("manifest.json", schema(schema_for!(manifest::Manifest))),
        ("plan.json", schema(schema_for!(plan::PlanFile))),
        ("serve-file.json", schema(schema_for!(serve::ServeFile))),
        ("serve-request.json", schema(schema_for!(serve::Request))),
        ("serve-reply.json", schema(schema_for!(serve::Reply))),
        (
            "snapshots.json",
            schema(schema_for!(snapshots::SnapshotReport)),
        ),
        (
            "snapshot-line.json",
            schema(schema_for!(snapshots::JobSnapshots)),
        ),
        (
            "verify-report.json",
            schema(schema_for!(verify::VerifyReport)),
        ),
        (
            "metrics.json",
            json(serde_json::to_value(metrics::METRICS).unwrap()),
        ),
    ]
}

#[test]
fn committed_schemas_match_the_contract_types() {
    let dir = Path::new("docs/schemas");
    let update = std::env::var_os("BKC_UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (name, text) in contracts() {
        let path = dir.join(name);
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "{} differ from the contract types; regenerate with `BKC_UPDATE_SCHEMAS=1 cargo test --test contracts` and review the diff",
        stale.join(", ")
    );
    let mut committed: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    committed.sort();
    let mut known: Vec<String> = contracts().iter().map(|c| c.0.to_string()).collect();
    known.sort();
    assert_eq!(
        committed, known,
        "docs/schemas/ holds a file no contract writes"
    );
}

/// The examples' emitted job specs and manifests read back through the contract types, so the
/// schemas describe what bkc really writes.
#[test]
fn emitted_files_read_as_their_contracts() {
    let (mut specs, mut serves) = (0, 0);
    for entry in std::fs::read_dir("examples").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "kdl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let c = bkc::analyze::compile(&path.display().to_string(), &text);
        let Some(t) = c.topology.as_ref() else {
            continue;
        };
        let hosts: Vec<String> = t.hosts.keys().cloned().collect();
        let artifacts = bkc::emit::emit(t, &hosts).unwrap();
        for (host, files) in &artifacts.hosts {
            for (p, f) in &files.files {
                let text = std::str::from_utf8(&f.bytes).unwrap();
                if p.starts_with("/etc/bkc/jobs/") {
                    spec::JobSpec::from_json(text).unwrap();
                    specs += 1;
                } else if p.starts_with(serve::SERVE_DIR) {
                    let f = serve::ServeFile::from_json(text).unwrap();
                    assert_eq!(&f.host, host);
                    assert_eq!(p, &serve::serve_path(&f.job));
                    serves += 1;
                } else if p == manifest::MANIFEST_PATH {
                    let m: manifest::Manifest = serde_json::from_str(text).unwrap();
                    assert_eq!(&m.host, host);
                }
            }
        }
    }
    assert!(specs >= 5, "only {specs} job specs read");
    assert!(serves >= 3, "only {serves} serve files read");
}
