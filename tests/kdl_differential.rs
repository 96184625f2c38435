//! The fast KDL parser against the kdl crate: whenever the fast path accepts a text, kdl must
//! accept it too and build the same document, as far as lowering can see (names, values, types,
//! every span, order and nesting).
//!
//! Inputs: the examples, the kdl crate's own test corpus (from its sources in the cargo registry;
//! ignored by a plain `cargo test`), hand-picked corner cases, generated topology-like documents and random mutations of
//! them. `cargo bench --bench parse` times both parsers on a topology of 10,000 jobs.

#[path = "../benches/common/mod.rs"]
mod bench_common;
use crate::common;

use std::fmt::Write as _;
use std::path::PathBuf;

use bkc::syntax::parse_fast;
use common::Rng;
use kdl::{KdlDocument, KdlEntry, KdlIdentifier, KdlNode, KdlValue};
use miette::SourceSpan;

// ---------------------------------------------------------------------------------------------
// Comparison

fn sp(s: SourceSpan) -> (usize, usize) {
    (s.offset(), s.offset() + s.len())
}

fn same_value(a: &KdlValue, b: &KdlValue) -> bool {
    match (a, b) {
        // Bit for bit, so that NaN equals NaN and 0.0 differs from -0.0.
        (KdlValue::Float(x), KdlValue::Float(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn ident(what: &str, a: Option<&KdlIdentifier>, b: Option<&KdlIdentifier>) -> Result<(), String> {
    match (a, b) {
        (None, None) => Ok(()),
        (Some(a), Some(b)) if a.value() == b.value() && a.span() == b.span() => Ok(()),
        _ => Err(format!(
            "{what}: fast {:?} vs kdl {:?}",
            a.map(|i| (i.value(), sp(i.span()))),
            b.map(|i| (i.value(), sp(i.span())))
        )),
    }
}

fn entry(a: &KdlEntry, b: &KdlEntry) -> Result<(), String> {
    ident("entry name", a.name(), b.name())?;
    ident("entry type", a.ty(), b.ty())?;
    if !same_value(a.value(), b.value()) {
        return Err(format!(
            "value: fast {:?} vs kdl {:?}",
            a.value(),
            b.value()
        ));
    }
    if a.span() != b.span() {
        return Err(format!(
            "entry span of {:?}: fast {:?} vs kdl {:?}",
            a.value(),
            sp(a.span()),
            sp(b.span())
        ));
    }
    Ok(())
}

fn node(a: &KdlNode, b: &KdlNode) -> Result<(), String> {
    let at = |e: String| format!("node {:?} at {:?}: {e}", b.name().value(), sp(b.span()));
    ident("node name", Some(a.name()), Some(b.name())).map_err(at)?;
    ident("node type", a.ty(), b.ty()).map_err(at)?;
    if a.span() != b.span() {
        return Err(at(format!(
            "node span: fast {:?} vs kdl {:?}",
            sp(a.span()),
            sp(b.span())
        )));
    }
    if a.entries().len() != b.entries().len() {
        return Err(at(format!(
            "entries: fast {} vs kdl {}",
            a.entries().len(),
            b.entries().len()
        )));
    }
    for (x, y) in a.entries().iter().zip(b.entries()) {
        entry(x, y).map_err(at)?;
    }
    match (a.children(), b.children()) {
        (None, None) => Ok(()),
        (Some(x), Some(y)) => document(x, y),
        (x, y) => Err(at(format!(
            "children: fast {} vs kdl {}",
            x.is_some(),
            y.is_some()
        ))),
    }
}

fn document(a: &KdlDocument, b: &KdlDocument) -> Result<(), String> {
    if a.span() != b.span() {
        return Err(format!(
            "document span: fast {:?} vs kdl {:?}",
            sp(a.span()),
            sp(b.span())
        ));
    }
    if a.nodes().len() != b.nodes().len() {
        return Err(format!(
            "nodes: fast {} vs kdl {}",
            a.nodes().len(),
            b.nodes().len()
        ));
    }
    for (x, y) in a.nodes().iter().zip(b.nodes()) {
        node(x, y)?;
    }
    Ok(())
}

#[derive(Default, Debug)]
struct Tally {
    cases: usize,
    /// kdl accepted the text.
    valid: usize,
    /// The fast path accepted it (and kdl agreed).
    fast: usize,
}

/// Parse `text` both ways. `check_kdl_always` also runs kdl when the fast path declines, to count
/// how many valid texts fall back (kdl can be very slow on some mutated texts, so mutations
/// only consult it when the fast path accepts).
fn check(text: &str, label: &str, tally: &mut Tally, check_kdl_always: bool) {
    tally.cases += 1;
    let fast = parse_fast(text);
    if fast.is_none() && !check_kdl_always {
        return;
    }
    let slow = text.parse::<KdlDocument>();
    if slow.is_ok() {
        tally.valid += 1;
    }
    let Some(fast) = fast else { return };
    let slow = match slow {
        Ok(doc) => doc,
        Err(e) => panic!(
            "{label}: the fast path accepted what kdl rejects ({:?})\n--- text ---\n{text}\n---",
            e.diagnostics
                .iter()
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
        ),
    };
    if let Err(e) = document(&fast, &slow) {
        panic!("{label}: {e}\n--- text ---\n{text}\n--- escaped ---\n{text:?}");
    }
    tally.fast += 1;
}

// ---------------------------------------------------------------------------------------------
// Fixed inputs

/// The version of kdl that Cargo.lock builds.
fn kdl_version() -> String {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    let versions: Vec<&str> = lock
        .split("[[package]]")
        .filter(|p| p.lines().any(|l| l == "name = \"kdl\""))
        .filter_map(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .map(|v| v.trim_matches('"'))
        .collect();
    match versions[..] {
        [v] => v.to_string(),
        _ => panic!("Cargo.lock should hold one kdl, not {versions:?}"),
    }
}

/// kdl's own test inputs, from its sources in the cargo registry (every registry cargo has
/// unpacked, for the version this build uses); or where they were looked for.
fn kdl_corpus() -> Result<PathBuf, String> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let src = home.join("registry/src");
    let wanted = format!("kdl-{}/tests/test_cases/input", kdl_version());
    std::fs::read_dir(&src)
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join(&wanted))
        .find(|p| p.is_dir())
        .ok_or_else(|| format!("{}/*/{wanted} is not there", src.display()))
}

fn kdl_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .filter(|p| p.extension().is_some_and(|e| e == "kdl"))
        .collect();
    files.sort();
    files
}

/// The examples and the test topologies: plain KDL as users write it.
fn own_files() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = kdl_files(&root.join("examples"));
    files.extend(kdl_files(&root.join("tests/data")));
    files
}

#[test]
fn examples_agree() {
    let mut tally = Tally::default();
    for file in own_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        check(&text, &file.display().to_string(), &mut tally, true);
        // Every example is plain KDL: the fast path must take all of them.
        assert!(parse_fast(&text).is_some(), "{} fell back", file.display());
    }
    assert!(tally.cases >= 4, "{tally:?}");
}

