//! Paths walked one component at a time from `/`, never through a symlink.
//!
//! Every path serve touches is one the serve file names, but what lies along it is not: a job
//! that can write a directory could plant a symlink there for serve (running as root) to follow
//! later. So serve resolves each path with `openat(2)` and `O_NOFOLLOW`, component by component,
//! and then works through the descriptor of the directory it reached: a symlink swapped in after
//! the walk changes nothing, because nothing is looked up by that path again. A symlink anywhere
//! on the way is an error, even one an administrator made: name the real path in the topology.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

/// An open directory reached without following a symlink.
pub struct Dir {
    fd: OwnedFd,
}

/// The components of an absolute path, refusing `.` and `..` (serve compares paths by their
/// text, so a path must say where it goes without them).
pub fn components(path: &str) -> io::Result<Vec<CString>> {
    if !path.starts_with('/') {
        return Err(invalid(format!("{path:?} is not an absolute path")));
    }
    path.split('/')
        .filter(|c| !c.is_empty())
        .map(|c| {
            if c == "." || c == ".." {
                return Err(invalid(format!("{path:?} has a `{c}` component")));
            }
            CString::new(c).map_err(|_| invalid(format!("{path:?} contains NUL")))
        })
        .collect()
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A name as a C string, for the `*at` calls.
pub fn cname(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(invalid(format!("{name:?} is not a plain name")));
    }
    CString::new(name).map_err(|_| invalid(format!("{name:?} contains NUL")))
}

impl Dir {
    fn root() -> io::Result<Dir> {
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
        // SAFETY: open(2) of a constant path; the descriptor is owned below.
        let fd = cvt(unsafe { libc::open(c"/".as_ptr(), flags) })?;
        // SAFETY: fd is fresh and ours.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The directory `name` in this one, made (0755) first if `create` and it is missing.
    /// `O_PATH` suffices to walk through; `readable` opens it for listing.
    fn child(&self, name: &CStr, create: bool, readable: bool) -> io::Result<Dir> {
        let flags = libc::O_DIRECTORY
            | libc::O_NOFOLLOW
            | libc::O_CLOEXEC
            | if readable {
                libc::O_RDONLY
            } else {
                libc::O_PATH
            };
        let open = || {
            // SAFETY: openat(2) relative to our descriptor with a NUL-terminated name.
            cvt(unsafe { libc::openat(self.fd.as_raw_fd(), name.as_ptr(), flags) })
        };
        let fd = match open() {
            Err(e) if create && e.raw_os_error() == Some(libc::ENOENT) => {
                // SAFETY: mkdirat(2) relative to our descriptor.
                let r = unsafe { libc::mkdirat(self.fd.as_raw_fd(), name.as_ptr(), 0o755) };
                if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                    return Err(io::Error::last_os_error());
                }
                open()?
            }
            r => r.map_err(|e| self.symlink_says(e, name))?,
        };
        // SAFETY: fd is fresh and ours.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Walk to the directory at `path`, making what is missing when `create`.
    pub fn open(path: &str, create: bool) -> io::Result<Dir> {
        let comps = components(path)?;
        let mut dir = Dir::root()?;
        for (i, c) in comps.iter().enumerate() {
            dir = dir.child(c, create, i + 1 == comps.len())?;
        }
        Ok(dir)
    }

    /// The directory that holds `path` (made when `create`), and the last component's name.
    pub fn parent_of(path: &str, create: bool) -> io::Result<(Dir, CString)> {
        let mut comps = components(path)?;
        let Some(name) = comps.pop() else {
            return Err(invalid("`/` has no parent".into()));
        };
        let mut dir = Dir::root()?;
        for c in &comps {
            dir = dir.child(c, create, false)?;
        }
        Ok((dir, name))
    }

    /// The deepest directory of `path` that exists (never through a symlink), and the names of
    /// the components below it that do not: how a dry run looks at a path without making it.
    pub fn deepest(path: &str) -> io::Result<(Dir, Vec<String>)> {
        let comps = components(path)?;
        let mut dir = Dir::root()?;
        for (i, c) in comps.iter().enumerate() {
            match dir.child(c, false, true) {
                Ok(d) => dir = d,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let rest = comps[i..]
                        .iter()
                        .map(|c| c.to_string_lossy().into_owned())
                        .collect();
                    return Ok((dir, rest));
                }
                Err(e) => return Err(e),
            }
        }
        Ok((dir, Vec::new()))
    }

    /// The directory `name` in this one, for listing; never through a symlink.
    pub fn sub(&self, name: &CStr) -> io::Result<Dir> {
        self.child(name, false, true)
    }

    /// A directory from a descriptor that already holds one (the sandbox's mount).
    pub fn from_fd(fd: OwnedFd) -> Dir {
        Dir { fd }
    }

