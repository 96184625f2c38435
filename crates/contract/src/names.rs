//! The names and places that bkc, its deploy scripts and bkc-run agree on, each written once:
//! what a host or job may be called, what an address may be, the units and files a job has on
//! its host, how a pinned key is looked up, and how a word is quoted for a remote shell.

/// The pinned host keys runners read, on every host that has jobs.
pub const KNOWN_HOSTS_PATH: &str = "/etc/bkc/known_hosts";
/// Where a host's systemd units live.
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// Where the job specs live.
pub const JOBS_DIR: &str = "/etc/bkc/jobs";
/// Where each job's own SSH key lives on the job's host (`<job>`, `<job>.pub`), with
/// `ssh-keys "restricted"`. Made by `bkc apply` on the host; never part of a generation.
pub const KEYS_DIR: &str = "/etc/bkc/keys";
/// Where the authorized keys bkc writes live on a host the jobs reach, one file per user.
pub const AUTHORIZED_KEYS_DIR: &str = "/etc/bkc/authorized_keys";
/// The sshd drop-in that makes sshd read [`AUTHORIZED_KEYS_DIR`]`/%u` as well.
pub const SSHD_DROPIN_PATH: &str = "/etc/ssh/sshd_config.d/bkc.conf";
/// The `AuthorizedKeysFile` entry of the drop-in (`%u`: sshd puts the user's name there).
pub const AUTHORIZED_KEYS_PATTERN: &str = "/etc/bkc/authorized_keys/%u";

/// The longest host or job name: it becomes part of unit and file names.
pub const MAX_NAME: usize = 200;

/// Whether `s` is a valid host, job or tag name: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most
/// [`MAX_NAME`] bytes. Such a name is safe as a file name, a unit name and a shell word.
pub fn is_valid_name(s: &str) -> bool {
    s.len() <= MAX_NAME
        && s.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Why `s` cannot be a host's address, if it cannot. An address is a host name or IPv4
/// address (letters, digits, `-`, `_`, `.`; not starting with `-` or `.`), or an IPv6 address
/// in brackets. Anything else is refused: a `/` would make rsync copy into a local directory
/// instead of to the host, a leading `-` would make ssh read an option.
pub fn address_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() || s.len() > 253 {
        return Some("an address is 1 to 253 characters long");
    }
    if let Some(inner) = s.strip_prefix('[') {
        let ok = inner.strip_suffix(']').is_some_and(|v6| {
            v6.contains(':')
                && v6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        });
        return (!ok).then_some("an IPv6 address is written in brackets, such as [2001:db8::5]");
    }
    if s.starts_with(['-', '.']) {
        return Some("an address cannot start with `-` or `.`");
    }
    if s.contains(':') {
        return Some(
            "write an IPv6 address in brackets, such as [2001:db8::5], and the port as port=",
        );
    }
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    (!ok).then_some("an address is a host name, an IPv4 address or a bracketed IPv6 address")
}

/// Whether `s` can be an ssh user name: not empty, not an option (`-`), and one word with no
/// `@` or control character.
pub fn is_valid_user(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@')
}

/// Why a path cannot be handed to ssh as a file it reads (the identity, the known_hosts file),
/// if it cannot: rsync splits its `-e` command itself, with quotes but no escape for a quote, so
/// a quote in the path cannot be passed (and a quote and a space could end the word and hand ssh
/// an option of its own); and ssh expands `%` tokens in these paths (`%h` is the host), so it
/// would read another file than the one named.
pub fn ssh_path_problem(path: &str) -> Option<&'static str> {
    if path.contains(['\'', '"']) {
        Some("contains a quote, which rsync cannot pass to ssh")
    } else if path.contains('%') {
        Some("contains `%`, which ssh reads as the start of a token")
    } else {
        None
    }
}