#[test]
#[ignore = "needs the kdl crate's sources in the cargo registry"]
fn kdl_test_corpus_agrees() {
    let dir = match kdl_corpus() {
        Ok(dir) => dir,
        Err(why) => {
            common::skip(&format!("kdl's test corpus: {why}"));
            return;
        }
    };
    let mut tally = Tally::default();
    for file in kdl_files(&dir) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue; // a few inputs are deliberately not UTF-8
        };
        check(&text, &file.display().to_string(), &mut tally, true);
    }
    eprintln!(
        "kdl corpus: {} files, {} valid for kdl, {} taken by the fast path",
        tally.cases, tally.valid, tally.fast
    );
    assert!(tally.cases > 100, "{tally:?}");
    assert!(tally.fast * 4 >= tally.valid * 3, "{tally:?}");
}

/// Corners of kdl's behaviour, each of which once surprised someone.
const CORNERS: &[&str] = &[
    "",
    "foo",
    "\u{FEFF}foo 1",
    "  foo 1 2 ; bar",
    "// c\n/* x */ foo a=1 b = 2 (t)3 c=(u)\"x\" {\n  bar\n}   // trailing\nbaz",
    "foo { }",
    "foo {}",
    "foo {\n}",
    "foo { a; b }",
    "foo { a; b; }",
    "foo { /- a; b }",
    "foo { /- a\n b }",
    "foo { a; /- b }",
    "foo { a; /- b; }",
    "foo /- { a } { b } /- {c}",
    "foo {a}/-{b}",
    "foo /-{a}{b}",
    "foo /- {a} 1",
    "foo /- {a} /- 1",
    "foo 1 /- {a} /- 2",
    "foo /- 1 2 /- x=3",
    "foo /- /- 1 2 3",
    "foo /-\n 1 2",
    "foo /- // c\n 1 2",
    "foo 1 /- 2{}",
    "foo 1{}",
    "foo{}",
    "foo \\\n  1",
    "foo 1 \\ // hi\n  2",
    "foo 1 \\",
    "foo 1 \\ x",
    "/- foo 1\nbar",
    "/- foo 1;bar",
    "/-\nfoo\nbar",
    "foo 1=2",
    "foo \"a\"=1 #\"b\"#=2",
    "foo a =1 b= 2 c  =  3",
    "foo 1.5 1e3 1E-3 1.5e+7 -0x1F 0o7 0b1_0 1_000 1_ +5 #inf #-inf #nan #true #null",
    "foo 0x 0b2",
    "foo 1.",
    "foo .5",
    "foo -.5",
    "foo +.a -.a . .. -- - +",
    "foo true",
    "foo -inf",
    "foo #truex",
    "foo #true=1",
    "foo 170141183460469231731687303715884105727",
    "foo 170141183460469231731687303715884105728",
    "foo -170141183460469231731687303715884105728",
    "foo 0.0000000000000000000000000000000000000000000000001",
    "foo 1e400 -0.0 0.0",
    "(ty)foo",
    "( ty )foo",
    "foo ( ty ) 1",
    "foo (t)a=1",
    "foo a=(t)1 (\"q\")#\"r\"#",
    "foo(t)1",
    "foo\t1;",
    "foo {\n  bar { baz }\n}",
    "foo \"a\\nb\\t\\\\\\\"\\u{1F600}\\s\\b\\f\\r\"",
    "foo \"a\\   \n   b\"",
    "foo \"\\u{D800}\" ",
    "foo \"\\u{1234567}\"",
    "foo \"a\nb\"",
    "foo #\"\"\"#",
    "foo #\"\"\"x\"#",
    "foo #\"\"#",
    "foo ##\"a\"#b\"##",
    "foo \"\"\"\n  a\n    b\n\n  c\n  \"\"\"",
    "foo \"\"\"\n  a\n b\n  \"\"\"",
    "foo \"\"\"\n\"\"\"",
    "foo \"\"\"\r\n  a\r\n  \"\"\"",
    "foo \"\"\"\n  a\"\"\"",
    "foo #\"\"\"\n  a \"\"\" b\n  \"\"\"#",
    "foo \"\"\"\n  a\\n\n  \"\"\"",
    "\"quoted name\" 1",
    "#\"raw name\"# 1",
    "foo; bar;; baz",
    "foo /* a /* nested */ comment */ 1",
    "foo /* unterminated",
    "foo 1 // c\nbar",
    "foo\r\nbar\rbaz\u{85}qux\u{2028}quux",
    "foo\u{3000}1\u{A0}2",
    "foo 1)",
    "foo a=b=c",
    "}",
    "foo }",
    "foo {",
    "{ foo }",
    "foo \u{200E}",
    "n\u{0}",
    "foo [1]",
    "foo 1_0.5_5e1_0 1e+1_0 0x_1 0b_1 1__2",
    "foo /- {a}",
    "foo 1 /- {a}\nbar",
    "foo { a \\\n }",
    "foo\u{0B}bar\u{0C}baz",
    "foo #-inf #-infx",
    "foo \"\"\"\n\t a\n\t \"\"\"",
    "foo 0o17_7 0O7 0B1 0X1f",
];

