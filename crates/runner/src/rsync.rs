//! rsync: the argv (never through a local shell), exit code classes and `--stats` figures.

/// The pattern of every freshness marker's name.
const FRESH_MARKERS: &str = ".bkc-fresh.*";

use bkc_contract::event::SyncClass;
use bkc_contract::spec::{JobSpec, Sync};

use super::ssh;

/// What one rsync exit code means for the run (see [`SyncClass`]).
pub fn classify(code: i32) -> SyncClass {
    match code {
        0 => SyncClass::Ok,
        24 => SyncClass::Warning,
        10 | 12 | 30 | 35 | 255 => SyncClass::Network,
        _ => SyncClass::Failed,
    }
}

/// Where the data goes in this attempt: the sync's own dest, or a snapshot's partial directory.
pub struct Target<'a> {
    pub dest_path: &'a str,
    pub link_dest: Option<&'a str>,
    /// The target is an interrupted run's partial snapshot: files since deleted at the source
    /// must go, or the snapshot would not be an image of the source.
    pub resumed: bool,
}

/// rsync's arguments (without the program name). Errors are spec errors.
pub fn argv(
    spec: &JobSpec,
    sync: &Sync,
    target: &Target,
    dry_run: bool,
) -> Result<Vec<String>, String> {
    let src_local = spec.is_local(&sync.source.host);
    let dst_local = spec.is_local(&sync.dest.host);
    if !src_local && !dst_local {
        return Err(format!(
            "sync from {}:{} to {}:{}: rsync cannot copy between two remote hosts",
            sync.source.host, sync.source.path, sync.dest.host, sync.dest.path
        ));
    }
    let mut a: Vec<String> = sync.opts.clone();
    a.push("--stats".into());
    // rsync creates only the last directory of the destination; a first run into
    // `/srv/backup/desktop/music/` must not fail because `desktop` is new (rsync >= 3.2.3).
    a.push("--mkpath".into());
    a.extend(sync.exclude.iter().map(|e| format!("--exclude={e}")));
    // Freshness markers (`.bkc-fresh.<job>`, left in a destination for its host's check) are
    // bkc's own, not data: a chain's next hop must not copy them into its snapshots, and an
    // excluded file is also never deleted by `--delete`.
    a.push(format!("--exclude={FRESH_MARKERS}"));
    // Source snapshots (`.bkc-snapshots/`) are bkc's too: a sync of a directory that holds one
    // would copy a whole snapshot of it.
    a.push(format!(
        "--exclude={}/",
        bkc_contract::names::SOURCE_SNAPSHOTS
    ));
    if let Some(bw) = &sync.bwlimit {
        a.push(format!("--bwlimit={bw}"));
    }
    if dry_run {
        a.push("--dry-run".into());
    }
    if let Some(l) = target.link_dest {
        a.push(format!("--link-dest={l}"));
    }
    // The compiler decided whether `opts` delete (`deletes`); guessing from option names here
    // would take `--delay-updates` for a deletion.
    if target.resumed && !sync.deletes {
        a.push("--delete".into());
    }
    let remote_host = if src_local {
        &sync.dest.host
    } else {
        &sync.source.host
    };
    let (src, dst) = if src_local && dst_local {
        (sync.source.path.clone(), target.dest_path.to_string())
    } else {
        let ep = ssh::endpoint(spec, remote_host)?;
        // The far side is `bkc-run serve`, which checks rsync's server arguments and starts
        // rsync itself. rsync (3.2.4 and later) escapes each argument for a shell, which serve
        // reads the same way; it never gets `-s`, which would send the paths where serve
        // cannot check them.
        a.push(format!("--rsync-path={} rsync", ssh::serve_line(spec, ep)));
        a.push("-e".into());
        a.push(ssh::rsync_rsh(spec, ep));
        if src_local {
            (
                sync.source.path.clone(),
                ssh::rsync_remote(ep, target.dest_path),
            )
        } else {
            (
                ssh::rsync_remote(ep, &sync.source.path),
                target.dest_path.to_string(),
            )
        }
    };
    a.push(src);
    a.push(dst);
    Ok(a)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub sent: u64,
    pub received: u64,
}

/// Parse `--stats` output. Figures may carry thousands separators or, with `-h`, a unit suffix.
pub fn parse_stats(out: &str) -> Stats {
    let mut s = Stats::default();
    for line in out.lines() {
        if let Some(v) = line.strip_prefix("Total bytes sent:") {
            s.sent = number(v);
        } else if let Some(v) = line.strip_prefix("Total bytes received:") {
            s.received = number(v);
        }
    }
    s
}

