//! `source-snapshot "zfs"` and `"lvm"`: a snapshot of the dataset or volume mounted at the source,
//! taken by the volume manager's own programs outside the job's sandbox.
//!
//! Neither can be taken inside the sandbox: creating the snapshot needs the volume manager's
//! device and CAP_SYS_ADMIN, and the snapshot must be mounted to be read. So the unit runs
//! `bkc-run take-source-snapshots <spec>` as root before the run, after the leftovers are dropped:
//! it takes the job's locks as a run does (no job of the chain is halfway through writing the
//! source then), takes each snapshot (`zfs snapshot`, `lvcreate --snapshot`), mounts it read-only
//! and lets the locks go. The run copies from the mount: a consistent moment of the source. A
//! missing mount fails the sync. `drop-source-snapshots` unmounts and destroys them.
//!
//! The mount point is `/run/bkc/source-snapshots/<job>.<sync>`, a directory only root can write,
//! never a place inside the source: a user who owns the source could put a symlink there, and
//! root's mount would follow it onto /etc. Every program gets `--` before its names, which the
//! runner's spec check has already held to the compiler's rules.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};

use bkc_contract::names::{MOUNTED_SNAPSHOTS_DIR, mounted_snapshot_path, source_snapshot_name};
use bkc_contract::spec::{JobSpec, SourceSnapshot, Sync};

use super::freeze::Frozen;

/// A sync's source snapshot when it is a ZFS or LVM one, taken outside the sandbox.
pub fn kind(sync: &Sync) -> Option<&SourceSnapshot> {
    sync.source_snapshot
        .as_ref()
        .filter(|k| matches!(k, SourceSnapshot::Zfs { .. } | SourceSnapshot::Lvm { .. }))
}

/// Whether `path` is a mount point: a directory on another device than its parent.
fn is_mount(path: &str) -> bool {
    let parent = std::path::Path::new(path).parent();
    match (
        std::fs::symlink_metadata(path),
        parent.map(std::fs::metadata),
    ) {
        (Ok(m), Some(Ok(p))) => m.is_dir() && m.dev() != p.dev(),
        _ => false,
    }
}

/// Sync `index`'s snapshot, mounted by `take-source-snapshots` before the run.
pub fn mounted(spec: &JobSpec, index: usize, sync: &Sync) -> Result<Frozen, String> {
    let at = mounted_snapshot_path(&spec.job, index);
    if !is_mount(&at) {
        let kind = sync.source_snapshot.as_ref().map_or("", |k| k.kind());
        return Err(format!(
            "source-snapshot \"{kind}\": no snapshot is mounted at {at}; the unit takes it before the run (`bkc-run take-source-snapshots`), and says why it could not in the journal: journalctl -u {}",
            bkc_contract::names::service_unit(&spec.job)
        ));
    }
    Ok(Frozen {
        dir: MOUNTED_SNAPSHOTS_DIR.to_string(),
        name: source_snapshot_name(&spec.job, index),
        own: false,
    })
}