#[test]
fn corners_agree() {
    let mut tally = Tally::default();
    for (k, text) in CORNERS.iter().enumerate() {
        check(text, &format!("corner {k}"), &mut tally, true);
    }
    eprintln!(
        "corners: {} cases, {} valid for kdl, {} taken by the fast path",
        tally.cases, tally.valid, tally.fast
    );
}

/// Long raw-string delimiters with many near-misses inside: the fast path stays linear (kdl
/// itself is not, so it is not consulted here).
#[test]
fn long_raw_delimiters() {
    let hashes = "#".repeat(20_000);
    let body = "\"#".repeat(20_000);
    let text = format!("foo {hashes}\"{body}\"{hashes}");
    let doc = parse_fast(&text).expect("a valid raw string");
    let value = doc.nodes()[0].entries()[0].value();
    assert_eq!(value.as_string(), Some(body.as_str()));
}

// ---------------------------------------------------------------------------------------------
// Generated inputs

const BARE: &[&str] = &[
    "job",
    "host",
    "sync",
    "opts",
    "exclude",
    "snapshot",
    "blocks-on",
    "keep-daily",
    "a",
    "x_y",
    "-flag",
    "--delete",
    "+plus",
    ".dot",
    "-.dash",
    "über",
    "日本",
    "a.b.c",
    "key~1",
    "x,y",
    "true1",
    "nul",
    "-",
    "+",
    ".",
];

