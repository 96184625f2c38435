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
//! `"zfs"` and `"lvm"` are volume.rs's.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

use bkc_contract::names::{source_snapshot_dir, source_snapshot_name};
use bkc_contract::spec::{JobSpec, SourceSnapshot, Sync};

use super::volume;

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

/// The first directory below `root` on another device than `dev`: a nested btrfs subvolume
/// (each has a device number of its own) or anything mounted there. Only directories are
/// looked at, by the type their parent's listing gives, so the walk costs a stat per
/// directory, not per file; bkc's own snapshot directory is left out.
fn another_device_below(root: &std::path::Path, dev: u64) -> Option<std::path::PathBuf> {
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = e.path();
            if dir == root && e.file_name() == bkc_contract::names::SOURCE_SNAPSHOTS {
                continue;
            }
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.dev() != dev => return Some(path),
                Ok(_) => todo.push(path),
                Err(_) => {}
            }
        }
    }
    None
}

/// A source snapshot taken for one sync.
pub struct Frozen {
    /// `<source>/.bkc-snapshots`, or where ZFS and LVM snapshots are mounted.
    pub(crate) dir: String,
    pub(crate) name: String,
    /// A btrfs snapshot the run took itself, and may try to delete.
    pub(crate) own: bool,
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
    let root_dev = src
        .metadata()
        .map_err(|e| format!("source-snapshot: cannot look at {source}: {e}"))?
        .dev();
    if let Some(inner) = another_device_below(std::path::Path::new(source), root_dev) {
        return Err(format!(
            "source-snapshot \"btrfs\": {} inside {source} is a subvolume or mount of its own, which a snapshot holds as an empty directory (and a `--delete` would remove its files from the copy): give it a sync of its own",
            inner.display()
        ));
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

/// `bkc-run drop-source-snapshots <spec>`: delete every source snapshot of the job, left by a
/// run (whose sandbox cannot delete them) or by a killed one. Run by the unit outside the
/// sandbox, before and after the job. Returns the exit code.
pub fn drop_all(spec: &JobSpec) -> i32 {
    let mut code = 0;
    for (i, sync) in spec.syncs.iter().enumerate() {
        if sync.source_snapshot.is_none() || !spec.is_local(&sync.source.host) {
            continue;
        }
        if let Some(kind) = volume::kind(sync) {
            if let Err(e) = volume::drop(spec, i, kind) {
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
    fn a_directory_on_another_device_below_the_source_is_found() {
        let dir = std::env::temp_dir().join(format!("bkc-nested-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        let dev = std::fs::metadata(&dir).unwrap().dev();
        assert_eq!(another_device_below(&dir, dev), None);
        // Everything is on another device than a made-up one: the first directory is found.
        assert!(another_device_below(&dir, dev.wrapping_add(1)).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
        // /proc is a mount of its own below /.
        let root = std::fs::metadata("/").unwrap().dev();
        assert!(another_device_below(std::path::Path::new("/proc/.."), root).is_some());
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
