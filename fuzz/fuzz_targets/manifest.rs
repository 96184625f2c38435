//! Any bytes as a deployed manifest (/etc/bkc/manifest.json, as plan fetches it from a host):
//! refused or read, and a read manifest writes back to JSON that reads as the same manifest.
#![no_main]

use bkc_contract::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = serde_json::from_slice::<Manifest>(data) else {
        return;
    };
    let json = m.to_json();
    let back: Manifest = serde_json::from_str(&json).expect("a manifest written reads again");
    assert_eq!(back.to_json(), json);
    // And as part of an observation, where the host-side checks apply.
    let mut answer = format!("F {} /etc/bkc/manifest.json\n", data.len()).into_bytes();
    answer.extend_from_slice(data);
    answer.extend_from_slice(b"\nend\n");
    let _ = bkc::deploy::plan::parse_observed(&m.host, &answer);
});
