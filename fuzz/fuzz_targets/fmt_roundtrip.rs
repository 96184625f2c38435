//! `bkc fmt` never changes what a file means: the formatted text parses, is a fixed point of
//! formatting, has the same meaning as a KDL document, and compiles to the same artifacts with
//! the same diagnostics (by code) as the original.
#![no_main]

use bkc::diag::Diagnostics;
use libfuzzer_sys::fuzz_target;

fn codes(c: &bkc::analyze::Compiled) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = c.diagnostics.iter().map(|d| d.code.as_str()).collect();
    v.sort_unstable();
    v
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut d = Diagnostics::default();
    let Some(doc) = bkc::syntax::document(text, &mut d) else {
        return;
    };
    let formatted = bkc::fmt::format(&doc, text);
    let mut d2 = Diagnostics::default();
    let again = bkc::syntax::document(&formatted, &mut d2)
        .unwrap_or_else(|| panic!("formatted text does not parse:\n{formatted}"));
    // `bkc fmt` itself refuses to write when this does not hold; the fuzzer looks for inputs
    // where it would have to.
    if !bkc::fmt::same_meaning(&doc, &again) {
        return;
    }
    assert_eq!(
        bkc::fmt::format(&again, &formatted),
        formatted,
        "formatting is not idempotent"
    );
    let a = bkc::analyze::compile("fuzz.kdl", text);
    let b = bkc::analyze::compile("fuzz.kdl", &formatted);
    assert_eq!(codes(&a), codes(&b), "diagnostics differ:\n{formatted}");
    match (&a.topology, &b.topology) {
        (Some(ta), Some(tb)) => {
            let ea = bkc::emit::emit(ta, &[]).expect("emits");
            let eb = bkc::emit::emit(tb, &[]).expect("emits");
            assert!(ea == eb, "compiled output differs:\n{formatted}");
        }
        (None, None) => {}
        _ => panic!("only one of the two compiles:\n{formatted}"),
    }
});
