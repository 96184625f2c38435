//! Any bytes as a topology file: `bkc check` and `bkc build` never panic, and every diagnostic
//! renders. A file that compiles is emitted as units and as the NixOS module.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // bkc reads only UTF-8 (src/cli/load.rs refuses the rest before compiling).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let c = bkc::analyze::compile("fuzz.kdl", text);
    let _ = bkc::diag::render(&c.diagnostics, false, 80);
    if let Some(t) = &c.topology {
        assert_eq!(c.errors(), 0, "a topology exists only without errors");
        bkc::emit::emit(t, &[]).expect("a checked topology emits");
        bkc::emit::emit_nixos(t, &[]).expect("a checked topology emits as a NixOS module");
    }
});
