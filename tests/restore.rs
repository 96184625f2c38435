//! Getting data back, end to end: `bkc snapshots`, `bkc restore` and `bkc verify` from the
//! operator's side, through real sshd on namespaced hosts to the job's host, where bkc-run
//! reaches the other hosts with the job's key and runs real rsync. Each host has its own /srv
//! and /etc (the job specs `bkc build` wrote, the job key, the pinned known_hosts). The jobs run
//! over three injected days (`BKC_RUN_NOW`), with every file's time set to fit that calendar.
//! Needs root; see tests/harness.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use std::time::Duration;

use crate::harness::site::{Said, Site};
use crate::harness::{self, Live};
use serde_json::Value;

/// The three days the jobs run on, and their snapshots' names.
const DAYS: [&str; 3] = [
    "2026-11-18T02:15:00Z",
    "2026-11-19T02:15:00Z",
    "2026-11-20T02:15:00Z",
];
const NAMES: [&str; 3] = [
    "2026-11-18T021500Z",
    "2026-11-19T021500Z",
    "2026-11-20T021500Z",
];
/// When the files that never change were written: before every run.
const OLD: &str = "2026-11-17T12:00:00Z";

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

/// `t` moved by `hours`.
fn shift(t: &str, hours: i64) -> String {
    (ts(t) + jiff::SignedDuration::from_hours(hours)).to_string()
}

