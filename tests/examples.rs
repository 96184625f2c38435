//! Every file `bkc build` writes for each bundled example, snapshotted whole, and built twice
//! to prove the output does not depend on anything but the topology.

use std::collections::BTreeMap;
use std::path::Path;

use bkc::analyze::compile;
use bkc::emit::{Artifacts, emit};

fn examples() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir("examples")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "kdl"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 2,
        "the seed chain and the pull server are bundled"
    );
    out
}

fn build(name: &str, text: &str) -> Artifacts {
    let c = compile(&format!("examples/{name}.kdl"), text);
    emit(c.topology.as_ref().expect("examples compile"), &[]).unwrap()
}

#[test]
fn every_emitted_file_matches_its_snapshot() {
    for (name, text) in examples() {
        for (host, files) in build(&name, &text).hosts {
            for (path, file) in files.files {
                let snap = format!("{name}@{host}{}", path.replace('/', "_"));
                insta::assert_snapshot!(snap, String::from_utf8(file.bytes).unwrap());
            }
        }
    }
}

#[test]
fn building_twice_gives_identical_bytes() {
    for (name, text) in examples() {
        assert_eq!(build(&name, &text), build(&name, &text), "{name}");
    }
}

/// The binary writes exactly the artifacts the library computes, with their modes, and a
/// second build over the first replaces it whole (a removed job leaves no file behind).
#[test]
fn build_writes_the_tree() {
    let dir = std::env::temp_dir().join(format!("bkc-build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_bkc"))
        .args(["build", "examples/seed-chain.kdl", "-o"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string("examples/seed-chain.kdl").unwrap();
    let want = build("seed-chain", &text);
    let mut got: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for e in walkdir::WalkDir::new(&dir).into_iter().map(Result::unwrap) {
        if e.file_type().is_file() {
            let rel = e
                .path()
                .strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            got.insert(rel, std::fs::read(e.path()).unwrap());
        }
    }
    let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (host, files) in &want.hosts {
        for (path, f) in &files.files {
            expected.insert(format!("{host}{path}"), f.bytes.clone());
        }
    }
    assert_eq!(got, expected);

    // Drop a job and build again over the same directory: its files must be gone.
    let smaller = text
        .split("job \"a-to-b\"")
        .next()
        .unwrap()
        .replace("blocks-on \"a-to-b\" wait=\"5m\" timeout=\"12h\"", "");
    let file = dir.join("smaller.kdl");
    std::fs::write(&file, smaller).unwrap();
    let out = dir.join("out2");
    for _ in 0..2 {
        let ok = std::process::Command::new(env!("CARGO_BIN_EXE_bkc"))
            .args(["build"])
            .arg(&file)
            .arg("-o")
            .arg(&out)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    assert!(
        !Path::new(&out)
            .join("backup_a/etc/systemd/system/bkc-a-to-b.timer")
            .exists()
    );
    assert!(
        Path::new(&out)
            .join("desktop/etc/systemd/system/bkc-desktop-to-a.timer")
            .exists()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
