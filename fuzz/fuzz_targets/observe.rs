//! Any bytes as a host's answer to `bkc plan`'s observation: refused or read, never a panic; what
//! is read holds only paths bkc owns.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(o) = bkc::deploy::plan::parse_observed("h", data) else {
        return;
    };
    for p in o.files.keys() {
        assert!(
            bkc::deploy::plan::owned(p),
            "observed a file bkc does not own: {p:?}"
        );
    }
    for p in o.manifest.iter().flat_map(|m| m.files.keys()) {
        assert!(
            bkc::deploy::plan::owned(p),
            "a manifest entry bkc does not own: {p:?}"
        );
    }
    let _ = o.fingerprint();
});
