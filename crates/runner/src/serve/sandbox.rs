//! The box rsync's server side runs in, when serve runs as root.
//!
//! rsync is a large C program that has had holes through which a hostile peer reads or writes
//! outside the directory it was given (CVE-2024-12084 to -12088), and distributions backport the
//! fixes, so its version says little. serve therefore does not rely on it staying inside:
//!
//! - a mount namespace of its own, private, where every mount is read-only;
//! - for a receiver, the one directory the job may write, bound on top of itself, writable and
//!   `nosymfollow`, so no symlink inside it (planted by an earlier transfer, or swapped in
//!   during this one) is ever followed; a sender needs no such mount (it follows no symlink
//!   with the options serve lets through, and may read a whole system, libraries and all);
//! - rsync starts in that directory, from its descriptor, and is given `.` (or a name in it);
//! - the capabilities that could undo this (`CAP_SYS_ADMIN` among them) are dropped from the
//!   bounding set, and `no_new_privs` is set, before rsync starts.
//!
//! A non-root serve gets none of this: the kernel's permissions for its account are its box.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::fsx::Dir;

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// What rsync may still do as root: keep owners and modes on what it writes and read whatever it
/// sends. Nothing here can change a mount.
const RECEIVER_CAPS: &[u32] = &[
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    2,  // CAP_DAC_READ_SEARCH
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    27, // CAP_MKNOD
];
const SENDER_CAPS: &[u32] = &[
    1, // CAP_DAC_OVERRIDE
    2, // CAP_DAC_READ_SEARCH
    3, // CAP_FOWNER
];

/// Give this process a mount namespace of its own, private to it, when root (`true`); without
/// root nothing changes (`false`). Paths are opened after this, so their descriptors refer to
/// the mounts of the new namespace.
pub fn unshare() -> io::Result<bool> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(false);
    }
    // SAFETY: unshare(2) of this single-threaded process's mount namespace.
    cvt(unsafe { libc::unshare(libc::CLONE_NEWNS) }.into())?;
    // Nothing done here may reach the host's namespace through shared mounts.
    // SAFETY: mount(2) changing propagation only, with constant strings.
    cvt(unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    }
    .into())?;
    Ok(true)
}

/// In the namespace [`unshare`] made: make every mount read-only, and when `write` bind `dir`
/// on top of itself, writable and never following symlinks; drop the capabilities that could
/// undo it. Returns the directory to start rsync in.
pub fn confine(dir: Dir, write: bool) -> io::Result<Dir> {
    let all_ro = mount_attr(libc::MOUNT_ATTR_RDONLY, 0);
    if !write {
        setattr(libc::AT_FDCWD, c"/", libc::AT_RECURSIVE, &all_ro)?;
        drop_capabilities(SENDER_CAPS)?;
        return Ok(dir);
    }
    let tree = clone_tree(&dir)?;
    let attr = mount_attr(libc::MOUNT_ATTR_NOSYMFOLLOW, libc::MOUNT_ATTR_RDONLY);
    setattr(tree.as_raw_fd(), c"", libc::AT_EMPTY_PATH, &attr)?;
    setattr(libc::AT_FDCWD, c"/", libc::AT_RECURSIVE, &all_ro)?;
    // SAFETY: move_mount(2) of our detached tree onto the directory it was cloned from.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            dir.raw(),
            c"".as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    })?;
    drop_capabilities(RECEIVER_CAPS)?;
    Ok(Dir::from_fd(tree))
}

fn mount_attr(set: u64, clr: u64) -> libc::mount_attr {
    // SAFETY: mount_attr is plain integers; zero is "no change".
    let mut a: libc::mount_attr = unsafe { std::mem::zeroed() };
    a.attr_set = set;
    a.attr_clr = clr;
    a
}

/// A detached copy of the mount at `dir`, rooted at `dir` (a bind mount not yet placed).
fn clone_tree(dir: &Dir) -> io::Result<OwnedFd> {
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32;
    // SAFETY: open_tree(2) on our own descriptor with an empty path.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_open_tree, dir.raw(), c"".as_ptr(), flags) })?;
    // SAFETY: fd is fresh and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn setattr(dirfd: i32, path: &std::ffi::CStr, flags: i32, a: &libc::mount_attr) -> io::Result<()> {
    // SAFETY: mount_setattr(2) with a valid attribute struct and its size.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            a as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    })
    .map(drop)
}

/// Drop every capability but `keep` from the bounding set, so rsync (started as root) is never
/// given the others, and forbid gaining any through exec.
fn drop_capabilities(keep: &[u32]) -> io::Result<()> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63);
    for cap in 0..=last {
        if keep.contains(&cap) {
            continue;
        }
        // SAFETY: prctl(2) PR_CAPBSET_DROP with a capability number.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: prctl(2) PR_SET_NO_NEW_PRIVS.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }.into()).map(drop)
}

/// Start in `dir`: rsync resolves its `.` and names from there.
pub fn chdir(dir: &Dir) -> io::Result<()> {
    // SAFETY: fchdir(2) to a directory descriptor we own.
    cvt(unsafe { libc::fchdir(dir.raw()) }.into()).map(drop)
}