/// Whitespace between the parts of a node (KDL's node-space).
fn gen_node_space(r: &mut Rng, s: &mut String) {
    match r.below(14) {
        0 => s.push('\t'),
        1 => s.push_str("  "),
        2 => s.push_str(" /* c */ "),
        3 => s.push_str(" \\\n    "),
        4 => s.push_str(" \\ // continued\n  "),
        5 => s.push('\u{3000}'),
        6 => s.push_str("/* a /* b */ */"),
        7 => s.push_str(" \\\r\n "),
        _ => s.push(' '),
    }
}

fn gen_maybe_node_space(r: &mut Rng, s: &mut String) {
    if r.one_in(3) {
        gen_node_space(r, s);
    }
}

fn gen_string_body(r: &mut Rng, s: &mut String) {
    for _ in 0..r.below(6) {
        match r.below(16) {
            0 => s.push_str("\\n"),
            1 => s.push_str("\\t"),
            2 => s.push_str("\\\\"),
            3 => s.push_str("\\\""),
            4 => s.push_str("\\u{1F600}"),
            5 => s.push_str("\\u{41}"),
            6 => s.push_str("\\   \n   "),
            7 => s.push_str("\\s"),
            8 => s.push('ü'),
            9 => s.push_str(" /* not a comment */ "),
            10 => s.push_str("{;}"),
            11 => s.push('#'),
            _ => s.push_str(r.pick(&["/srv/data/", "h1:/srv/backup/", "-a", "5m", "x y"])),
        }
    }
}

fn gen_multiline(r: &mut Rng, s: &mut String) {
    let indent = r.pick(&["", "  ", "    ", "\t"]);
    let raw = r.one_in(2);
    let hashes = if raw {
        "#".repeat(1 + r.below(2))
    } else {
        String::new()
    };
    s.push_str(&hashes);
    s.push_str("\"\"\"");
    s.push_str(if r.one_in(4) { "\r\n" } else { "\n" });
    for _ in 0..r.below(4) {
        match r.below(5) {
            0 => {}           // an empty line
            1 => s.push(' '), // whitespace only, shorter than the indent
            2 => write!(s, "{indent}  more indented \"q\"").unwrap(),
            3 if r.one_in(3) => write!(s, "{indent}with \\n escape").unwrap(),
            _ => write!(s, "{indent}line {}", r.below(100)).unwrap(),
        }
        s.push('\n');
    }
    s.push_str(indent);
    s.push_str("\"\"\"");
    s.push_str(&hashes);
}

fn gen_string(r: &mut Rng, s: &mut String) {
    match r.below(10) {
        0..=3 => {
            s.push('"');
            gen_string_body(r, s);
            s.push('"');
        }
        4 => {
            let hashes = "#".repeat(1 + r.below(3));
            write!(s, "{hashes}\"raw \"{} \\n {{}}\"{hashes}", &hashes[1..]).unwrap();
        }
        5 if r.one_in(4) => gen_multiline(r, s),
        _ => s.push_str(r.pick(BARE)),
    }
}

fn gen_number(r: &mut Rng, s: &mut String) {
    let sign = r.pick(&["", "", "-", "+"]);
    s.push_str(sign);
    match r.below(9) {
        0 => write!(s, "0x{:X}", r.next() >> r.below(64)).unwrap(),
        1 => write!(s, "0o{:o}", r.below(10_000)).unwrap(),
        2 => write!(s, "0b{:b}_1", r.below(64)).unwrap(),
        3 => write!(s, "{}.{}", r.below(1000), r.below(1000)).unwrap(),
        4 => write!(
            s,
            "{}e{}{}",
            r.below(100),
            r.pick(&["", "-", "+"]),
            r.below(30)
        )
        .unwrap(),
        5 => write!(s, "1_000_{:03}", r.below(1000)).unwrap(),
        6 => write!(s, "{}.5E3", r.below(9)).unwrap(),
        _ => write!(s, "{}", r.below(100_000)).unwrap(),
    }
}

