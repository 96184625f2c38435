//! Any bytes as a job spec, read as bkc-run reads it: refused with a message or accepted, never a
//! panic; an accepted spec writes back to JSON that reads as the same spec.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = bkc_runner::read_spec(text) else {
        return;
    };
    let json = spec.to_json();
    let back = bkc_runner::read_spec(&json).expect("a spec the runner wrote back reads again");
    assert_eq!(back.to_json(), json);
});
