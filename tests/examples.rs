//! Every file `bkc build` writes for each bundled example, snapshotted whole, and built twice
//! to prove the output does not depend on anything but the topology.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use bkc::analyze::compile;
use bkc::emit::{Artifacts, emit};

fn examples() -> Vec<(String, String)> {
    let out = common::examples();
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
                assert_snapshot!(snap, String::from_utf8(file.bytes).unwrap());
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

/// The two facts deadlock freedom and exclusion rest on (docs/LOCKS.md), for every job of the
/// examples and of generated topologies: each spec's locks are in the one global order with no
/// place twice, and every shared lock is a lock its owner holds exclusively on that host.
#[test]
fn every_spec_takes_its_locks_in_order_where_the_owner_holds_them() {
    use bkc::spec::LockMode;
    let mut texts: Vec<String> = examples().into_iter().map(|(_, t)| t).collect();
    texts.extend(generated_topologies());
    let mut shared_seen = 0;
    for text in texts {
        let c = compile("t.kdl", &text);
        let t = c.topology.expect("compiles");
        for job in t.jobs.values() {
            let locks = &job.spec.locks;
            assert!(
                locks.windows(2).all(|w| w[0].at < w[1].at),
                "{}: locks not strictly sorted: {locks:?}",
                job.name
            );
            for l in locks.iter().filter(|l| l.mode == LockMode::Shared) {
                shared_seen += 1;
                let owner = &t.jobs[&l.owner];
                assert!(
                    owner
                        .spec
                        .locks
                        .iter()
                        .any(|o| o.mode == LockMode::Exclusive
                            && o.owner == owner.name
                            && o.at == l.at),
                    "{}: shared lock {l:?} is not one `{}` holds",
                    job.name,
                    owner.name
                );
            }
        }
    }
    assert!(
        shared_seen > 50,
        "the topologies exercise blocks-on ({shared_seen} shared locks)"
    );
}

/// Small seeded topologies where jobs on several hosts push and pull between each other and
/// block on each other at random.
fn generated_topologies() -> Vec<String> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    (0..40)
        .map(|_| {
            let hosts = 2 + next(4);
            let jobs = 2 + next(8);
            let mut s = String::new();
            for h in 0..hosts {
                s.push_str(&format!("host \"h{h}\" {{ host-key \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62\"; }}\n"));
            }
            for j in 0..jobs {
                let on = next(hosts);
                let other = (on + 1 + next(hosts - 1)) % hosts;
                let (src, dst) = if next(2) == 0 {
                    (format!("/d/{}/", next(3)), format!("h{other}:/b/{}/", next(3)))
                } else {
                    (format!("h{other}:/d/{}/", next(3)), format!("/b/{}/", next(3)))
                };
                s.push_str(&format!("job \"j{j}\" on=\"h{on}\" {{\n    schedule \"daily\"\n"));
                for k in 0..jobs {
                    if k != j && next(3) == 0 {
                        s.push_str(&format!("    blocks-on \"j{k}\"\n"));
                    }
                }
                s.push_str(&format!("    sync \"{src}\" \"{dst}\"\n}}\n"));
            }
            s
        })
        .filter(|s| compile("t.kdl", s).topology.is_some())
        .collect()
}