fn gen_value(r: &mut Rng, s: &mut String) {
    if r.one_in(12) {
        write!(s, "({})", r.pick(&["u8", "date", "\"quoted type\""])).unwrap();
        gen_maybe_node_space(r, s);
    }
    match r.below(10) {
        0..=4 => gen_string(r, s),
        5..=7 => gen_number(r, s),
        _ => s.push_str(r.pick(&["#true", "#false", "#null", "#inf", "#-inf", "#nan"])),
    }
}

fn gen_entry(r: &mut Rng, s: &mut String) {
    if r.one_in(3) {
        match r.below(4) {
            0 => s.push_str("\"quoted key\""),
            1 => s.push_str("#\"raw key\"#"),
            _ => s.push_str(r.pick(BARE)),
        }
        if r.one_in(6) {
            s.push(' ');
        }
        s.push('=');
        if r.one_in(6) {
            s.push(' ');
        }
    }
    gen_value(r, s);
}

fn gen_terminator(r: &mut Rng, s: &mut String) {
    match r.below(10) {
        0 => s.push(';'),
        1 => s.push_str(" ; "),
        2 => s.push_str(" // trailing comment\n"),
        3 => s.push_str("\r\n"),
        4 => s.push_str("\n\n"),
        5 => s.push_str(";\n"),
        _ => s.push('\n'),
    }
}

fn gen_line_space(r: &mut Rng, s: &mut String, indent: &str) {
    for _ in 0..r.below(3) {
        match r.below(6) {
            0 => writeln!(s, "{indent}// a comment").unwrap(),
            1 => write!(s, "{indent}/* block\n comment */\n").unwrap(),
            2 => s.push('\n'),
            3 => writeln!(s, "{indent}/- skipped 1 {{ inner }}").unwrap(),
            4 => write!(s, "{indent}/-\n{indent}skipped-too\n").unwrap(),
            _ => s.push_str(indent),
        }
    }
}

fn gen_node(r: &mut Rng, s: &mut String, depth: usize) {
    let indent = "    ".repeat(depth);
    if r.one_in(15) {
        s.push_str("(type)");
        gen_maybe_node_space(r, s);
    }
    match r.below(8) {
        0 => s.push_str("\"quoted node\""),
        1 => s.push_str("#\"raw node\"#"),
        _ => s.push_str(r.pick(BARE)),
    }
    for _ in 0..r.below(5) {
        gen_node_space(r, s);
        if r.one_in(8) {
            s.push_str("/-");
            gen_maybe_node_space(r, s);
        }
        gen_entry(r, s);
    }
    if depth < 3 && r.one_in(3) {
        if r.one_in(6) {
            s.push_str(" /- { commented out }");
        }
        gen_maybe_node_space(r, s);
        s.push_str(" {");
        if r.one_in(5) {
            // Everything on one line.
            for _ in 0..r.below(3) {
                s.push(' ');
                gen_node(r, s, 3);
                s.push(';');
            }
            s.push_str(" }");
        } else {
            s.push('\n');
            for _ in 0..r.below(4) {
                gen_line_space(r, s, &indent);
                s.push_str(&indent);
                s.push_str("    ");
                gen_node(r, s, depth + 1);
                gen_terminator(r, s);
            }
            s.push_str(&indent);
            s.push('}');
        }
        if r.one_in(6) {
            s.push_str(" /- {x}");
        }
    }
    if r.one_in(5) {
        s.push(' ');
    }
}

fn generate(r: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..1 + r.below(6) {
        gen_line_space(r, &mut s, "");
        gen_node(r, &mut s, 0);
        gen_terminator(r, &mut s);
    }
    if r.one_in(4) {
        s.pop(); // no terminator after the last node
    }
    s
}

const GENERATED: usize = 3000;