    pub fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// This directory as a path that cannot be redirected: the kernel resolves it to the very
    /// directory this descriptor holds. For std's directory functions.
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// Open `name` in this directory with `flags` (always `O_NOFOLLOW|O_CLOEXEC|O_NOCTTY`).
    pub fn open_file(&self, name: &CStr, flags: i32, mode: u32) -> io::Result<File> {
        let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY;
        // SAFETY: openat(2) relative to our descriptor with a NUL-terminated name.
        let fd = cvt(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                flags,
                mode as libc::c_uint,
            )
        })
        .map_err(|e| self.symlink_says(e, name))?;
        // SAFETY: fd is fresh and ours.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// `name`'s own status (a symlink's, not its target's).
    pub fn stat(&self, name: &CStr) -> io::Result<libc::stat> {
        // SAFETY: a zeroed stat is a valid buffer for fstatat(2) to fill.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstatat(2) relative to our descriptor into a local buffer.
        cvt(unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
        Ok(st)
    }

    /// What `name` is, without following it if it is a symlink; `None` when it does not exist.
    pub fn kind(&self, name: &CStr) -> io::Result<Option<Kind>> {
        // SAFETY: a zeroed stat is a valid buffer for fstatat(2) to fill.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstatat(2) relative to our descriptor into a local buffer.
        let r = unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::ENOENT) {
                Ok(None)
            } else {
                Err(e)
            };
        }
        Ok(Some(match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFREG => Kind::File,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        }))
    }

    /// Remove every file under this directory that has other hard links (and so shares its inode
    /// with a file elsewhere), never following a symlink: what [`Dir::open`] found is walked
    /// through descriptors, one directory at a time.
    pub fn unlink_shared(&self) -> io::Result<()> {
        for n in self.names()? {
            let name = cname(&n)?;
            // SAFETY: a zeroed stat is a valid buffer for fstatat(2) to fill.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: fstatat(2) relative to our descriptor into a local buffer.
            cvt(unsafe {
                libc::fstatat(
                    self.fd.as_raw_fd(),
                    name.as_ptr(),
                    &mut st,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            })?;
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                self.sub(&name)?.unlink_shared()?;
            } else if st.st_nlink > 1 {
                self.unlink(&name)?;
            }
        }
        Ok(())
    }

    /// Rename `from` to `to` in this directory, failing if `to` exists.
    pub fn rename_new(&self, from: &CStr, to: &CStr) -> io::Result<()> {
        let d = self.fd.as_raw_fd();
        // SAFETY: renameat2(2) within our directory with NUL-terminated names.
        cvt(unsafe { libc::renameat2(d, from.as_ptr(), d, to.as_ptr(), libc::RENAME_NOREPLACE) })
            .map(drop)
    }

    /// Rename `from` over `to` in this directory.
    pub fn rename_over(&self, from: &CStr, to: &CStr) -> io::Result<()> {
        let d = self.fd.as_raw_fd();
        // SAFETY: renameat(2) within our directory with NUL-terminated names.
        cvt(unsafe { libc::renameat(d, from.as_ptr(), d, to.as_ptr()) }).map(drop)
    }

    /// A symlink `name` pointing at `target`.
    pub fn symlink(&self, target: &CStr, name: &CStr) -> io::Result<()> {
        // SAFETY: symlinkat(2) within our directory with NUL-terminated strings.
        cvt(unsafe { libc::symlinkat(target.as_ptr(), self.fd.as_raw_fd(), name.as_ptr()) })
            .map(drop)
    }

    /// Remove the file (or symlink) `name`; a missing one is no error.
    pub fn unlink(&self, name: &CStr) -> io::Result<()> {
        // SAFETY: unlinkat(2) within our directory with a NUL-terminated name.
        match cvt(unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), 0) }) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r.map(drop),
        }
    }

    /// `ELOOP` from `O_NOFOLLOW`, or `ENOTDIR` from `O_DIRECTORY`, said as what it is when a
    /// symlink was in the way.
    fn symlink_says(&self, e: io::Error, name: &CStr) -> io::Error {
        let maybe = matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR));
        if maybe && matches!(self.kind(name), Ok(Some(Kind::Symlink))) {
            return io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is a symlink, which serve never follows",
                    name.to_string_lossy()
                ),
            );
        }
        e
    }

    /// Names of the entries of this directory (opened readable).
    pub fn names(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.proc_path())? {
            out.push(e?.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

/// The first line of an open file, at most 4 KiB of it.
pub fn first_line(f: &File) -> String {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 4096];
    let n = f.read_at(&mut buf, 0).unwrap_or(0);
    buf.truncate(n);
    let text = String::from_utf8_lossy(&buf);
    text.lines().next().unwrap_or("").to_string()
}

/// Whether an open file is a regular file.
pub fn is_regular(f: &File) -> bool {
    f.metadata().is_ok_and(|m| m.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_never_follow_a_symlink() {
        let base = std::env::temp_dir().join(format!("bkc-fsx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("real/inner")).unwrap();
        std::os::unix::fs::symlink(base.join("real"), base.join("link")).unwrap();
        let b = base.display().to_string();
        assert!(Dir::open(&format!("{b}/real/inner"), false).is_ok());
        let e = Dir::open(&format!("{b}/link/inner"), false).err().unwrap();
        assert!(e.to_string().contains("symlink"), "{e}");
        assert!(Dir::open(&format!("{b}/link"), false).is_err());
        assert!(Dir::open(&format!("{b}/real/../real"), false).is_err());
        assert!(Dir::open("relative", false).is_err());
        let made = Dir::open(&format!("{b}/new/deeper/"), true).unwrap();
        assert!(made.names().unwrap().is_empty());
        let (dir, name) = Dir::parent_of(&format!("{b}/link"), false).unwrap();
        assert_eq!(dir.kind(&name).unwrap(), Some(Kind::Symlink));
        assert_eq!(dir.kind(&cname("absent").unwrap()).unwrap(), None);
        let _ = std::fs::remove_dir_all(&base);
    }
}
