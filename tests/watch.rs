//! `bkc-run watch` on real files: a burst of changes under a watched tree starts the job once,
//! a quiet time after the last change, and a later change starts it once more; a start that
//! merged into a run already going on is made again when that run has ended.
//!
//! The watcher writes its trigger file where the spec says (in production the path unit's
//! `/run/bkc/watch/<job>`): here a scratch directory, and each start is a line on its stderr.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bkc::analyze::compile;

/// A running `bkc-run watch`, with the times at which it started the job.
struct Watcher {
    child: Child,
    starts: Arc<Mutex<Vec<Instant>>>,
    trigger: PathBuf,
    state: PathBuf,
}

impl Watcher {
    /// Watch `data` with a quiet time of `quiet` seconds, as the compiler writes the spec, with
    /// the trigger and the state file in `dir`.
    fn start(dir: &Path, data: &Path, quiet: u64) -> Watcher {
        let topology = format!(
            "host \"h\"\njob \"w\" on=\"h\" {{\n    watch \"/srv/data\" quiet={quiet}\n    sync \"/srv/data/\" \"/srv/copy/\"\n}}\n"
        );
        let c = compile("watch.kdl", &topology);
        let mut spec = c.topology.expect("compiles").jobs["w"].spec.clone();
        let w = spec.watch.as_mut().expect("the job has its watch");
        assert_eq!(w.quiet_secs, quiet);
        assert_eq!(w.trigger, "/run/bkc/watch/w");
        w.paths = vec![data.display().to_string()];
        w.trigger = dir.join("trigger/w").display().to_string();
        spec.state_dir = dir.join("state").display().to_string();
        let path = dir.join("w.json");
        std::fs::write(&path, spec.to_json()).unwrap();
        let mut child = Command::new(common::bin("bkc-run"))
            .arg("watch")
            .arg(&path)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        let seen = starts.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                if line.contains("watching") {
                    let _ = ready_tx.send(());
                }
                if line.ends_with("started the job") {
                    seen.lock().unwrap().push(Instant::now());
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the watcher says what it watches");
        Watcher {
            child,
            starts,
            trigger: dir.join("trigger/w"),
            state: dir.join("state/w.json"),
        }
    }

    fn starts(&self) -> Vec<Instant> {
        self.starts.lock().unwrap().clone()
    }

    /// Wait until the job was started `n` times in all, at most `limit`.
    fn wait_for(&self, n: usize, limit: Duration) -> Vec<Instant> {
        let begun = Instant::now();
        while self.starts().len() < n && begun.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.starts()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 100 changes in a burst: files created and written, a directory made and a file made in it,
/// and bkc's own names, which change nothing.
fn burst(data: &Path) -> Instant {
    for i in 0..90 {
        std::fs::write(data.join(format!("f{i}")), format!("{i}\n")).unwrap();
    }
    for i in 0..5 {
        std::fs::write(data.join(format!("f{i}")), "again\n").unwrap();
    }
    std::fs::create_dir(data.join("sub")).unwrap();
    std::fs::create_dir(data.join("sub/deeper")).unwrap();
    std::fs::write(data.join("sub/deeper/file"), "x\n").unwrap();
    std::fs::write(data.join("sub/file"), "y\n").unwrap();
    // Taken before the last write: the watcher may see that write before a clock read after it.
    let last = Instant::now();
    std::fs::write(data.join("last"), "z\n").unwrap();
    last
}

#[test]
fn a_burst_of_changes_starts_the_job_once_after_the_quiet_time() {
    let dir = common::scratch("watch", "burst");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let quiet = Duration::from_secs(2);
    let w = Watcher::start(&dir, &data, 2);
    let last = burst(&data);
    let starts = w.wait_for(1, Duration::from_secs(20));
    assert_eq!(starts.len(), 1, "one start for the burst");
    assert!(
        starts[0] >= last + quiet,
        "started {:?} after the last change, before the quiet time",
        starts[0] - last
    );
    assert!(w.trigger.exists(), "the trigger file is written");
    // Nothing more comes of the burst, nor of bkc's own files in the tree.
    std::fs::create_dir(data.join(".bkc-snapshots")).unwrap();
    std::fs::write(data.join(".bkc-snapshots/w.0"), "").unwrap();
    std::fs::write(data.join("sub/.bkc-fresh.w"), "{}").unwrap();
    std::thread::sleep(quiet * 2);
    assert_eq!(w.starts().len(), 1, "bkc's own files started the job");

    // A later single change, in the directory made during the burst, starts it once more.
    let changed = Instant::now();
    std::fs::write(data.join("sub/deeper/file"), "changed\n").unwrap();
    let starts = w.wait_for(2, Duration::from_secs(20));
    assert_eq!(starts.len(), 2, "the later change starts the job");
    assert!(starts[1] >= changed + quiet);
    std::thread::sleep(quiet * 2);
    assert_eq!(w.starts().len(), 2, "one start per change");
    drop(w);
    common::remove_scratch(&dir);
}

#[test]
fn a_start_merged_into_a_running_run_is_made_again_after_it() {
    let dir = common::scratch("watch", "merged");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let w = Watcher::start(&dir, &data, 1);
    std::fs::write(data.join("a"), "1\n").unwrap();
    let starts = w.wait_for(1, Duration::from_secs(20));
    assert_eq!(starts.len(), 1);
    // A run that began before the start ends: the start merged into it (systemd starts nothing
    // new for a oneshot that is running), so what changed is not copied yet.
    let state = |start: jiff::Timestamp| {
        let end = jiff::Timestamp::now();
        std::fs::write(
            &w.state,
            format!("{{\"version\":1,\"job\":\"w\",\"start\":\"{start}\",\"end\":\"{end}\"}}"),
        )
        .unwrap();
    };
    state(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60));
    let starts = w.wait_for(2, Duration::from_secs(20));
    assert_eq!(starts.len(), 2, "the merged start is made again");
    assert!(starts[1] >= starts[0] + Duration::from_secs(1));
    // A run that began after that start answers it: nothing more.
    std::thread::sleep(Duration::from_millis(200));
    state(jiff::Timestamp::now());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(w.starts().len(), 2, "a run after the start answers it");
    drop(w);
    common::remove_scratch(&dir);
}