/// The fixed seed, or `KDL_DIFF_SEED` when set, to explore other inputs.
fn seed(fixed: u64) -> u64 {
    let extra = std::env::var("KDL_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    extra.map_or(fixed, |e| fixed ^ e.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
}

/// `n`, times `KDL_DIFF_SCALE` when set: a longer hunt for disagreements than CI needs.
fn rounds(n: usize) -> usize {
    let scale = std::env::var("KDL_DIFF_SCALE")
        .ok()
        .and_then(|s| s.parse().ok());
    n * scale.unwrap_or(1)
}
const MUTATIONS: usize = 6000;

#[test]
fn generated_documents_agree() {
    let mut r = Rng(seed(0x9E37_79B9_7F4A_7C15));
    let mut tally = Tally::default();
    for k in 0..rounds(GENERATED) {
        let text = generate(&mut r);
        check(&text, &format!("generated {k}"), &mut tally, true);
    }
    eprintln!(
        "generated: {} documents, {} valid for kdl, {} taken by the fast path",
        tally.cases, tally.valid, tally.fast
    );
    // The generator writes valid KDL almost always, and mostly what the fast path takes.
    assert!(tally.valid * 10 >= tally.cases * 9, "{tally:?}");
    assert!(tally.fast * 10 >= tally.valid * 8, "{tally:?}");
}

/// Characters that matter to the grammar, for insertions.
const SPICE: &[&str] = &[
    "{", "}", ";", "/", "-", "*", "\"", "#", "\\", "=", "(", ")", "\n", "\r", " ", "\t", "0", "1",
    "x", ".", "_", "+", "e", "\u{3000}", "\u{85}", "\u{200E}", "\u{FEFF}", "\u{0}", "/-", "/*",
    "*/", "//", "\"\"\"", "#\"", "\"#", "\\\n",
];

fn mutate(r: &mut Rng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..1 + r.below(3) {
        let at = r.below(chars.len() + 1);
        match r.below(4) {
            0 if at < chars.len() => {
                let n = 1 + r.below(3.min(chars.len() - at));
                chars.drain(at..at + n);
            }
            1 if at < chars.len() => {
                let spice: Vec<char> = r.pick(SPICE).chars().collect();
                chars.splice(at..at + 1, spice);
            }
            2 if at < chars.len() => {
                let n = 1 + r.below(8.min(chars.len() - at));
                let copy: Vec<char> = chars[at..at + n].to_vec();
                let to = r.below(chars.len() + 1);
                chars.splice(to..to, copy);
            }
            _ => {
                let spice: Vec<char> = r.pick(SPICE).chars().collect();
                chars.splice(at..at, spice);
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn mutated_documents_agree() {
    let mut r = Rng(seed(0x0123_4567_89AB_CDEF));
    let mut tally = Tally::default();
    let mut seeds: Vec<String> = own_files()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    seeds.extend(CORNERS.iter().map(|s| s.to_string()));
    for k in 0..rounds(MUTATIONS) {
        let base = if k % 4 == 0 {
            seeds[r.below(seeds.len())].clone()
        } else {
            generate(&mut r)
        };
        let text = mutate(&mut r, &base);
        check(&text, &format!("mutation {k}"), &mut tally, false);
    }
    eprintln!(
        "mutated: {} documents, {} taken by the fast path (and equal in kdl)",
        tally.cases, tally.fast
    );
    assert!(tally.fast > MUTATIONS / 10, "{tally:?}");
}

/// Tokens for [`token_soup_agrees`]: enough of the grammar that random sequences are often
/// valid, in orders no grammar-driven generator would write.
const TOKENS: &[&str] = &[
    "a",
    "b",
    "job",
    "-x",
    "\"s\"",
    "#\"r\"#",
    "1",
    "-2",
    "0x1F",
    "1.5",
    "#true",
    "#null",
    "=",
    "(t)",
    "{",
    "}",
    "{",
    "}",
    ";",
    "/-",
    "/-",
    " ",
    " ",
    " ",
    " ",
    "\t",
    "\n",
    "\n",
    "\r\n",
    "// c\n",
    "/* c */",
    "\\\n",
    "\\ // c\n",
    "\u{3000}",
    "\"\"\"\n  m\n  \"\"\"",
];

#[test]
fn token_soup_agrees() {
    let mut r = Rng(seed(0xD1B5_4A32_D192_ED03));
    let mut tally = Tally::default();
    for k in 0..rounds(20_000) {
        let mut text = String::new();
        for _ in 0..1 + r.below(14) {
            text.push_str(r.pick(TOKENS));
        }
        check(&text, &format!("soup {k}"), &mut tally, false);
    }
    eprintln!(
        "token soup: {} texts, {} taken by the fast path (and equal in kdl)",
        tally.cases, tally.fast
    );
    assert!(tally.fast > 1000, "{tally:?}");
}

// ---------------------------------------------------------------------------------------------
// The benchmark's topology

/// The benchmark's topology (benches/common): each job syncs its host's data to the next host,
/// every fifth job also keeps snapshots, every tenth blocks on the one before it.
fn topology(jobs: usize) -> String {
    bench_common::topology(jobs, jobs / 10, None)
}

#[test]
fn topology_agrees() {
    let text = topology(200);
    let fast = parse_fast(&text).expect("the fast path takes the benchmark topology");
    document(&fast, &text.parse().unwrap()).unwrap();
}
