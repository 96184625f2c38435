//! Any bytes as an rsync-director config: `bkc import` refuses with diagnostics or writes a
//! topology, never panics, and what it writes compiles without errors.
#![no_main]

use bkc::import::{Config, rsyncdirector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = Config {
        host: "desktop".into(),
        file: "desktop.yaml".into(),
        text: text.to_string(),
    };
    let imported = rsyncdirector(&[config], &[]);
    let _ = bkc::diag::render(&imported.diagnostics, false, 80);
    if let Some(kdl) = imported.kdl {
        let c = bkc::analyze::compile("imported.kdl", &kdl);
        assert_eq!(
            c.errors(),
            0,
            "the import wrote a topology that does not compile:\n{kdl}\n{}",
            bkc::diag::render(&c.diagnostics, false, 80)
        );
    }
});