/// A program of the host's volume manager (or mount), run to its end: what it printed, or what
/// it said when it failed.
fn program(argv: &[String]) -> Result<String, String> {
    let Some((prog, args)) = argv.split_first() else {
        return Err("no program".into());
    };
    let out = std::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    Err(format!(
        "`{}` failed ({}): {}",
        argv.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| (*s).to_string()).collect()
}

/// The LVM volume that is snapshot `name`: LVM reserves names that begin with "snapshot", which
/// a job may be called.
fn lv_name(name: &str) -> String {
    format!("bkc-{name}")
}

/// The ZFS snapshot or LVM volume that is snapshot `name` of `kind`.
fn snapshot_id(kind: &SourceSnapshot, name: &str) -> String {
    match kind {
        SourceSnapshot::Zfs { dataset } => format!("{dataset}@{name}"),
        SourceSnapshot::Lvm { volume, .. } => {
            let vg = volume.split_once('/').map_or(volume.as_str(), |(vg, _)| vg);
            format!("{vg}/{}", lv_name(name))
        }
        SourceSnapshot::Btrfs => name.to_string(),
    }
}

/// The commands that take snapshot `name` of `kind` and mount it read-only at `at`; `fstype` is
/// the source's file system (an XFS snapshot shares its origin's UUID, which XFS refuses to
/// mount twice without `nouuid`). A size in `%ORIGIN` is lvcreate's `--extents`, not `--size`.
fn take_commands(kind: &SourceSnapshot, name: &str, at: &str, fstype: &str) -> Vec<Vec<String>> {
    let id = snapshot_id(kind, name);
    match kind {
        SourceSnapshot::Zfs { .. } => vec![
            words(&["zfs", "snapshot", "--", &id]),
            words(&["mount", "-t", "zfs", "-o", "ro", "--", &id, at]),
        ],
        SourceSnapshot::Lvm { volume, size } => {
            let room = if size.ends_with("%ORIGIN") {
                "--extents"
            } else {
                "--size"
            };
            let opts = if fstype == "xfs" { "ro,nouuid" } else { "ro" };
            let lv = lv_name(name);
            vec![
                words(&[
                    "lvcreate",
                    "--snapshot",
                    room,
                    size,
                    "--name",
                    &lv,
                    "--",
                    volume,
                ]),
                words(&["mount", "-o", opts, "--", &format!("/dev/{id}"), at]),
            ]
        }
        SourceSnapshot::Btrfs => Vec::new(),
    }
}

/// The command that describes snapshot `name` (it fails when there is none), and the one that
/// destroys it.
fn describe_and_destroy(kind: &SourceSnapshot, name: &str) -> (Vec<String>, Vec<String>) {
    let id = snapshot_id(kind, name);
    match kind {
        SourceSnapshot::Zfs { .. } => (
            words(&[
                "zfs", "list", "-H", "-t", "snapshot", "-o", "name", "--", &id,
            ]),
            words(&["zfs", "destroy", "--", &id]),
        ),
        _ => (
            words(&["lvs", "--noheadings", "-o", "lv_attr,origin", "--", &id]),
            words(&["lvremove", "--yes", "--", &id]),
        ),
    }
}

/// Whether what `describe_and_destroy`'s first command printed is bkc's snapshot of `kind`: for
/// LVM a snapshot volume (attributes beginning with `s`) of the configured origin, so that a
/// volume that merely has the name is never removed.
fn is_ours(kind: &SourceSnapshot, described: &str) -> bool {
    match kind {
        SourceSnapshot::Lvm { volume, .. } => {
            let origin = volume.split_once('/').map_or("", |(_, lv)| lv);
            let mut w = described.split_whitespace();
            matches!((w.next(), w.next()), (Some(attr), Some(o)) if attr.starts_with('s') && o == origin)
        }
        _ => !described.is_empty(),
    }
}

/// The mount points in /proc/self/mountinfo (its fifth field, with `\NNN` escapes undone).
fn mount_points() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_octal)
        .collect()
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why the source is not the root of what `kind` snapshots, alone, if it is not: the snapshot is
/// of the whole dataset or volume, whose contents the sync copies, and holds nothing mounted
/// below it (a child dataset, another disk), which would arrive as an empty directory, and a
/// `--delete` would then remove it from the copy.
fn origin_problem(kind: &SourceSnapshot, source: &str, mounts: &[String]) -> Option<String> {
    let below = format!("{source}/");
    if let Some(m) = mounts.iter().find(|m| m.starts_with(&below)) {
        return Some(format!(
            "{m} is mounted below {source}; a snapshot would hold it as an empty directory: give it a sync of its own, or exclude it and drop `source-snapshot`"
        ));
    }
    match kind {
        SourceSnapshot::Zfs { dataset } => {
            let at = program(&words(&[
                "zfs",
                "list",
                "-H",
                "-o",
                "mountpoint",
                "--",
                dataset,
            ]));
            match at {
                Ok(m) if m == source => None,
                Ok(m) => Some(format!(
                    "{source} is not where dataset {dataset} is mounted ({m})"
                )),
                Err(e) => Some(e),
            }
        }
        SourceSnapshot::Lvm { volume, .. } => {
            let dev = std::fs::metadata(format!("/dev/{volume}")).map(|m| m.rdev());
            let src = std::fs::metadata(source).map(|m| m.dev());
            match (dev, src) {
                (Ok(d), Ok(s)) if d == s && mounts.iter().any(|m| m == source) => None,
                (Ok(_), Ok(_)) => Some(format!("{source} is not where volume {volume} is mounted")),
                (Err(e), _) => Some(format!("no volume /dev/{volume}: {e}")),
                (_, Err(e)) => Some(format!("cannot look at {source}: {e}")),
            }
        }
        SourceSnapshot::Btrfs => None,
    }
}

/// Take and mount every ZFS and LVM source snapshot of the job; each failure is said on stderr
/// (the unit's journal) and fails its sync in the run.
pub fn take_all(spec: &JobSpec) {
    for (i, sync) in spec.syncs.iter().enumerate() {
        let Some(kind) = kind(sync).filter(|_| spec.is_local(&sync.source.host)) else {
            continue;
        };
        if let Err(e) = take(spec, i, kind, &sync.source.path) {
            eprintln!(
                "bkc-run: {}: source-snapshot \"{}\" of {}: {e}",
                spec.job,
                kind.kind(),
                sync.source.path
            );
        }
    }
}