/// Whether `s` can be both a user's name and a file name, as the authorized keys of
/// [`AUTHORIZED_KEYS_DIR`] need: letters, digits, `_`, `.` and `-`, not starting with `-` or `.`.
pub fn is_file_safe_user(s: &str) -> bool {
    is_valid_user(s)
        && s.len() <= MAX_NAME
        && !s.starts_with('.')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The job's own SSH key on its host.
pub fn key_path(job: &str) -> String {
    format!("{KEYS_DIR}/{job}")
}

/// The authorized keys bkc writes for `user` on a host.
pub fn authorized_keys_path(user: &str) -> String {
    format!("{AUTHORIZED_KEYS_DIR}/{user}")
}

/// The address as ssh takes it on its command line: without an IPv6 address's brackets.
pub fn ssh_host(address: &str) -> &str {
    address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(address)
}

/// The name a host's pinned key is written under in a known_hosts file and looked up by
/// (`HostKeyAlias`): the address, and its port when it is not 22, as ssh itself writes them.
pub fn known_hosts_pattern(address: &str, port: u16) -> String {
    let host = ssh_host(address);
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `bkc-<job>`: the job's units without their suffix.
pub fn unit_base(job: &str) -> String {
    format!("bkc-{job}")
}

/// `bkc-notify@<job>`: the unit that runs the job's `notify` commands. An instance name, so no
/// job's own unit (whose name has no `@`) can share it.
pub fn notify_unit_base(job: &str) -> String {
    format!("bkc-notify@{job}")
}

/// `bkc-fresh-<job>`: the freshness check, on a destination, of the data the job sends there.
pub fn fresh_unit_base(job: &str) -> String {
    format!("bkc-fresh-{job}")
}

/// The job's service unit, `bkc-<job>.service`.
pub fn service_unit(job: &str) -> String {
    format!("bkc-{job}.service")
}

/// The job's timer unit, `bkc-<job>.timer`.
pub fn timer_unit(job: &str) -> String {
    format!("bkc-{job}.timer")
}

/// `bkc-prune@<job>`: the units that prune a job's append-only snapshots on their host, without
/// their suffix. The `@` keeps them apart from every job's own units (no job name has one); the
/// file names the instance itself, so no template unit is needed.
pub fn prune_unit_base(job: &str) -> String {
    format!("bkc-prune@{job}")
}

/// `bkc-verify@<job>`: the units of the job's scheduled verify, on the job's host, without their
/// suffix. An instance name like `bkc-prune@<job>`, so no job's own unit can share it.
pub fn verify_unit_base(job: &str) -> String {
    format!("bkc-verify@{job}")
}

/// `bkc-watch@<job>`: the watcher of a job's `watch` paths (`.service`) and the path unit that
/// starts the job when the watcher says so (`.path`), without their suffix. An instance name
/// like `bkc-verify@<job>`, so no job's own unit can share it.
pub fn watch_unit_base(job: &str) -> String {
    format!("bkc-watch@{job}")
}

/// Where the watchers write the files that start their jobs (see [`watch_trigger`]).
pub const WATCH_DIR: &str = "/run/bkc/watch";

/// The file `bkc-run watch` writes to start `job`, which `bkc-watch@<job>.path` watches.
pub fn watch_trigger(job: &str) -> String {
    format!("{WATCH_DIR}/{job}")
}

/// The directory, inside a source, where its file-system snapshots are taken (`source-snapshot`):
/// bkc's own, never data, so every sync excludes it.
pub const SOURCE_SNAPSHOTS: &str = ".bkc-snapshots";

/// The directory of a source's snapshots: `<source>/.bkc-snapshots`.
pub fn source_snapshot_dir(source: &str) -> String {
    format!("{}/{SOURCE_SNAPSHOTS}", source.trim_end_matches('/'))
}

/// The name of the snapshot of `job`'s sync `index` in [`source_snapshot_dir`]: one per job and
/// sync, so a leftover of a killed run is found by name.
pub fn source_snapshot_name(job: &str, index: usize) -> String {
    format!("{job}.{index}")
}

/// A ZFS dataset name as `zfs snapshot` takes it (no option, no snapshot of its own): the
/// compiler's rule for `source-snapshot "zfs" dataset=`, which the runner checks again.
pub fn is_zfs_dataset(d: &str) -> bool {
    d.split('/').all(|part| {
        !part.is_empty()
            && !part.starts_with('-')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
    })
}

/// An LVM `VG/LV` as lvcreate takes it.
pub fn is_lvm_volume(v: &str) -> bool {
    let name = |n: &str| {
        !n.is_empty()
            && !n.starts_with('-')
            && n != "."
            && n != ".."
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+_.-".contains(c))
    };
    v.split_once('/')
        .is_some_and(|(vg, lv)| name(vg) && name(lv))
}

/// lvcreate's `--size`: a number with an optional unit, or a percentage of the origin.
pub fn is_lvm_size(s: &str) -> bool {
    if let Some(n) = s.strip_suffix("%ORIGIN") {
        return n.parse::<u8>().is_ok_and(|p| (1..=100).contains(&p));
    }
    let n = s.trim_end_matches(|c: char| "bBsSkKmMgGtTpPeE".contains(c));
    s.len() - n.len() <= 1
        && n.chars().all(|c| c.is_ascii_digit() || c == '.')
        && n.parse::<f64>().is_ok_and(|x| x > 0.0)
}

/// Where `take-source-snapshots` mounts ZFS and LVM source snapshots: a directory only root can
/// write, never inside the source (whose owner could put a symlink where root mounts).
pub const MOUNTED_SNAPSHOTS_DIR: &str = "/run/bkc/source-snapshots";

/// The mount point of `job`'s sync `index`'s ZFS or LVM snapshot.
pub fn mounted_snapshot_path(job: &str, index: usize) -> String {
    format!(
        "{MOUNTED_SNAPSHOTS_DIR}/{}",
        source_snapshot_name(job, index)
    )
}

/// The job's spec on its host.
pub fn spec_path(job: &str) -> String {
    format!("{JOBS_DIR}/{job}.json")
}

/// The job a bkc file belongs to, if any: its units and its spec.
pub fn job_of(path: &str) -> Option<&str> {
    if let Some(unit) = path
        .strip_prefix(UNIT_DIR)
        .and_then(|u| u.strip_prefix("/bkc-"))
    {
        let unit = unit
            .strip_suffix(".service")
            .or_else(|| unit.strip_suffix(".timer"))
            .or_else(|| unit.strip_suffix(".path"))?;
        // A job's notification, verify and watch units are part of the job.
        return Some(
            unit.strip_prefix("notify@")
                .or_else(|| unit.strip_prefix("verify@"))
                .or_else(|| unit.strip_prefix("watch@"))
                .unwrap_or(unit),
        );
    }
    path.strip_prefix(JOBS_DIR)?
        .strip_prefix('/')?
        .strip_suffix(".json")
}

/// The unit a path is, if it is one that a deploy enables and starts rather than leaves to be
/// started (`/etc/systemd/system/<name>.timer` -> `<name>.timer`): a timer, a path unit, or a
/// watcher (`bkc-watch@<job>.service`), which runs for as long as the host does.
pub fn started_unit_of(path: &str) -> Option<&str> {
    path.strip_prefix(UNIT_DIR)?
        .strip_prefix('/')
        .filter(|u| !u.contains('/'))
        .filter(|u| {
            u.ends_with(".timer")
                || u.ends_with(".path")
                || (u.starts_with("bkc-watch@") && u.ends_with(".service"))
        })
}

/// Quote `s` as one word for a POSIX shell. Words made only of characters no shell treats
/// specially stay bare, so that logged command lines stay readable.
pub fn shell_quote(s: &str) -> String {
    let bare = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'-' | b'.' | b'/' | b':' | b'@' | b'%' | b'+' | b'=' | b','
                )
        });
    if bare {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["desktop", "backup_a", "a-to-b", "web1.lan", "0"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "-x", ".x", "a b", "a/b", "a;b", &"x".repeat(201)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        for ok in [
            "desktop.lan",
            "10.0.0.5",
            "backup_a",
            "[2001:db8::5]",
            "[::1]",
        ] {
            assert_eq!(address_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "tmp/x",
            "-oProxyCommand=sh",
            ".hidden",
            "a b",
            "2001:db8::5",
            "host:22",
            "[nothex]",
            "[2001:db8::5",
            "user@host",
            "a\u{1b}b",
        ] {
            assert!(address_problem(bad).is_some(), "{bad}");
        }
        assert_eq!(ssh_host("[::1]"), "::1");
        assert_eq!(known_hosts_pattern("[::1]", 22), "::1");
        assert_eq!(known_hosts_pattern("[::1]", 2222), "[::1]:2222");
        assert_eq!(known_hosts_pattern("h.lan", 2222), "[h.lan]:2222");
    }

    #[test]
    fn units_and_paths() {
        assert_eq!(
            job_of("/etc/systemd/system/bkc-a-to-b.timer"),
            Some("a-to-b")
        );
        assert_eq!(job_of("/etc/bkc/jobs/a-to-b.json"), Some("a-to-b"));
        assert_eq!(job_of("/etc/bkc/known_hosts"), None);
        assert_eq!(
            job_of("/etc/systemd/system/bkc-notify@x.service"),
            Some("x")
        );
        assert_eq!(job_of("/etc/systemd/system/bkc-verify@x.timer"), Some("x"));
        assert_eq!(verify_unit_base("x"), "bkc-verify@x");
        assert_eq!(
            started_unit_of("/etc/systemd/system/bkc-x.timer"),
            Some("bkc-x.timer")
        );
        assert_eq!(started_unit_of("/etc/systemd/system/bkc-x.service"), None);
        assert_eq!(
            started_unit_of("/etc/systemd/system/bkc-watch@x.service"),
            Some("bkc-watch@x.service")
        );
        assert_eq!(
            started_unit_of("/etc/systemd/system/bkc-watch@x.path"),
            Some("bkc-watch@x.path")
        );
        assert_eq!(job_of("/etc/systemd/system/bkc-watch@x.path"), Some("x"));
        assert_eq!(job_of("/etc/systemd/system/bkc-watch@x.service"), Some("x"));
        assert_eq!(watch_trigger("x"), "/run/bkc/watch/x");
        assert_eq!(shell_quote("/etc/bkc/x.json"), "/etc/bkc/x.json");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(key_path("a-to-b"), "/etc/bkc/keys/a-to-b");
        assert_eq!(
            authorized_keys_path("backup"),
            "/etc/bkc/authorized_keys/backup"
        );
    }

    #[test]
    fn volume_manager_names_take_no_option() {
        for ok in ["tank", "tank/home", "tank/my-data.v2:x"] {
            assert!(is_zfs_dataset(ok), "{ok}");
        }
        for bad in [
            "",
            "-o",
            "tank//home",
            "/tank",
            "tank/",
            "tank@s",
            "tank home",
        ] {
            assert!(!is_zfs_dataset(bad), "{bad}");
        }
        assert!(is_lvm_volume("vg0/home+x_y.z-1"));
        for bad in ["vg0", "-vg/x", "vg/-x", "vg/..", "vg/a/b", "vg/a b"] {
            assert!(!is_lvm_volume(bad), "{bad}");
        }
        for ok in ["5G", "5.5g", "512", "20%ORIGIN", "100%ORIGIN"] {
            assert!(is_lvm_size(ok), "{ok}");
        }
        for bad in [
            "",
            "G",
            "0",
            "1e5",
            "5GG",
            "-5G",
            "101%ORIGIN",
            "0%ORIGIN",
            "--yes",
        ] {
            assert!(!is_lvm_size(bad), "{bad}");
        }
    }

    #[test]
    fn users_that_name_files() {
        for ok in ["root", "backup", "bk_1", "svc.backup", "a-b"] {
            assert!(is_file_safe_user(ok), "{ok}");
        }
        for bad in ["", ".", "..", ".x", "-x", "a/b", "a b", "DOM\\user", "a@b"] {
            assert!(!is_file_safe_user(bad), "{bad}");
        }
    }
}