/// Write `path` with `content`, `mode` and modification time `mtime`.
fn put(path: &Path, content: &str, mode: u32, mtime: &str) {
    harness::write(path, content);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    let t = std::time::UNIX_EPOCH + Duration::from_secs(ts(mtime).as_second() as u64);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// Rot: one byte of `path` flipped, its size and modification time kept, as a failing disk
/// leaves it and rsync's quick check cannot see.
fn flip_a_byte(path: &Path) {
    let t = std::fs::metadata(path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    bytes[4] ^= 0x20;
    std::fs::write(path, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// The seed chain: the desktop mirrors its home to backup_a, which pushes everything into
/// snapshots on backup_b. The before hook lets a test make a run slow. backup_b's snapshots are
/// not append-only: an append-only destination names each snapshot by its own clock, and these
/// tests date their runs (`BKC_RUN_NOW`).
const SEED_CHAIN: &str = r#"
job "desktop-to-a" on="desktop" {
    schedule "daily"
    sync "/srv/home/" "backup_a:/srv/backup/desktop/" {
        opts "-a" "--delete"
    }
}
job "a-to-b" on="backup_a" {
    schedule "daily"
    hook "before" "sleep ${BKC_TEST_SLOW:-0}"
    sync "/srv/backup/" "backup_b:/srv/offsite/backup_a/" {
        snapshot keep-daily=7 append-only=#false
    }
}
"#;

/// The pull server: vault pulls web1 into snapshots, keeping numeric ids.
const PULL_SERVER: &str = r#"
job "pull-web1" on="vault" {
    schedule "daily"
    sync "web1:/srv/www/" "/srv/snapshots/web1/www/" {
        opts "-a" "--delete" "--numeric-ids"
        snapshot keep-daily=7
    }
    // Restores go back to web1: vault's key may write there only below /srv.
    restore-to "/srv" host="web1"
}
"#;

/// A job that snapshots a source, as the tests below see it.
struct Case<'a> {
    site: &'a Site,
    job: &'a str,
    /// The source's host and its directory under /srv.
    source: (&'a str, &'a str),
    /// Where the test writes the files the source gets: host and directory under /srv.
    origin: (&'a str, &'a str),
    /// The paths of the origin's files inside the job's source.
    prefix: &'a str,
    /// The latest snapshot's directory: host and directory under /srv.
    snapshots: (&'a str, &'a str),
    /// Runs the jobs that carry a day's data into the snapshots.
    run_day: &'a dyn Fn(&str),
    /// How rsync itemizes a file the job's direction sends: `<` for a push, `>` for a pull.
    sent: char,
}

impl Case<'_> {
    fn origin(&self, rel: &str) -> PathBuf {
        self.site
            .srv(self.origin.0, &format!("{}/{rel}", self.origin.1))
    }

    fn source(&self, rel: &str) -> PathBuf {
        self.site.srv(
            self.source.0,
            &format!("{}/{}{rel}", self.source.1, self.prefix),
        )
    }

    fn in_snapshot(&self, day: usize, rel: &str) -> PathBuf {
        self.site.srv(
            self.snapshots.0,
            &format!("{}/{}/{}{rel}", self.snapshots.1, NAMES[day], self.prefix),
        )
    }

    fn path(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    /// Three days of runs: files that never change, a diary that changes every day, a file
    /// that appears on the third.
    fn three_days(&self) {
        put(&self.origin("music/song.flac"), "la la la\n", 0o640, OLD);
        put(&self.origin("base.txt"), "the same every day\n", 0o644, OLD);
        for (i, day) in DAYS.iter().enumerate() {
            let before = shift(day, -6);
            put(
                &self.origin("diary.txt"),
                &format!("diary {}\n", i + 1),
                0o600,
                &before,
            );
            if i == 2 {
                put(&self.origin("new3.txt"), "new on day 3\n", 0o644, &before);
            }
            (self.run_day)(day);
        }
    }

    fn restore(&self, args: &[&str]) -> Said {
        let file = self.site.file();
        let mut a = vec!["restore", self.job, file.as_str()];
        a.extend_from_slice(args);
        self.site.bkc(&a)
    }

    fn listing(&self) {
        let file = self.site.file();
        let s = self.site.bkc(&["snapshots", &file, self.job, "--json"]);
        assert_eq!(s.code, 0, "{s:?}");
        let v: Value = serde_json::from_str(&s.out).unwrap();
        let syncs = &v["jobs"][0]["syncs"];
        assert_eq!(syncs.as_array().unwrap().len(), 1, "{s:?}");
        let snaps = syncs[0]["snapshots"].as_array().unwrap();
        let names: Vec<&str> = snaps.iter().map(|n| n["name"].as_str().unwrap()).collect();
        assert_eq!(names, [NAMES[2], NAMES[1], NAMES[0]], "newest first");
        let flags = |k: &str| {
            snaps
                .iter()
                .map(|n| n[k].as_bool().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(flags("latest"), [true, false, false]);
        assert_eq!(flags("complete"), [true, true, true]);
        assert_eq!(
            flags("prune"),
            [false, false, false],
            "keep-daily=7 keeps all"
        );
        let num = |n: &Value, k: &str| n[k].as_u64().unwrap();
        // Day 3 has one file more; every day shares song and base, each diary is its own.
        assert_eq!(num(&snaps[0], "files"), num(&snaps[1], "files") + 1);
        assert_eq!(num(&snaps[0], "unique_bytes"), 8 + 13, "diary 3 and new3");
        assert_eq!(num(&snaps[1], "unique_bytes"), 8, "diary 2");
        assert!(num(&snaps[2], "apparent_bytes") >= 9 + 19 + 8);
        let table = self.site.bkc(&["snapshots", &file, self.job]);
        assert_eq!(table.code, 0, "{table:?}");
        let latest = table.out.lines().find(|l| l.contains(NAMES[2])).unwrap();
        assert!(
            latest.contains("complete") && latest.ends_with("latest"),
            "{table:?}"
        );
    }

    /// A file deleted at the source comes back from day one as it was: bytes, mode, time.
    fn deleted_file_comes_back(&self) {
        let song = self.source("music/song.flac");
        let before = std::fs::metadata(&song).unwrap();
        std::fs::remove_file(&song).unwrap();
        let s = self.restore(&[
            "--at",
            "2026-11-18",
            &self.path("music/song.flac"),
            "--to",
            "/srv/restored",
        ]);
        assert_eq!(s.code, 0, "{s:?}");
        assert!(
            s.out
                .contains(&format!("f+++++++++ {}", self.path("music/song.flac"))),
            "{s:?}"
        );
        let back = self.site.srv(
            self.source.0,
            &format!("restored/{}", self.path("music/song.flac")),
        );
        let m = std::fs::metadata(&back).unwrap();
        assert_eq!(std::fs::read_to_string(&back).unwrap(), "la la la\n");
        assert_eq!(m.mode() & 0o7777, 0o640);
        assert_eq!(m.mtime(), before.mtime());
        assert_eq!((m.uid(), m.gid()), (before.uid(), before.gid()));

        // Into the same directory again: it is no longer empty.
        let s = self.restore(&[&self.path("base.txt"), "--to", "/srv/restored"]);
        assert_eq!(s.code, 1, "{s:?}");
        assert!(s.err.contains("is not empty"), "{s:?}");
        let s = self.restore(&[&self.path("base.txt"), "--to", "/srv/restored", "--force"]);
        assert_eq!(s.code, 0, "{s:?}");

        // In place on a terminal: the changes first, then the question; only `yes` goes on.
        let (file, song_path) = (self.site.file(), self.path("music/song.flac"));
        let ask = ["restore", self.job, &file, &song_path, "--in-place"];
        let s = self.site.bkc_tty(&ask, "no\n");
        assert_eq!(s.code, 1, "{s:?}");
        assert!(s.out.contains("Restore these 2 changes in place?"), "{s:?}");
        assert!(
            s.out.contains("nothing was changed") && !song.exists(),
            "{s:?}"
        );
        let s = self.site.bkc_tty(&ask, "yes\n");
        assert_eq!(s.code, 0, "{s:?}");
        assert!(song.exists(), "{s:?}");
        std::fs::remove_file(&song).unwrap();
        // In place: without a terminal only with --yes.
        let s = self.restore(&[&self.path("music/song.flac"), "--in-place"]);
        assert_eq!(s.code, 2, "{s:?}");
        assert!(s.err.contains("not a terminal"), "{s:?}");
        assert!(!song.exists());
        let s = self.restore(&[&self.path("music/song.flac"), "--in-place", "--yes"]);
        assert_eq!(s.code, 0, "{s:?}");
        let m = std::fs::metadata(&song).unwrap();
        assert_eq!(std::fs::read_to_string(&song).unwrap(), "la la la\n");
        assert_eq!((m.mode() & 0o7777, m.mtime()), (0o640, before.mtime()));
    }

    /// `--at` takes the newest snapshot at or before the time; a date means its whole day.
    fn at_picks_the_snapshot(&self) {
        for (at, dir, want) in [
            ("2026-11-19", "at-a", "diary 2\n"),
            ("2026-11-19T02:00", "at-b", "diary 1\n"),
            ("latest", "at-c", "diary 3\n"),
        ] {
            let s = self.restore(&[
                "--at",
                at,
                &self.path("diary.txt"),
                "--to",
                &format!("/srv/{dir}"),
            ]);
            assert_eq!(s.code, 0, "{at}: {s:?}");
            let got = self
                .site
                .srv(self.source.0, &format!("{dir}/{}", self.path("diary.txt")));
            assert_eq!(std::fs::read_to_string(got).unwrap(), want, "{at}");
        }
        let s = self.restore(&["--at", "2026-11-17", "--to", "/srv/at-d"]);
        assert_eq!(s.code, 1, "{s:?}");
        assert!(s.err.contains("no complete snapshot at or before"), "{s:?}");
        // A path the chosen snapshot lacks names the nearest that have it.
        let s = self.restore(&[
            "--at",
            "2026-11-18",
            &self.path("new3.txt"),
            "--to",
            "/srv/at-e",
        ]);
        assert_eq!(s.code, 1, "{s:?}");
        assert!(
            s.err
                .contains(&format!("the nearest that has it: {} (newer)", NAMES[2])),
            "{s:?}"
        );
    }

    /// A byte flipped in the latest snapshot is corrupted, found by reading every byte; a
    /// source edit after the last run is a change, not corruption.
    fn verify_tells_rot_from_change(&self) {
        let file = self.site.file();
        let s = self.site.bkc(&["verify", self.job, &file, "--checksum"]);
        assert_eq!(s.code, 0, "clean before: {s:?}");
        flip_a_byte(&self.in_snapshot(2, "base.txt"));
        put(
            &self.source("diary.txt"),
            "edited after the run\n",
            0o600,
            &shift(DAYS[2], 6),
        );

        let s = self.site.bkc(&["verify", self.job, &file]);
        assert_eq!(
            s.code, 0,
            "sizes and times alone cannot see the flip: {s:?}"
        );
        let s = self
            .site
            .bkc(&["verify", self.job, &file, "--checksum", "--json"]);
        assert_eq!(s.code, 1, "{s:?}");
        let v: Value = serde_json::from_str(&s.out).unwrap();
        let findings = v["syncs"][0]["findings"].as_array().unwrap();
        let class = |p: String| {
            findings
                .iter()
                .find(|f| f["path"] == p.as_str())
                .map(|f| f["class"].as_str().unwrap().to_string())
        };
        assert_eq!(
            class(self.path("base.txt")).as_deref(),
            Some("corrupted"),
            "{s:?}"
        );
        assert_eq!(
            class(self.path("diary.txt")).as_deref(),
            Some("changed"),
            "{s:?}"
        );
        assert!(findings.iter().all(|f| f["class"] != "missing"), "{s:?}");
        let s = self.site.bkc(&["verify", self.job, &file, "--checksum"]);
        assert_eq!(s.code, 1, "{s:?}");
        assert!(
            s.out.contains(&format!(
                "corrupted  {}fc........  {}",
                self.sent,
                self.path("base.txt")
            )),
            "{s:?}"
        );
    }

    fn all(&self) {
        self.three_days();
        self.listing();
        self.deleted_file_comes_back();
        self.at_picks_the_snapshot();
        self.verify_tells_rot_from_change();
    }
}

#[test]
#[ignore = "needs root, sshd and rsync (namespace hosts)"]
fn push_job_seed_chain() {
    let _g = harness::shared();
    let Some(site) = Site::new(&["desktop", "backup_a", "backup_b"], SEED_CHAIN) else {
        return;
    };
    let run_day = |day: &str| {
        site.run_job("desktop-to-a", "desktop", &shift(day, -1));
        site.run_job("a-to-b", "backup_a", day);
    };
    let case = Case {
        site: &site,
        job: "a-to-b",
        source: ("backup_a", "backup"),
        origin: ("desktop", "home"),
        prefix: "desktop/",
        snapshots: ("backup_b", "offsite/backup_a"),
        run_day: &run_day,
        sent: '<',
    };
    case.all();

    // The desktop's own job is a mirror: listed with its last run, restored from backup_a.
    let file = site.file();
    let s = site.bkc(&["snapshots", &file, "desktop-to-a", "--json"]);
    assert_eq!(s.code, 0, "{s:?}");
    let v: Value = serde_json::from_str(&s.out).unwrap();
    assert_eq!(v["jobs"][0]["syncs"][0]["kind"], "mirror", "{s:?}");
    assert!(
        v["jobs"][0]["last_success"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-20T01:15")
    );
    let s = site.bkc(&[
        "restore",
        "desktop-to-a",
        &file,
        "diary.txt",
        "--to",
        "/srv/from-mirror",
    ]);
    assert_eq!(s.code, 0, "{s:?}");
    // The mirror is backup_a's copy, which the verify above edited after the last run.
    let got = std::fs::read_to_string(site.srv("desktop", "from-mirror/diary.txt")).unwrap();
    assert_eq!(got, "edited after the run\n");
}

#[test]
#[ignore = "needs root, sshd and rsync (namespace hosts)"]
fn pull_job_pull_server() {
    let _g = harness::shared();
    let Some(site) = Site::new(&["vault", "web1"], PULL_SERVER) else {
        return;
    };
    let run_day = |day: &str| site.run_job("pull-web1", "vault", day);
    let case = Case {
        site: &site,
        job: "pull-web1",
        source: ("web1", "www"),
        origin: ("web1", "www"),
        prefix: "",
        snapshots: ("vault", "snapshots/web1/www"),
        run_day: &run_day,
        sent: '>',
    };
    case.all();
    // Outside its restore-to, the job's key may not write on web1: refused before any lock,
    // with the setting that would allow it.
    let s = case.restore(&["--to", "/var/tmp/elsewhere"]);
    assert_ne!(s.code, 0, "{s:?}");
    assert!(
        s.err.contains("may not write on host \"web1\"")
            && s.err
                .contains("restore-to \"/var/tmp/elsewhere\" host=\"web1\""),
        "{s:?}"
    );
}

/// A restore started while the job runs waits for the job's lock, then restores what the run
/// made.
#[test]
#[ignore = "needs root, sshd and rsync (namespace hosts)"]
fn a_restore_waits_for_the_running_job() {
    let _g = harness::shared();
    let Some(site) = Site::new(&["desktop", "backup_a", "backup_b"], SEED_CHAIN) else {
        return;
    };
    put(
        &site.srv("backup_a", "backup/file.txt"),
        "day 1\n",
        0o644,
        OLD,
    );
    site.run_job("a-to-b", "backup_a", DAYS[0]);
    put(
        &site.srv("backup_a", "backup/file.txt"),
        "day 2\n",
        0o644,
        &shift(DAYS[1], -6),
    );

    let mut job = site.net.cmd(
        site.h("backup_a"),
        &[harness::runner(), "/etc/bkc/jobs/a-to-b.json"],
    );
    job.env("BKC_RUN_NOW", DAYS[1]).env("BKC_TEST_SLOW", "3");
    let mut live = Live::new(site.net.spawn(job));
    live.wait_event("locked", 10);
    let file = site.file();
    let restore = site.bkc_cmd(&["restore", "a-to-b", &file, "file.txt", "--to", "/srv/r"]);
    let restore = site.net.spawn(restore);
    let ran = live.finish(30);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let s = Said::of(restore.wait_with_output().unwrap());
    assert_eq!(s.code, 0, "{s:?}");
    assert!(
        s.err.contains("waiting for job a-to-b on host backup_a"),
        "{s:?}"
    );
    // It waited for the run, so it restored the run's snapshot.
    let got = std::fs::read_to_string(site.srv("backup_a", "r/file.txt")).unwrap();
    assert_eq!(got, "day 2\n");
}

/// The pull server with a scheduled verify, metrics and a failure notification.
const VERIFIED: &str = r#"
job "pull-web1" on="vault" {
    schedule "daily"
    notify "echo \"$BKC_EVENT|$BKC_RESULT|$BKC_MESSAGE\" >> /srv/notified" on="failure"
    sync "web1:/srv/www/" "/srv/snapshots/web1/www/" {
        opts "-a" "--delete" "--numeric-ids"
        snapshot keep-daily=7
    }
    verify "weekly" checksum=#true
}
"#;

/// The command line of `Key=` in the unit `name` that `bkc build` wrote for `host`, split
/// into words (bkc's own units quote nothing here).
fn exec_of(site: &Site, host: &str, name: &str, key: &str) -> Vec<String> {
    let path = site
        .net
        .dir
        .join("out")
        .join(host)
        .join("etc/systemd/system")
        .join(name);
    let unit = std::fs::read_to_string(&path).unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {}", path.display()));
    line.split_whitespace().map(str::to_string).collect()
}

/// The scheduled verify as systemd starts it (the ExecStart of `bkc-verify@<job>.service`,
/// with its INVOCATION_ID): its outcome lands in the state file beside the run's, in the
/// metrics, and in `bkc status`; a byte flipped in the latest snapshot fails it, and the
/// notification systemd then starts (`OnFailure=bkc-notify@<job>.service`) tells it; a later
/// run keeps the verify's record.
#[test]
#[ignore = "needs root, sshd and rsync (namespace hosts)"]
fn a_scheduled_verify_records_and_notifies() {
    let _g = harness::shared();
    let Some(site) = Site::new_with(
        &["vault", "web1"],
        "    metrics-dir \"/srv/metrics\"\n",
        VERIFIED,
    ) else {
        return;
    };
    put(
        &site.srv("web1", "www/base.txt"),
        "the same every day\n",
        0o644,
        OLD,
    );
    put(&site.srv("web1", "www/song.flac"), "la la la\n", 0o640, OLD);
    site.run_job("pull-web1", "vault", DAYS[0]);

    let service = exec_of(&site, "vault", "bkc-verify@pull-web1.service", "ExecStart");
    assert_eq!(
        service[1..],
        [
            "verify",
            "--record",
            "--checksum",
            "/etc/bkc/jobs/pull-web1.json"
        ]
    );
    let unit = std::fs::read_to_string(
        site.net
            .dir
            .join("out/vault/etc/systemd/system/bkc-verify@pull-web1.service"),
    )
    .unwrap();
    assert!(unit.contains("OnFailure=bkc-notify@pull-web1.service\n"));
    let verify = |invocation: &str| {
        let argv: Vec<&str> = service.iter().map(String::as_str).collect();
        let o = site
            .net
            .cmd(site.h("vault"), &argv)
            .env("INVOCATION_ID", invocation)
            .output()
            .unwrap();
        Said::of(o)
    };
    let state = || -> Value {
        let text = std::fs::read_to_string(site.srv("vault", "bkc/state/pull-web1.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let metrics =
        || std::fs::read_to_string(site.srv("vault", "metrics/bkc_pull-web1.prom")).unwrap();

    // Clean: recorded as a success, the run's own record untouched.
    let run_before = state();
    let s = verify("inv-clean");
    assert_eq!(s.code, 0, "{s:?}");
    let st = state();
    let v = &st["verify"];
    assert_eq!(v["result"], "success", "{st}");
    assert_eq!(
        (v["corrupted"].as_u64(), v["missing"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(v["checksum"], true);
    assert_eq!(v["invocation"], "inv-clean");
    assert_eq!(v["last_success"], v["end"]);
    let clean_end = v["end"].clone();
    for k in [
        "run",
        "result",
        "end",
        "last_success",
        "runs_total",
        "syncs",
    ] {
        assert_eq!(st[k], run_before[k], "{k} changed: {st}");
    }
    let m = metrics();
    assert!(
        m.contains("bkc_verify_last_exit_code{job=\"pull-web1\"} 0\n"),
        "{m}"
    );
    assert!(m.contains("bkc_verify_last_success_timestamp_seconds{job=\"pull-web1\"} "));
    assert!(m.contains("bkc_verify_problems{job=\"pull-web1\",class=\"corrupted\"} 0\n"));
    assert!(
        m.contains("bkc_last_exit_code{job=\"pull-web1\"} 0\n"),
        "the run's: {m}"
    );

    // A byte flips in the latest snapshot, its size and time kept.
    let copy = site.srv(
        "vault",
        &format!("snapshots/web1/www/{}/base.txt", NAMES[0]),
    );
    flip_a_byte(&copy);
    let s = verify("inv-rot");
    assert_eq!(s.code, 1, "{s:?}");
    let st = state();
    let v = &st["verify"];
    assert_eq!(v["result"], "failed", "{st}");
    assert_eq!(v["exit_code"], 1);
    assert_eq!(
        (v["corrupted"].as_u64(), v["missing"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        v["last_success"], clean_end,
        "the last clean verify is kept"
    );
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .starts_with("1 corrupted, 0 missing"),
        "{st}"
    );
    assert_eq!(st["result"], "success", "the run's result stays");
    let m = metrics();
    assert!(
        m.contains("bkc_verify_last_exit_code{job=\"pull-web1\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("bkc_verify_problems{job=\"pull-web1\",class=\"corrupted\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("bkc_last_success_timestamp_seconds{job=\"pull-web1\"} "),
        "{m}"
    );

    // systemd's OnFailure= starts the notification unit, which tells the verify's failure.
    let notify = exec_of(&site, "vault", "bkc-notify@pull-web1.service", "ExecStart");
    let argv: Vec<&str> = notify.iter().map(String::as_str).collect();
    let o = site
        .net
        .cmd(site.h("vault"), &argv)
        .env("MONITOR_INVOCATION_ID", "inv-rot")
        .env("MONITOR_SERVICE_RESULT", "exit-code")
        .env("MONITOR_EXIT_STATUS", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let told = std::fs::read_to_string(site.srv("vault", "notified")).unwrap();
    assert!(
        told.starts_with("failure|failed|verify: 1 corrupted, 0 missing"),
        "{told}"
    );

    // bkc status shows it, and --check finds it.
    let file = site.file();
    let s = site.bkc(&["status", &file]);
    assert_eq!(s.code, 0, "{s:?}");
    assert!(
        s.out.lines().next().unwrap().ends_with("VERIFY")
            && s.out.contains("FAILED ")
            && s.out.contains(": 1 corrupted, 0 missing"),
        "{s:?}"
    );
    let s = site.bkc(&["status", &file, "--check"]);
    assert_ne!(s.code, 0, "{s:?}");
    assert!(s.out.contains("verify failed: pull-web1 on vault"), "{s:?}");

    // The next run writes its own record and keeps the verify's.
    site.run_job("pull-web1", "vault", DAYS[1]);
    let st = state();
    assert_eq!(st["start"], DAYS[1], "{st}");
    assert_eq!(st["verify"]["corrupted"], 1, "{st}");
    assert!(metrics().contains("bkc_verify_problems{job=\"pull-web1\",class=\"corrupted\"} 1\n"));
}
