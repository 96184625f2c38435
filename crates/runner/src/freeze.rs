//! `source-snapshot "btrfs"`: a sync copies from a read-only snapshot of its source subvolume,
//! taken once the job's locks are held, so every file arrives as it was at one moment however
//! the source is written meanwhile.
//!
//! The snapshot is `<source>/.bkc-snapshots/<job>.<sync>`: the job's sandbox opens that directory
//! alone for writing, and a leftover of a killed run is found by its name. Taking a snapshot needs
//! no capability beyond the sandbox's; deleting one needs CAP_SYS_ADMIN, which the job's sandbox
//! does not have: the unit deletes them before and after the run, outside the sandbox
//! (`bkc-run drop-source-snapshots <spec>`, see docs/RUNNER.md), and a runner that has the
//! capability (run by hand as root) deletes its own at once.
//!
//! The btrfs ioctls are called directly rather than through the `btrfs` program: the runner
//! then needs no program found on a PATH (NixOS has none of the usual ones) and no output to
//! parse.
//!
//! `"zfs"` and `"lvm"` cannot be taken inside the sandbox at all: creating the snapshot needs the
//! volume manager's device and CAP_SYS_ADMIN, and the snapshot must be mounted to be read. So the
//! unit runs `bkc-run take-source-snapshots <spec>` outside it, after the leftovers are dropped:
//! it takes the job's locks as a run does, takes each snapshot with the volume manager's own
//! programs (`zfs snapshot`, `lvcreate --snapshot`), mounts it read-only at the same place a
//! btrfs one has, and lets the locks go. The run then copies from the mount, a consistent moment
//! of the source taken while no job of the chain was writing it; a missing mount fails the sync.
//! `drop-source-snapshots` unmounts and destroys them (`zfs destroy`, `lvremove`).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

use bkc_contract::names::{source_snapshot_dir, source_snapshot_name};
use bkc_contract::spec::{JobSpec, SourceSnapshot, Sync};

/// `BTRFS_IOC_SNAP_CREATE_V2`: `_IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2)`.
const SNAP_CREATE_V2: libc::c_ulong = 0x5000_9417;
/// `BTRFS_IOC_SNAP_DESTROY`: `_IOW(0x94, 15, struct btrfs_ioctl_vol_args)`.
const SNAP_DESTROY: libc::c_ulong = 0x5000_940f;
/// `BTRFS_SUBVOL_RDONLY`.
const RDONLY: u64 = 1 << 1;
/// statfs(2)'s `f_type` of a btrfs file system.
const BTRFS_MAGIC: i64 = 0x9123_683e;
/// The inode number of every subvolume's root directory.
const SUBVOL_ROOT_INO: u64 = 256;

/// `struct btrfs_ioctl_vol_args_v2` (4096 bytes): the source subvolume's descriptor, flags, and
/// the new snapshot's name.
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; 4040],
}

/// `struct btrfs_ioctl_vol_args` (4096 bytes): a name in the directory the ioctl is made on.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; 4088],
}

/// Copy `name` into a NUL-terminated ioctl name field.
fn fill(field: &mut [u8], name: &str) -> io::Result<()> {
    if name.len() >= field.len() || name.contains(['/', '\0']) {
        return Err(io::Error::other(format!("{name:?} is not a snapshot name")));
    }
    field[..name.len()].copy_from_slice(name.as_bytes());
    Ok(())
}