fn take(spec: &JobSpec, i: usize, kind: &SourceSnapshot, path: &str) -> Result<(), String> {
    let source = path.trim_end_matches('/');
    if let Some(why) = origin_problem(kind, source, &mount_points()) {
        return Err(why);
    }
    let at = mounted_snapshot_path(&spec.job, i);
    // /run/bkc is root's alone; the mount point is made there, 0700, no component a symlink
    // anyone else could have planted.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&at)
        .map_err(|e| format!("cannot make {at}: {e}"))?;
    let fstype = program(&words(&["findmnt", "-n", "-o", "FSTYPE", "-M", source]))?;
    for argv in take_commands(kind, &source_snapshot_name(&spec.job, i), &at, &fstype) {
        program(&argv)?;
    }
    Ok(())
}

/// Unmount and destroy sync `index`'s ZFS or LVM snapshot, if it is there.
pub fn drop(spec: &JobSpec, index: usize, kind: &SourceSnapshot) -> Result<(), String> {
    let name = source_snapshot_name(&spec.job, index);
    let at = mounted_snapshot_path(&spec.job, index);
    if is_mount(&at) {
        program(&words(&["umount", "--", &at]))?;
    }
    let (describe, destroy) = describe_and_destroy(kind, &name);
    if program(&describe).is_ok_and(|d| is_ours(kind, &d)) {
        program(&destroy)?;
    }
    let _ = std::fs::remove_dir(&at);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zfs_and_lvm_snapshots_are_taken_mounted_and_destroyed_by_their_own_programs() {
        let zfs = SourceSnapshot::Zfs {
            dataset: "tank/home".into(),
        };
        let at = "/run/bkc/source-snapshots/home.0";
        assert_eq!(
            take_commands(&zfs, "home.0", at, "zfs"),
            [
                words(&["zfs", "snapshot", "--", "tank/home@home.0"]),
                words(&[
                    "mount",
                    "-t",
                    "zfs",
                    "-o",
                    "ro",
                    "--",
                    "tank/home@home.0",
                    at
                ]),
            ]
        );
        assert_eq!(
            describe_and_destroy(&zfs, "home.0").1,
            words(&["zfs", "destroy", "--", "tank/home@home.0"])
        );
        let lvm = |size: &str| SourceSnapshot::Lvm {
            volume: "vg0/home".into(),
            size: size.into(),
        };
        assert_eq!(
            take_commands(&lvm("5G"), "home.0", at, "ext4"),
            [
                words(&[
                    "lvcreate",
                    "--snapshot",
                    "--size",
                    "5G",
                    "--name",
                    "bkc-home.0",
                    "--",
                    "vg0/home"
                ]),
                words(&["mount", "-o", "ro", "--", "/dev/vg0/bkc-home.0", at]),
            ]
        );
        let share = take_commands(&lvm("20%ORIGIN"), "home.0", at, "xfs");
        assert_eq!(share[0][2..4], words(&["--extents", "20%ORIGIN"]));
        assert_eq!(share[1][2], "ro,nouuid");
        assert_eq!(
            describe_and_destroy(&lvm("5G"), "home.0").1,
            words(&["lvremove", "--yes", "--", "vg0/bkc-home.0"])
        );
    }

    #[test]
    fn only_a_snapshot_of_the_configured_volume_is_removed() {
        let lvm = SourceSnapshot::Lvm {
            volume: "vg0/home".into(),
            size: "5G".into(),
        };
        assert!(is_ours(&lvm, "  swi-a-s---  home"));
        assert!(!is_ours(&lvm, "  -wi-a-----  "), "a plain volume");
        assert!(!is_ours(&lvm, "  swi-a-s---  other"), "another origin's");
        assert!(!is_ours(&lvm, ""));
    }

    #[test]
    fn anything_mounted_below_the_source_is_refused() {
        let lvm = SourceSnapshot::Lvm {
            volume: "vg0/home".into(),
            size: "5G".into(),
        };
        let mounts = ["/".to_string(), "/home".into(), "/home/alice/usb".into()];
        let why = origin_problem(&lvm, "/home", &mounts).unwrap();
        assert!(
            why.starts_with("/home/alice/usb is mounted below /home"),
            "{why}"
        );
        // A sibling with the same beginning is not below.
        let mounts = ["/home".to_string(), "/homework".into()];
        assert!(!origin_problem(&lvm, "/home", &mounts).is_some_and(|w| w.contains("below")));
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_octal("/srv/my\\040disk"), "/srv/my disk");
        assert_eq!(unescape_octal("/a\\134b"), "/a\\b");
        assert_eq!(unescape_octal("/plain\\x"), "/plain\\x");
    }

    #[test]
    fn a_directory_is_a_mount_point_only_on_a_device_of_its_own() {
        assert!(is_mount("/proc"));
        let dir = std::env::temp_dir().join(format!("bkc-mnt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!is_mount(dir.to_str().unwrap()));
        assert!(!is_mount("/nonexistent/bkc"));
        std::fs::remove_dir(&dir).unwrap();
    }
}
