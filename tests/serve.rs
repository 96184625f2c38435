//! `bkc-run serve` behind a forced command, against real sshd and rsync on namespaced test
//! hosts, each job with a key of its own that the far hosts accept only for
//! `bkc-run serve <job>`. What runs, and every attack docs/SECURITY.md lists. Needs root; see
//! tests/harness.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::harness::*;
use bkc::spec::{JobSpec, LockMode, Retention, Snapshot};

/// The exit code of a refused request.
const REFUSED: i32 = 126;
/// rsync's exit codes when serve refused its far side: 2 (a protocol incompatibility) or, when
/// ssh has already passed on serve's code, 126. Never 12, which the runner would retry.
fn rsync_refused(o: &Output) -> bool {
    matches!(code(o), 2 | 126)
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Run `cmd` with `input` on its stdin.
fn with_input(mut cmd: std::process::Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

/// Send one request line to `bkc-run serve <job>` on `host`, with the job's key.
fn ask(net: &Net, spec: &JobSpec, host: &str, line: &str) -> Output {
    let serve = format!("{} serve {}", runner(), spec.job);
    with_input(net.ssh(spec, host, &serve), &format!("{line}\n"))
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn complete_snapshots(dir: &std::path::Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.len() == 18 && n.ends_with('Z'))
        .collect()
}

fn push_snapshots(net: &Net, job: &str, keep_last: u32, append_only: bool) -> JobSpec {
    let mut s = net.spec(job, "h1");
    let mut sy = sync(at("h1", "/srv/data/"), at("h2", "/srv/snaps/"));
    sy.snapshot = Some(Snapshot {
        retention: Retention {
            keep_last: Some(keep_last),
            ..Default::default()
        },
        append_only,
    });
    s.syncs.push(sy);
    own_locks(&mut s);
    net.restrict(&mut s);
    s
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn the_seed_chain_runs_through_serve_with_a_key_per_job() {
    let _serial = shared();
    let Some(net) = Net::new(3) else { return };
    // h1 = desktop, h2 = backup_a, h3 = backup_b; and backup_b also pulls from the desktop.
    write(&net.srv("h1").join("home/music/song.flac"), "la la la");
    write(&net.srv("h1").join("home/mail/inbox"), "hello");

    let mut d2a = net.spec("desktop-to-a", "h1");
    let mut s = sync(at("h1", "/srv/home/"), at("h2", "/srv/backup/desktop/"));
    s.opts.push("--delete".into());
    s.deletes = true;
    d2a.syncs.push(s);
    own_locks(&mut d2a);
    d2a.locks
        .push(lock("h2", "a-to-b", LockMode::Shared, "a-to-b"));
    d2a.locks.sort_by(|a, b| a.at.cmp(&b.at));
    net.restrict(&mut d2a);

    let mut a2b = net.spec("a-to-b", "h2");
    let mut s = sync(at("h2", "/srv/backup/"), at("h3", "/srv/offsite/backup_a/"));
    s.snapshot = Some(Snapshot {
        retention: Retention {
            keep_last: Some(2),
            ..Default::default()
        },
        append_only: true,
    });
    a2b.syncs.push(s);
    own_locks(&mut a2b);
    a2b.locks
        .push(lock("h2", "desktop-to-a", LockMode::Shared, "desktop-to-a"));
    a2b.locks.sort_by(|a, b| a.at.cmp(&b.at));
    net.restrict(&mut a2b);

    let mut pull = net.spec("pull-desktop", "h3");
    pull.syncs
        .push(sync(at("h1", "/srv/home/"), at("h3", "/srv/pulled/")));
    own_locks(&mut pull);
    net.restrict(&mut pull);

    let r = net.run(&d2a, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.events("locked").len(), 3);
    let r = net.run(&pull, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(net.srv("h3").join("pulled/mail/inbox")).unwrap(),
        "hello"
    );
    // Three runs of a-to-b: each adds a snapshot, named by backup_b's clock; the runner prunes
    // nothing there (append-only), backup_b's own prune does.
    let offsite = net.srv("h3").join("offsite/backup_a");
    for _ in 0..3 {
        let r = net.run(&a2b, &[], &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.events("prune").is_empty(), "{:?}", r.events);
        std::thread::sleep(Duration::from_millis(1100));
    }
    let snaps = complete_snapshots(&offsite);
    assert_eq!(snaps.len(), 3, "{:?}", names(&offsite));
    assert_eq!(
        std::fs::read_to_string(offsite.join("latest/desktop/music/song.flac")).unwrap(),
        "la la la"
    );
    let out = net
        .cmd("h3", &[runner(), "prune", "a-to-b"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(complete_snapshots(&offsite), snaps[1..], "keep-last 2");
    assert_eq!(
        std::fs::read_link(offsite.join("latest")).unwrap().to_str(),
        Some(snaps[2].as_str())
    );
    for (h, j) in [
        ("h1", "desktop-to-a"),
        ("h2", "desktop-to-a"),
        ("h2", "a-to-b"),
        ("h3", "a-to-b"),
    ] {
        assert!(net.lock_free(h, &lock_path(j)), "{h} {j}");
    }
    // The desktop's key is accepted only where the desktop's job goes: not on backup_b.
    let out = with_input(
        net.ssh(&d2a, "h3", &format!("{} serve desktop-to-a", runner())),
        "",
    );
    assert_eq!(code(&out), 255, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn requests_outside_the_serve_file_are_refused() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    let spec = edges(&net);
    write(&net.srv("h2").join("victim"), "precious\n");
    let refused = [
        r#"{"op":"lock","holder":"x","locks":[{"path":"/srv/victim","mode":"exclusive","timeout-secs":1}]}"#,
        r#"{"op":"lock","holder":"x","locks":[{"path":"/srv/bkc/locks/edge.lock","mode":"shared","timeout-secs":1}]}"#,
        r#"{"op":"lock","holder":"x\ny","locks":[{"path":"/srv/bkc/locks/edge.lock","mode":"exclusive","timeout-secs":1}]}"#,
        r#"{"op":"create-file","path":"/etc/cron.d/evil","holder":"* * * * * root id"}"#,
        r#"{"op":"remove-if","path":"/srv/victim","line":"precious"}"#,
        r#"{"op":"file-state","path":"/etc/shadow"}"#,
        r#"{"op":"source-state","path":"/srv/secret"}"#,
        r#"{"op":"snapshot-list","root":"/srv/src/","create":true}"#,
        r#"{"op":"hook","command":{"argv":["rm","-rf","/srv"]},"result":null}"#,
        r#"{"op":"shell","command":"id"}"#,
    ];
    for line in refused {
        let out = ask(&net, &spec, "h2", line);
        assert_eq!(code(&out), REFUSED, "{line}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(r#""reply":"refused""#), "{line}");
    }
    assert_eq!(
        std::fs::read_to_string(net.srv("h2").join("victim")).unwrap(),
        "precious\n"
    );
    let cron = net
        .cmd("h2", &["test", "-e", "/etc/cron.d/evil"])
        .status()
        .unwrap();
    assert!(!cron.success());

    // The job's own lock, swapped for a symlink to another file: refused, the file untouched
    // (serve writes the holder line through the descriptor it opened, never through a path).
    let locks = net.srv("h2").join("bkc/locks");
    std::fs::create_dir_all(&locks).unwrap();
    std::os::unix::fs::symlink("/srv/victim", locks.join("edge.lock")).unwrap();
    let r = net.run(&spec, &[], &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("symlink"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(net.srv("h2").join("victim")).unwrap(),
        "precious\n"
    );
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn a_jobs_key_opens_no_shell() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    let mut spec = net.spec("j", "h1");
    spec.syncs
        .push(sync(at("h1", "/srv/data/"), at("h2", "/srv/dst/")));
    own_locks(&mut spec);
    net.restrict(&mut spec);
    net.write_spec(&spec);
    let serve = format!("{} serve j", runner());
    let attempts = [
        ("id".to_string(), ""),
        ("sh".to_string(), "id\n"),
        (String::new(), "id\n"),
        ("bash -c id".to_string(), ""),
        (format!("{serve}; id"), ""),
        (format!("{serve} && id"), ""),
        (format!("{serve} $(id)"), ""),
        (format!("{serve} `id`"), ""),
        (format!("{serve}\nid"), ""),
        (format!("{} serve other-job", runner()), ""),
        (
            format!("{serve} rsync --server --sender -logDtpre.iLsfxCIvu . /etc/"),
            "",
        ),
        (
            serve.clone(),
            "{\"op\":\"hook\",\"command\":{\"shell\":\"id\"},\"result\":null}\n",
        ),
        (serve.clone(), "id\n"),
    ];
    for (remote, input) in &attempts {
        let out = with_input(net.ssh(&spec, "h2", remote), input);
        let (o, e) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(code(&out), REFUSED, "{remote:?}: {o} {e}");
        assert!(
            !o.contains("uid=") && !e.contains("uid="),
            "{remote:?}: {o} {e}"
        );
        assert!(e.contains("bkc-run serve j: refused"), "{remote:?}: {e}");
    }
}

/// A job that pushes h1:/srv/data/ to h2:/srv/dst/ and pulls h2:/srv/src/ to h1:/srv/pulled/;
/// on h2, /srv/elsewhere/ and /srv/secret are not the job's.
fn edges(net: &Net) -> JobSpec {
    write(&net.srv("h1").join("data/f"), "data");
    write(&net.srv("h2").join("src/g"), "source");
    write(&net.srv("h2").join("secret"), "not the job's");
    std::os::unix::fs::symlink("/srv/secret", net.srv("h2").join("src/leak")).unwrap();
    std::fs::create_dir_all(net.srv("h2").join("elsewhere")).unwrap();
    let mut spec = net.spec("edge", "h1");
    spec.syncs
        .push(sync(at("h1", "/srv/data/"), at("h2", "/srv/dst/")));
    spec.syncs
        .push(sync(at("h2", "/srv/src/"), at("h1", "/srv/pulled/")));
    own_locks(&mut spec);
    net.restrict(&mut spec);
    net.write_spec(&spec);
    spec
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn rsync_stays_inside_the_jobs_paths_in_its_direction() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    let spec = edges(&net);
    let ok = |args: &[&str]| {
        let out = net.rsync(&spec, args).output().unwrap();
        assert_eq!(code(&out), 0, "{args:?}: {}", text(&out.stderr));
    };
    ok(&["/srv/data/", &net.remote("h2", "/srv/dst/")]);
    ok(&[&net.remote("h2", "/srv/src/"), "/srv/pulled/"]);
    // A restore reads the job's own mirror back (bkc restore of a push job).
    ok(&[&net.remote("h2", "/srv/dst/"), "/srv/restored/"]);
    assert_eq!(
        std::fs::read_to_string(net.srv("h2").join("dst/f")).unwrap(),
        "data"
    );
    // A symlink in the source is sent as a symlink, never as what it points to.
    let leak = net.srv("h1").join("pulled/leak");
    assert!(
        std::fs::symlink_metadata(&leak)
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let refused: Vec<Vec<String>> = vec![
        // Writing elsewhere: another path, through `..`, an absolute path outside.
        vec!["/srv/data/".into(), net.remote("h2", "/srv/elsewhere/")],
        vec![
            "/srv/data/".into(),
            net.remote("h2", "/srv/dst/../elsewhere/"),
        ],
        vec!["/srv/data/".into(), net.remote("h2", "/etc/bkc-attack/")],
        vec!["/srv/data/".into(), net.remote("h2", "/srv/dst")],
        // Reading elsewhere.
        vec![net.remote("h2", "/srv/secret"), "/srv/stolen/".into()],
        vec![
            net.remote("h2", "/srv/src/../secret"),
            "/srv/stolen/".into(),
        ],
        vec![net.remote("h2", "/etc/shadow"), "/srv/stolen/".into()],
        // The wrong direction on the job's own paths.
        vec!["/srv/data/".into(), net.remote("h2", "/srv/src/")],
        // A destination's neighbour: reading back is for the job's own mirror only (restore).
        vec![net.remote("h2", "/srv/dst/../src/"), "/srv/stolen/".into()],
        // Options that delete, follow symlinks or name other paths.
        vec![
            "--remove-source-files".into(),
            net.remote("h2", "/srv/src/"),
            "/srv/stolen/".into(),
        ],
        vec![
            "--delete".into(),
            "/srv/data/".into(),
            net.remote("h2", "/srv/dst/"),
        ],
        vec![
            "-M--backup-dir=/srv/elsewhere".into(),
            "-b".into(),
            "/srv/data/".into(),
            net.remote("h2", "/srv/dst/"),
        ],
        vec![
            "-M-L".into(),
            net.remote("h2", "/srv/src/"),
            "/srv/stolen/".into(),
        ],
        vec![
            "-M--files-from=/etc/shadow".into(),
            net.remote("h2", "/srv/src/"),
            "/srv/stolen/".into(),
        ],
        vec![
            "-s".into(),
            "/srv/data/".into(),
            net.remote("h2", "/srv/dst/"),
        ],
    ];
    std::fs::write(net.srv("h2").join("dst/keep"), "kept").unwrap();
    for args in &refused {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = net.rsync(&spec, &a).output().unwrap();
        let e = text(&out.stderr);
        assert!(rsync_refused(&out), "{args:?}: {e}");
        assert!(e.contains("bkc-run serve edge: refused"), "{args:?}: {e}");
    }
    assert!(names(&net.srv("h2").join("elsewhere")).is_empty());
    assert!(!net.srv("h1").join("stolen").exists());
    assert_eq!(names(&net.srv("h2").join("src")), ["g", "leak"]);
    assert!(net.srv("h2").join("dst/keep").exists());
    let etc = net
        .cmd("h2", &["test", "-e", "/etc/bkc-attack"])
        .status()
        .unwrap();
    assert!(!etc.success());
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn a_symlink_swapped_into_a_path_never_redirects_rsync() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    let spec = edges(&net);
    let srv = net.srv("h2");
    let push = || {
        net.rsync(&spec, &["/srv/data/", &net.remote("h2", "/srv/dst/")])
            .output()
            .unwrap()
    };
    // Swapped in before the push: refused.
    std::fs::create_dir_all(srv.join("dst")).unwrap();
    std::fs::rename(srv.join("dst"), srv.join("dst.real")).unwrap();
    std::os::unix::fs::symlink("/srv/elsewhere", srv.join("dst")).unwrap();
    let out = push();
    assert!(rsync_refused(&out), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("symlink"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(srv.join("dst")).unwrap();
    std::fs::rename(srv.join("dst.real"), srv.join("dst")).unwrap();

    // Swapped back and forth while pushes run: each push lands in the real directory or is
    // refused, never in the one the symlink points to.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (srv, stop) = (srv.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = std::fs::rename(srv.join("dst"), srv.join("dst.real"));
                let _ = std::os::unix::fs::symlink("/srv/elsewhere", srv.join("dst"));
                std::thread::sleep(Duration::from_micros(300));
                let _ = std::fs::remove_file(srv.join("dst"));
                let _ = std::fs::rename(srv.join("dst.real"), srv.join("dst"));
                std::thread::sleep(Duration::from_micros(300));
                swaps += 1;
            }
            swaps
        })
    };
    let mut landed = 0;
    for i in 0..20 {
        write(&net.srv("h1").join("data/f"), &format!("round {i}"));
        if code(&push()) == 0 {
            landed += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let swaps = swapper.join().unwrap();
    eprintln!("{landed} of 20 pushes landed during {swaps} swaps");
    assert!(names(&srv.join("elsewhere")).is_empty());

    // A symlink planted inside the destination by one push is replaced, not followed, by the
    // next, which sends a directory under the same name.
    let data = net.srv("h1").join("data");
    std::os::unix::fs::symlink("/srv/elsewhere", data.join("planted")).unwrap();
    assert_eq!(code(&push()), 0);
    std::fs::remove_file(data.join("planted")).unwrap();
    write(&data.join("planted/x"), "through the link?");
    assert_eq!(code(&push()), 0);
    assert!(names(&srv.join("elsewhere")).is_empty());
    assert!(srv.join("dst/planted/x").exists());
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn append_only_snapshots_cannot_be_changed_or_pruned_by_the_job() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    write(&net.srv("h1").join("data/f"), "v1");
    let spec = push_snapshots(&net, "snap", 1, true);
    let r = net.run(&spec, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let snaps = net.srv("h2").join("snaps");
    let first = complete_snapshots(&snaps);
    assert_eq!(first.len(), 1);
    let s1 = first[0].clone();
    let f1 = snaps.join(&s1).join("f");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let before = (std::fs::read_to_string(&f1).unwrap(), mode(&f1));

    // The job cannot prune, rename a complete snapshot, write into one, or complete one over it.
    let refused = [
        format!(r#"{{"op":"snapshot-prune","root":"/srv/snaps/","current":"{s1}"}}"#),
        format!(
            r#"{{"op":"snapshot-rename","root":"/srv/snaps/","from":"{s1}","to":".partial-2020-01-01T000000Z"}}"#
        ),
        r#"{"op":"snapshot-list","root":"/srv/","create":false}"#.to_string(),
    ];
    for line in &refused {
        let out = ask(&net, &spec, "h2", line);
        assert_eq!(code(&out), REFUSED, "{line}: {}", text(&out.stderr));
    }
    for (extra, dest) in [
        ("--stats", format!("/srv/snaps/{s1}/")),
        ("--delete", "/srv/snaps/".to_string()),
        (
            "--inplace",
            "/srv/snaps/.partial-2026-01-01T000000Z/".to_string(),
        ),
        (
            "--link-dest=/srv",
            "/srv/snaps/.partial-2026-01-01T000000Z/".to_string(),
        ),
    ] {
        let out = net
            .rsync(&spec, &[extra, "/srv/data/", &net.remote("h2", &dest)])
            .output()
            .unwrap();
        assert!(rsync_refused(&out), "{extra} {dest}: {}", text(&out.stderr));
    }

    // Changing a complete snapshot through the hardlinks a partial shares with it: a first push
    // links the partial's file to the snapshot's, the peer then changes the file's mode and
    // pushes again. serve unlinks shared files before each push into a partial, so the mode
    // changes on a copy.
    let partial = "/srv/snaps/.partial-2026-01-01T000000Z/";
    let link_dest = format!("--link-dest=/srv/snaps/{s1}");
    let push = || {
        net.rsync(
            &spec,
            &[&link_dest, "/srv/data/", &net.remote("h2", partial)],
        )
        .output()
        .unwrap()
    };
    let out = push();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(
        std::fs::metadata(&f1).unwrap().nlink(),
        2,
        "linked to the partial"
    );
    let src = net.srv("h1").join("data/f");
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o4777)).unwrap();
    let out = push();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let p = snaps.join(".partial-2026-01-01T000000Z/f");
    assert_eq!(mode(&p), 0o4777, "the partial has the new mode");
    assert_eq!((std::fs::read_to_string(&f1).unwrap(), mode(&f1)), before);

    // Completing the partial under the first snapshot's name gives it a name of serve's own.
    let line = format!(
        r#"{{"op":"snapshot-complete","root":"/srv/snaps/","partial":".partial-2026-01-01T000000Z","name":"{s1}"}}"#
    );
    let out = ask(&net, &spec, "h2", &line);
    let reply = text(&out.stdout);
    assert!(!reply.contains(&format!("\"name\":\"{s1}\"")), "{reply}");
    assert_eq!((std::fs::read_to_string(&f1).unwrap(), mode(&f1)), before);

    // Runs keep adding snapshots; only the host's own prune removes any, by the retention.
    std::thread::sleep(Duration::from_millis(1100));
    let r = net.run(&spec, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let all = complete_snapshots(&snaps);
    assert!(all.len() >= 2 && all.contains(&s1), "{all:?}");
    let out = net
        .cmd("h2", &[runner(), "prune", "snap"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(complete_snapshots(&snaps), [all.last().unwrap().clone()]);
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn serve_prunes_by_its_own_retention_whatever_the_runner_says() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    write(&net.srv("h1").join("data/f"), "x");
    let spec = push_snapshots(&net, "keep", 2, false);
    net.write_spec(&spec);
    let snaps = net.srv("h2").join("snaps");
    let days = [
        "2026-03-01T000000Z",
        "2026-03-02T000000Z",
        "2026-03-03T000000Z",
        "2026-03-04T000000Z",
    ];
    for d in days {
        std::fs::create_dir_all(snaps.join(d)).unwrap();
    }
    // The runner names the oldest as its current snapshot: that one stays too, and what the
    // retention keeps (the newest two) can never go, whatever it says.
    for current in [days[0], "../../etc", days[3]] {
        let line =
            format!(r#"{{"op":"snapshot-prune","root":"/srv/snaps/","current":"{current}"}}"#);
        let out = ask(&net, &spec, "h2", &line);
        if current.contains('/') {
            assert_eq!(code(&out), REFUSED, "{}", text(&out.stderr));
            continue;
        }
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
        let left = complete_snapshots(&snaps);
        assert!(left.contains(&days[2].to_string()) && left.contains(&days[3].to_string()));
    }
    assert_eq!(complete_snapshots(&snaps), days[2..]);
    // Nor can it prune a root that is not its own.
    let out = ask(
        &net,
        &spec,
        "h2",
        r#"{"op":"snapshot-prune","root":"/srv/","current":"2026-03-04T000000Z"}"#,
    );
    assert_eq!(code(&out), REFUSED);
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn a_killed_runner_frees_the_remote_lock_at_once() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    let f = net.srv("h1").join("data/big");
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    let out = std::process::Command::new("head")
        .args(["-c", "20M", "/dev/urandom"])
        .output()
        .unwrap();
    std::fs::write(&f, out.stdout).unwrap();
    let mut spec = net.spec("slow", "h1");
    let mut s = sync(at("h1", "/srv/data/"), at("h2", "/srv/dst/"));
    s.bwlimit = Some("2000".into());
    spec.syncs.push(s);
    own_locks(&mut spec);
    net.restrict(&mut spec);
    let mut live = Live::new(net.spawn(net.runner(&spec, &[])));
    live.wait_event("sync-start", 20);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !net.lock_free("h2", &lock_path("slow")),
        "held while it runs"
    );
    signal(live.pid(), libc::SIGKILL);
    let _ = live.finish(5);
    assert!(
        Net::eventually(3.0, || net.lock_free("h2", &lock_path("slow"))),
        "the far lock must go with the session"
    );
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn an_append_only_push_starting_in_the_second_its_last_snapshot_was_named_succeeds() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    write(&net.srv("h1").join("data/f"), "new");
    let spec = push_snapshots(&net, "same-second", 2, true);
    // The destination named the last run's snapshot by its own clock, in the very second this
    // run starts by the runner's: the runner's name is only its partial's, so nothing clashes.
    let last = "2026-03-01T120000Z";
    let old = net.srv("h2").join("snaps").join(last).join("f");
    write(&old, "old");
    // Its own time, as a real run's would be: with the new file's size and second, rsync's
    // quick check would take it for the same file and link it into the new snapshot.
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_772_366_400))
        .unwrap();
    let r = net.run(&spec, &[], &[("BKC_RUN_NOW", "2026-03-01T12:00:00Z")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let snaps = net.srv("h2").join("snaps");
    let made = r.events("snapshot")[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(made, last);
    assert_eq!(complete_snapshots(&snaps), [last.to_string(), made.clone()]);
    assert_eq!(
        std::fs::read_to_string(snaps.join(last).join("f")).unwrap(),
        "old"
    );
    assert_eq!(
        std::fs::read_to_string(snaps.join("latest/f")).unwrap(),
        "new"
    );
}