fn number(v: &str) -> u64 {
    let tok = v.split_whitespace().next().unwrap_or("");
    let (digits, mult) = match tok.chars().last() {
        Some('K') => (&tok[..tok.len() - 1], 1e3),
        Some('M') => (&tok[..tok.len() - 1], 1e6),
        Some('G') => (&tok[..tok.len() - 1], 1e9),
        Some('T') => (&tok[..tok.len() - 1], 1e12),
        _ => (tok, 1.0),
    };
    if mult == 1.0 {
        digits
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0)
    } else {
        digits
            .replace(',', "")
            .parse::<f64>()
            .map(|f| (f * mult) as u64)
            .unwrap_or(0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bkc_contract::spec::{Endpoint, Location};
    use std::collections::BTreeMap;

    pub(crate) fn spec() -> JobSpec {
        let mut hosts = BTreeMap::new();
        hosts.insert(
            "b".into(),
            Endpoint {
                address: "fd00::b".into(),
                port: 2222,
                user: "bk".into(),
                runner: "/usr/local/bin/bkc-run".into(),
            },
        );
        JobSpec {
            version: 1,
            job: "j".into(),
            host: "a".into(),
            state_dir: "/var/lib/bkc".into(),
            metrics_dir: None,
            known_hosts: "/etc/bkc/known hosts".into(),
            identity: Some("/etc/bkc/id".into()),
            hosts,
            every: None,
            timeout_secs: None,
            nice: None,
            io_class: None,
            retries: 0,
            retry_delay_secs: 1,
            locks: vec![],
            lock_files: vec![],
            wait_files: vec![],
            hooks: vec![],
            syncs: vec![],
            notify: vec![],
            ping: None,
            fresh_markers: vec![],
            restore_to: vec![],
            verify: None,
            slot: None,
            watch: None,
        }
    }

    fn sync(src: (&str, &str), dst: (&str, &str)) -> Sync {
        Sync {
            source: Location {
                host: src.0.into(),
                path: src.1.into(),
            },
            dest: Location {
                host: dst.0.into(),
                path: dst.1.into(),
            },
            opts: vec!["-a".into(), "--delete".into()],
            exclude: vec![".cache".into(), "a b".into()],
            bwlimit: Some("5M".into()),
            deletes: true,
            allow_empty_source: false,
            snapshot: None,
            source_snapshot: None,
        }
    }

    #[test]
    fn push_argv() {
        let s = sync(("a", "/home/x y/"), ("b", "/srv/dst dir/"));
        let t = Target {
            dest_path: "/srv/dst dir/.partial-T/",
            link_dest: Some("/srv/dst dir/T0"),
            resumed: false,
        };
        let a = argv(&spec(), &s, &t, true).unwrap();
        assert_eq!(
            a,
            vec![
                "-a",
                "--delete",
                "--stats",
                "--mkpath",
                "--exclude=.cache",
                "--exclude=a b",
                "--exclude=.bkc-fresh.*",
                "--exclude=.bkc-snapshots/",
                "--bwlimit=5M",
                "--dry-run",
                "--link-dest=/srv/dst dir/T0",
                "--rsync-path=/usr/local/bin/bkc-run serve j rsync",
                "-e",
                "ssh -i /etc/bkc/id -o 'UserKnownHostsFile=/etc/bkc/known hosts' -o GlobalKnownHostsFile=/dev/null -o 'HostKeyAlias=[fd00::b]:2222' -o ForwardAgent=no -o ClearAllForwardings=yes -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=15 -o ServerAliveCountMax=3 -p 2222",
                "/home/x y/",
                "bk@[fd00::b]:/srv/dst dir/.partial-T/",
            ]
        );
    }

    #[test]
    fn pull_local_and_invalid() {
        let s = sync(("b", "/srv/src/"), ("a", "/backup/"));
        let a = argv(
            &spec(),
            &s,
            &Target {
                dest_path: "/backup/",
                link_dest: None,
                resumed: false,
            },
            false,
        )
        .unwrap();
        assert_eq!(
            a[a.len() - 2..],
            ["bk@[fd00::b]:/srv/src/".to_string(), "/backup/".to_string()]
        );
        let s = sync(("a", "/x/"), ("a", "/y/"));
        let a = argv(
            &spec(),
            &s,
            &Target {
                dest_path: "/y/",
                link_dest: None,
                resumed: false,
            },
            false,
        )
        .unwrap();
        assert!(!a.contains(&"-e".to_string()));
        let s = sync(("b", "/x/"), ("c", "/y/"));
        assert!(
            argv(
                &spec(),
                &s,
                &Target {
                    dest_path: "/y/",
                    link_dest: None,
                    resumed: false,
                },
                false
            )
            .is_err()
        );
    }

    #[test]
    fn resumed_snapshot_deletes_unless_the_sync_already_does() {
        let t = Target {
            dest_path: "/y/.partial-T/",
            link_dest: None,
            resumed: true,
        };
        let dels = |a: &[String]| a.iter().filter(|o| *o == "--delete").count();
        // `--delay-updates` starts like a deleting option but deletes nothing.
        let mut s = sync(("a", "/x/"), ("a", "/y/"));
        s.opts = vec!["-a".into(), "--delay-updates".into()];
        s.deletes = false;
        assert_eq!(dels(&argv(&spec(), &s, &t, false).unwrap()), 1);
        // A sync that deletes already gets no second `--delete`.
        s.opts = vec!["-a".into(), "--delete-after".into()];
        s.deletes = true;
        assert_eq!(dels(&argv(&spec(), &s, &t, false).unwrap()), 0);
        // Not resumed: nothing added.
        s.opts = vec!["-a".into()];
        s.deletes = false;
        let fresh = Target {
            resumed: false,
            ..t
        };
        assert_eq!(dels(&argv(&spec(), &s, &fresh, false).unwrap()), 0);
    }

    #[test]
    fn classes_and_stats() {
        assert_eq!(classify(0), SyncClass::Ok);
        assert_eq!(classify(24), SyncClass::Warning);
        for c in [10, 12, 30, 35, 255] {
            assert_eq!(classify(c), SyncClass::Network);
        }
        for c in [1, 2, 11, 23, 137] {
            assert_eq!(classify(c), SyncClass::Failed);
        }
        let out = "Number of files: 3\nTotal bytes sent: 1,234,567\nTotal bytes received: 89\n\nsent 1,234,567 bytes";
        assert_eq!(
            parse_stats(out),
            Stats {
                sent: 1_234_567,
                received: 89
            }
        );
        assert_eq!(parse_stats("Total bytes sent: 1.50K\n").sent, 1500);
        assert_eq!(parse_stats("garbage"), Stats::default());
    }
}