/// A directory opened without following a symlink in its last component.
fn open_dir(path: &str) -> io::Result<File> {
    let c = CString::new(path).map_err(io::Error::other)?;
    // SAFETY: a valid NUL-terminated path; the descriptor is owned by the File.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Whether `dir` is the root of a btrfs subvolume.
fn is_subvolume(dir: &File) -> io::Result<bool> {
    // SAFETY: statfs into a zeroed struct of the right type.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a pointer to `st`.
    if unsafe { libc::fstatfs(dir.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64 == BTRFS_MAGIC && dir.metadata()?.ino() == SUBVOL_ROOT_INO)
}

/// A source snapshot taken for one sync.
pub struct Frozen {
    /// `<source>/.bkc-snapshots`.
    dir: String,
    name: String,
    /// A btrfs snapshot the run took itself, and may try to delete.
    own: bool,
}

impl Frozen {
    /// The path rsync copies from: the snapshot's contents.
    pub fn source(&self) -> String {
        format!("{}/{}/", self.dir, self.name)
    }

    /// Delete the snapshot if this process may; otherwise the unit's ExecStopPost does.
    pub fn drop_now(self) {
        if self.own {
            let _ = destroy(&self.dir, &self.name);
        }
    }
}

/// Delete snapshot `name` in `dir`; `Ok(false)` if there is none.
fn destroy(dir: &str, name: &str) -> io::Result<bool> {
    let d = open_dir(dir)?;
    let c = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: a zeroed stat buffer is a valid one to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid directory descriptor, name and stat buffer; no symlink is followed.
    if unsafe {
        libc::fstatat(
            d.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } < 0
    {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENOENT) {
            Ok(false)
        } else {
            Err(e)
        };
    }
    let mut args = VolArgs {
        fd: 0,
        name: [0; 4088],
    };
    fill(&mut args.name, name)?;
    // SAFETY: the ioctl reads a VolArgs of exactly the kernel's size.
    if unsafe { libc::ioctl(d.as_raw_fd(), SNAP_DESTROY, &args) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}

/// Take sync `index`'s snapshot of its source, after removing a leftover of a killed run.
pub fn take(spec: &JobSpec, index: usize, sync: &Sync) -> Result<Frozen, String> {
    let Some(SourceSnapshot::Btrfs) = sync.source_snapshot else {
        return Err("the sync takes no source snapshot".into());
    };
    let source = sync.source.path.trim_end_matches('/');
    let src = open_dir(if source.is_empty() { "/" } else { source })
        .map_err(|e| format!("source-snapshot: cannot open {source}: {e}"))?;
    match is_subvolume(&src) {
        Ok(true) => {}
        Ok(false) => {
            return Err(format!(
                "source-snapshot \"btrfs\": {source} is not the root of a btrfs subvolume (make it one with `btrfs subvolume create`, or snapshot the subvolume above it)"
            ));
        }
        Err(e) => return Err(format!("source-snapshot: cannot look at {source}: {e}")),
    }
    let dir = source_snapshot_dir(&sync.source.path);
    let name = source_snapshot_name(&spec.job, index);
    if let Err(e) = std::fs::create_dir(&dir)
        && e.kind() != io::ErrorKind::AlreadyExists
    {
        return Err(format!("source-snapshot: cannot make {dir}: {e}"));
    }
    destroy(&dir, &name).map_err(|e| {
        format!("source-snapshot: a snapshot of a killed run, {dir}/{name}, cannot be removed: {e}")
    })?;
    let d = open_dir(&dir).map_err(|e| format!("source-snapshot: cannot open {dir}: {e}"))?;
    let mut args = VolArgsV2 {
        fd: i64::from(src.as_raw_fd()),
        transid: 0,
        flags: RDONLY,
        unused: [0; 4],
        name: [0; 4040],
    };
    fill(&mut args.name, &name).map_err(|e| e.to_string())?;
    // SAFETY: the ioctl reads a VolArgsV2 of exactly the kernel's size; both descriptors live.
    if unsafe { libc::ioctl(d.as_raw_fd(), SNAP_CREATE_V2, &args) } < 0 {
        return Err(format!(
            "source-snapshot: cannot snapshot {source} into {dir}/{name}: {}",
            io::Error::last_os_error()
        ));
    }
    Ok(Frozen {
        dir,
        name,
        own: true,
    })
}

/// Whether a sync's source snapshot is taken outside the sandbox and mounted (zfs, lvm).
pub fn mounted_kind(sync: &Sync) -> bool {
    matches!(
        sync.source_snapshot,
        Some(SourceSnapshot::Zfs { .. } | SourceSnapshot::Lvm { .. })
    )
}

/// Whether `path` is a mount point: on another device than its parent.
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

/// Sync `index`'s ZFS or LVM snapshot, mounted by `take-source-snapshots` before the run.
pub fn mounted(spec: &JobSpec, index: usize, sync: &Sync) -> Result<Frozen, String> {
    let dir = source_snapshot_dir(&sync.source.path);
    let name = source_snapshot_name(&spec.job, index);
    let kind = sync.source_snapshot.as_ref().map_or("", |k| k.kind());
    if !is_mount(&format!("{dir}/{name}")) {
        return Err(format!(
            "source-snapshot \"{kind}\": no snapshot is mounted at {dir}/{name}; the unit takes it before the run (`bkc-run take-source-snapshots`), and says why it could not in the journal: journalctl -u {}",
            bkc_contract::names::service_unit(&spec.job)
        ));
    }
    Ok(Frozen {
        dir,
        name,
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

/// The name of the LVM volume that is snapshot `name`: LVM reserves names that begin with
/// "snapshot", which a job may be called.
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
/// mount twice without `nouuid`).
fn take_commands(kind: &SourceSnapshot, name: &str, at: &str, fstype: &str) -> Vec<Vec<String>> {
    let id = snapshot_id(kind, name);
    match kind {
        SourceSnapshot::Zfs { .. } => vec![
            words(&["zfs", "snapshot", &id]),
            words(&["mount", "-t", "zfs", "-o", "ro", &id, at]),
        ],
        SourceSnapshot::Lvm { volume, size } => {
            let opts = if fstype == "xfs" { "ro,nouuid" } else { "ro" };
            vec![
                words(&[
                    "lvcreate",
                    "--snapshot",
                    "--size",
                    size,
                    "--name",
                    &lv_name(name),
                    volume,
                ]),
                words(&["mount", "-o", opts, &format!("/dev/{id}"), at]),
            ]
        }
        SourceSnapshot::Btrfs => Vec::new(),
    }
}

/// The command that tells whether snapshot `name` exists (it succeeds then), and the one that
/// destroys it.
fn exists_and_destroy(kind: &SourceSnapshot, name: &str) -> (Vec<String>, Vec<String>) {
    let id = snapshot_id(kind, name);
    match kind {
        SourceSnapshot::Zfs { .. } => (
            words(&["zfs", "list", "-H", "-t", "snapshot", "-o", "name", &id]),
            words(&["zfs", "destroy", &id]),
        ),
        _ => (
            words(&["lvs", "--noheadings", "-o", "lv_name", &id]),
            words(&["lvremove", "--yes", &id]),
        ),
    }
}

/// Why the source is not the root of what `kind` snapshots, if it is not: the snapshot is of
/// the whole dataset or volume, whose contents the sync copies.
fn origin_problem(kind: &SourceSnapshot, source: &str) -> Option<String> {
    match kind {
        SourceSnapshot::Zfs { dataset } => {
            let at = program(&words(&["zfs", "list", "-H", "-o", "mountpoint", dataset]));
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
                (Ok(d), Ok(s)) if d == s && is_mount(source) => None,
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
pub fn take_mounted(spec: &JobSpec) {
    for (i, sync) in spec.syncs.iter().enumerate() {
        let Some(kind) = sync.source_snapshot.as_ref().filter(|_| mounted_kind(sync)) else {
            continue;
        };
        if let Err(e) = take_one(spec, i, kind, &sync.source.path) {
            eprintln!(
                "bkc-run: {}: source-snapshot \"{}\" of {}: {e}",
                spec.job,
                kind.kind(),
                sync.source.path
            );
        }
    }
}

fn take_one(spec: &JobSpec, i: usize, kind: &SourceSnapshot, path: &str) -> Result<(), String> {
    let source = path.trim_end_matches('/');
    if let Some(why) = origin_problem(kind, source) {
        return Err(why);
    }
    let at = format!(
        "{}/{}",
        source_snapshot_dir(path),
        source_snapshot_name(&spec.job, i)
    );
    std::fs::create_dir_all(&at).map_err(|e| format!("cannot make {at}: {e}"))?;
    let fstype = program(&words(&["findmnt", "-n", "-o", "FSTYPE", "-M", source]))?;
    for argv in take_commands(kind, &source_snapshot_name(&spec.job, i), &at, &fstype) {
        program(&argv)?;
    }
    Ok(())
}

/// Unmount and destroy sync `index`'s ZFS or LVM snapshot, if it is there.
fn drop_mounted(
    spec: &JobSpec,
    index: usize,
    kind: &SourceSnapshot,
    path: &str,
) -> Result<(), String> {
    let name = source_snapshot_name(&spec.job, index);
    let at = format!("{}/{name}", source_snapshot_dir(path));
    if is_mount(&at) {
        program(&words(&["umount", &at]))?;
    }
    let (exists, destroy) = exists_and_destroy(kind, &name);
    if program(&exists).is_ok() {
        program(&destroy)?;
    }
    let _ = std::fs::remove_dir(&at);
    Ok(())
}

/// `bkc-run drop-source-snapshots <spec>`: delete every source snapshot of the job, left by a
/// run (whose sandbox cannot delete them) or by a killed one. Run by the unit outside the
/// sandbox, before and after the job. Returns the exit code.
pub fn drop_all(spec: &JobSpec) -> i32 {
    let mut code = 0;
    for (i, sync) in spec.syncs.iter().enumerate() {
        if sync.source_snapshot.is_none() || !spec.is_local(&sync.source.host) {
            continue;
        }
        if let Some(kind) = sync.source_snapshot.as_ref().filter(|_| mounted_kind(sync)) {
            if let Err(e) = drop_mounted(spec, i, kind, &sync.source.path) {
                eprintln!("bkc-run: {}: {e}", spec.job);
                code = 1;
            }
            continue;
        }
        let dir = source_snapshot_dir(&sync.source.path);
        let name = source_snapshot_name(&spec.job, i);
        match destroy(&dir, &name) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => {
                eprintln!("bkc-run: {}: cannot remove {dir}/{name}: {e}", spec.job);
                code = 1;
            }
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_arguments_have_the_kernels_size() {
        assert_eq!(std::mem::size_of::<VolArgsV2>(), 4096);
        assert_eq!(std::mem::size_of::<VolArgs>(), 4096);
    }

    #[test]
    fn zfs_and_lvm_snapshots_are_taken_mounted_and_destroyed_by_their_own_programs() {
        let zfs = SourceSnapshot::Zfs {
            dataset: "tank/home".into(),
        };
        let at = "/home/.bkc-snapshots/home.0";
        assert_eq!(
            take_commands(&zfs, "home.0", at, "zfs"),
            [
                words(&["zfs", "snapshot", "tank/home@home.0"]),
                words(&["mount", "-t", "zfs", "-o", "ro", "tank/home@home.0", at]),
            ]
        );
        assert_eq!(
            exists_and_destroy(&zfs, "home.0"),
            (
                words(&[
                    "zfs",
                    "list",
                    "-H",
                    "-t",
                    "snapshot",
                    "-o",
                    "name",
                    "tank/home@home.0"
                ]),
                words(&["zfs", "destroy", "tank/home@home.0"]),
            )
        );
        let lvm = SourceSnapshot::Lvm {
            volume: "vg0/home".into(),
            size: "5G".into(),
        };
        let take = take_commands(&lvm, "home.0", at, "ext4");
        assert_eq!(
            take,
            [
                words(&[
                    "lvcreate",
                    "--snapshot",
                    "--size",
                    "5G",
                    "--name",
                    "bkc-home.0",
                    "vg0/home"
                ]),
                words(&["mount", "-o", "ro", "/dev/vg0/bkc-home.0", at]),
            ]
        );
        assert_eq!(take_commands(&lvm, "home.0", at, "xfs")[1][2], "ro,nouuid");
        assert_eq!(
            exists_and_destroy(&lvm, "home.0").1,
            words(&["lvremove", "--yes", "vg0/bkc-home.0"])
        );
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

    #[test]
    fn names_stay_one_component() {
        let mut f = [0u8; 16];
        assert!(fill(&mut f, "job.0").is_ok());
        assert!(fill(&mut f, "../x").is_err());
        assert!(fill(&mut f, "a\0b").is_err());
        assert!(fill(&mut f, &"x".repeat(16)).is_err());
    }
}
