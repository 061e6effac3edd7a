//! Confined, bounded reading of one snapshot (or of the live file system).
//!
//! How a path can never leave its root:
//! - a path reaches this module as a [`RelativePath`]: not absolute, no
//!   `..`, no NUL (refused by the parameter schema before a probe runs);
//! - every directory on the way is resolved by the kernel relative to the
//!   root's file descriptor with `openat2(RESOLVE_BENEATH |
//!   RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)`: symlinks in the middle of a
//!   path are followed only while they stay beneath the root (an absolute
//!   target or one that climbs out is refused with `EXDEV`), and no other
//!   mount (a child dataset, `/proc`) is entered. On kernels without
//!   `openat2` (before 5.6, or blocked by a seccomp filter) the same rules
//!   are applied in user space, one `openat(O_NOFOLLOW)` per component on
//!   file descriptors ([`Resolver::Emulated`]), so a concurrent rename
//!   cannot redirect it either;
//! - the final component is never followed: it is `lstat`ed, and a symlink
//!   is reported with its target, as data; files are opened with
//!   `O_NOFOLLOW` and checked to be the inode that was `lstat`ed; devices,
//!   FIFOs and sockets are never opened;
//! - walks descend one name at a time with `openat(O_NOFOLLOW |
//!   O_DIRECTORY)`: links are never followed, other file systems never
//!   entered, and in the live tree the `.zfs` control directory is skipped.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, ResolveFlags, Stat};
use rustix::io::Errno;
use sonde_packs::handler::ProbeError;
use sonde_protocol::path::RelativePath;
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Other => "other",
        }
    }

    pub fn of(ft: FileType) -> Kind {
        match ft {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

/// `lstat` facts about one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub size: u64,
    /// Bytes allocated on disk.
    pub allocated: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ctime: i64,
    pub ctime_nsec: i64,
    pub ino: u64,
    pub dev: u64,
    pub nlink: u64,
    pub mode: u32,
}

/// What identifies one version of a directory's entry list across
/// snapshots. On ZFS an object keeps its number (the inode) in every
/// snapshot, and any change to a directory's entries updates its ctime,
/// which nothing can set back; so an equal key means an equal list of
/// names (not an equal subtree: a file deeper down can change without its
/// parent directory changing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DirKey {
    pub ino: u64,
    pub ctime: i64,
    pub ctime_nsec: i64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub size: u64,
}

impl Meta {
    pub fn from_stat(st: &Stat) -> Meta {
        Meta {
            kind: Kind::of(FileType::from_raw_mode(st.st_mode)),
            size: u64::try_from(st.st_size).unwrap_or(0),
            allocated: u64::try_from(st.st_blocks).unwrap_or(0).saturating_mul(512),
            mtime: st.st_mtime,
            mtime_nsec: i64::try_from(st.st_mtime_nsec).unwrap_or(0),
            ctime: st.st_ctime,
            ctime_nsec: i64::try_from(st.st_ctime_nsec).unwrap_or(0),
            ino: st.st_ino,
            dev: st.st_dev,
            // `st_nlink` is 32 bits on some targets.
            #[allow(clippy::useless_conversion)]
            nlink: u64::try_from(st.st_nlink).unwrap_or(0),
            mode: st.st_mode & 0o7777,
        }
    }

    /// Same object, unchanged: same kind, inode, size and mtime. (ZFS keeps
    /// an object's inode number across snapshots; an edit in place changes
    /// the mtime, a replacement changes the inode.)
    pub fn same_version(&self, other: &Meta) -> bool {
        self.kind == other.kind
            && self.ino == other.ino
            && self.size == other.size
            && self.mtime == other.mtime
            && self.mtime_nsec == other.mtime_nsec
    }

    /// Certainly the same content: the same object (inode), size, mtime
    /// and ctime. Nothing can set a ctime back, and ZFS updates it with
    /// every write, so equal facts mean no write happened between the two
    /// looks — no need to read either. (Different facts do not mean
    /// different content: a `touch`, a `chmod`, or a rewrite with the same
    /// bytes; only reading tells.)
    pub fn unchanged(&self, other: &Meta) -> bool {
        self.same_version(other) && self.ctime == other.ctime && self.ctime_nsec == other.ctime_nsec
    }

    pub fn dir_key(&self) -> DirKey {
        DirKey {
            ino: self.ino,
            ctime: self.ctime,
            ctime_nsec: self.ctime_nsec,
            mtime: self.mtime,
            mtime_nsec: self.mtime_nsec,
            size: self.size,
        }
    }
}

/// One entry of a directory, with its `lstat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub meta: Meta,
}

/// One entry of a directory from `getdents` alone (no `stat`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Name {
    pub name: Vec<u8>,
    pub kind: Kind,
    pub ino: u64,
}

/// How a path is shown in messages (lossy, for people only).
pub fn shown(rel: &[u8]) -> String {
    if rel.is_empty() {
        "the root".to_owned()
    } else {
        String::from_utf8_lossy(rel).into_owned()
    }
}

/// A system error on `what`, as a probe error that says what to do.
pub fn errno_error(e: Errno, what: &str) -> ProbeError {
    match e {
        Errno::NOENT | Errno::NOTDIR => ProbeError::NotFound(format!("{what} does not exist")),
        Errno::XDEV => ProbeError::Denied(format!(
            "{what} leads outside the snapshot or into another file system (through a symlink or a mount point); refused"
        )),
        Errno::ACCESS | Errno::PERM => ProbeError::Denied(format!(
            "{what}: permission denied for the agent's user (file permissions apply; see the zfs pack README for read access)"
        )),
        Errno::LOOP => ProbeError::Failed(format!("{what}: too many levels of symlinks")),
        Errno::NAMETOOLONG => ProbeError::InvalidInput(format!("{what}: name too long")),
        other => ProbeError::Failed(format!("{what}: {other}")),
    }
}

/// What opening a path without following its last component found.
#[derive(Debug)]
pub enum Opened {
    File(std::fs::File, Meta),
    Dir(OwnedFd, Meta),
    Symlink {
        target: Vec<u8>,
        meta: Meta,
    },
    /// A device, FIFO or socket: never opened.
    Other(Meta),
}

/// How directories on a path are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2(RESOLVE_BENEATH | …)`, falling back to `Emulated` when the
    /// kernel lacks it.
    Kernel,
    /// One `openat(O_NOFOLLOW)` per component, with the same rules.
    Emulated,
}

/// A snapshot root (or a live mount point), held open.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    pub path: PathBuf,
    pub dev: u64,
    /// The live file system: its `.zfs` control directory is not read.
    pub live: bool,
    resolver: Resolver,
    /// Object numbers of the agent's own files on this dataset: a file
    /// opened with one of them is refused (a snapshot keeps a file's
    /// object number, so its old copies of the agent's key are refused too).
    own_objects: Vec<u64>,
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// Most symlinks followed while resolving one path (Linux's own limit).
const MAX_LINKS: usize = 40;

fn cstr(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

impl Root {
    pub fn open(path: &Path, live: bool) -> Result<Root, ProbeError> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| errno_error(e, &path.display().to_string()))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| errno_error(e, &path.display().to_string()))?;
        Ok(Root {
            fd,
            path: path.to_owned(),
            dev: st.st_dev,
            live,
            resolver: Resolver::Kernel,
            own_objects: Vec::new(),
        })
    }

    /// The same root, refusing files with these object (inode) numbers:
    /// the agent's own files on the dataset's live file system
    /// ([`sonde_packs::secrets::ProtectedFiles::inodes_on`]).
    pub fn protecting(mut self, objects: Vec<u64>) -> Root {
        self.own_objects = objects;
        self
    }

    /// The same root with another resolver (tests compare the two).
    pub fn with_resolver(mut self, resolver: Resolver) -> Root {
        self.resolver = resolver;
        self
    }

    /// The directory at `segments`, resolved beneath the root.
    pub fn resolve_dir(&self, segments: &[Vec<u8>]) -> Result<OwnedFd, Errno> {
        if self.resolver == Resolver::Kernel {
            let path = segments.join(&b'/');
            let path: &[u8] = if path.is_empty() { b"." } else { &path };
            match rustix::fs::openat2(
                &self.fd,
                cstr(path),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            ) {
                Err(Errno::NOSYS | Errno::PERM) => {}
                other => return other,
            }
        }
        self.resolve_emulated(segments)
    }

    /// `RESOLVE_BENEATH | RESOLVE_NO_XDEV` in user space, on file
    /// descriptors: `..` pops the stack of directories walked (refused at
    /// the root), a symlink's target is spliced into the remaining path
    /// (an absolute target is refused), every step is `openat(O_NOFOLLOW)`
    /// and must stay on the root's device.
    fn resolve_emulated(&self, segments: &[Vec<u8>]) -> Result<OwnedFd, Errno> {
        let here = |fd: &OwnedFd| {
            rustix::fs::openat(
                fd,
                c".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        let mut stack: Vec<OwnedFd> = vec![here(&self.fd)?];
        let mut queue: VecDeque<Vec<u8>> = segments.iter().cloned().collect();
        let mut links = 0;
        while let Some(seg) = queue.pop_front() {
            match seg.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if stack.len() <= 1 {
                        return Err(Errno::XDEV);
                    }
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            let Some(cur) = stack.last() else {
                return Err(Errno::XDEV);
            };
            let st = rustix::fs::statat(cur, cstr(&seg), AtFlags::SYMLINK_NOFOLLOW)?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Errno::LOOP);
                    }
                    let target = rustix::fs::readlinkat(cur, cstr(&seg), Vec::new())?;
                    let target = target.as_bytes();
                    if target.is_empty() {
                        return Err(Errno::NOENT);
                    }
                    if target.starts_with(b"/") {
                        return Err(Errno::XDEV);
                    }
                    for part in target.split(|b| *b == b'/').rev() {
                        queue.push_front(part.to_vec());
                    }
                }
                FileType::Directory => {
                    let fd = rustix::fs::openat(
                        cur,
                        cstr(&seg),
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )?;
                    if rustix::fs::fstat(&fd)?.st_dev != self.dev {
                        return Err(Errno::XDEV);
                    }
                    stack.push(fd);
                }
                _ => return Err(Errno::NOTDIR),
            }
        }
        stack.pop().ok_or(Errno::XDEV)
    }

    fn refuse_control_dir(&self, rel: &RelativePath) -> Result<(), ProbeError> {
        if self.live && rel.segments().first().is_some_and(|s| s == b".zfs") {
            return Err(ProbeError::Denied(
                "the .zfs directory is not read through the live file system; choose a snapshot with the snapshot parameter instead".into(),
            ));
        }
        Ok(())
    }

    /// The parent directory of `rel` (resolved beneath the root) and its
    /// last name.
    fn parent_of(&self, rel: &RelativePath) -> Result<(OwnedFd, Vec<u8>), ProbeError> {
        let bytes = rel.to_bytes();
        let segments = rel.segments();
        let (name, parent) = segments
            .split_last()
            .ok_or_else(|| ProbeError::InvalidInput("the root has no parent".into()))?;
        let fd = self
            .resolve_dir(parent)
            .map_err(|e| errno_error(e, &shown(&bytes)))?;
        Ok((fd, name.clone()))
    }

    /// Opens `rel` without following a final symlink.
    pub fn open_path(&self, rel: &RelativePath) -> Result<Opened, ProbeError> {
        self.refuse_control_dir(rel)?;
        let bytes = rel.to_bytes();
        let what = shown(&bytes);
        if rel.is_root() {
            let fd = self.resolve_dir(&[]).map_err(|e| errno_error(e, &what))?;
            let meta = Meta::from_stat(&rustix::fs::fstat(&fd).map_err(|e| errno_error(e, &what))?);
            return Ok(Opened::Dir(fd, meta));
        }
        let (parent, name) = self.parent_of(rel)?;
        let st = rustix::fs::statat(&parent, cstr(&name), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| errno_error(e, &what))?;
        let meta = Meta::from_stat(&st);
        let open = |extra: OFlags| -> Result<OwnedFd, ProbeError> {
            let fd = rustix::fs::openat(
                &parent,
                cstr(&name),
                OFlags::RDONLY
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::NOCTTY
                    | OFlags::CLOEXEC
                    | extra,
                Mode::empty(),
            )
            .map_err(|e| errno_error(e, &what))?;
            let now = Meta::from_stat(&rustix::fs::fstat(&fd).map_err(|e| errno_error(e, &what))?);
            if now.dev != self.dev {
                return Err(ProbeError::Denied(format!(
                    "{what} is the mount point of another file system (a child dataset?); ask for that dataset instead"
                )));
            }
            if now.ino != meta.ino || now.kind != meta.kind {
                return Err(ProbeError::Failed(format!(
                    "{what} changed while it was being opened; try again"
                )));
            }
            Ok(fd)
        };
        Ok(match meta.kind {
            Kind::Symlink => {
                let target = rustix::fs::readlinkat(&parent, cstr(&name), Vec::new())
                    .map_err(|e| errno_error(e, &what))?;
                Opened::Symlink {
                    target: target.into_bytes(),
                    meta,
                }
            }
            Kind::File if self.own_objects.contains(&meta.ino) => {
                return Err(sonde_packs::secrets::own_file_refused(&what));
            }
            Kind::File => {
                let fd = open(OFlags::empty())?;
                Opened::File(std::fs::File::from(fd), meta)
            }
            Kind::Dir => Opened::Dir(open(OFlags::DIRECTORY)?, meta),
            Kind::Other => Opened::Other(meta),
        })
    }

    /// `lstat` of `rel`; `None` if it (or a directory on the way) does not
    /// exist.
    pub fn lstat(&self, rel: &RelativePath) -> Result<Option<Meta>, ProbeError> {
        self.refuse_control_dir(rel)?;
        if rel.is_root() {
            let st = rustix::fs::fstat(&self.fd).map_err(|e| errno_error(e, "the root"))?;
            return Ok(Some(Meta::from_stat(&st)));
        }
        let (parent, name) = match self.parent_of(rel) {
            Ok(p) => p,
            Err(ProbeError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        match rustix::fs::statat(&parent, cstr(&name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Meta::from_stat(&st))),
            Err(Errno::NOENT | Errno::NOTDIR) => Ok(None),
            Err(e) => Err(errno_error(e, &shown(&rel.to_bytes()))),
        }
    }

    /// When `rel` was created (its birth time, from `statx`), where the
    /// file system reports it (OpenZFS does; FUSE and older kernels may
    /// not). An object number can be reused after its file is deleted; the
    /// same number with the same birth time is the same object.
    pub fn birth_time(&self, rel: &RelativePath) -> Option<(i64, u32)> {
        let (parent, name) = self.parent_of(rel).ok()?;
        let st = rustix::fs::statx(
            &parent,
            cstr(&name),
            AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
            rustix::fs::StatxFlags::BTIME,
        )
        .ok()?;
        (st.stx_mask & rustix::fs::StatxFlags::BTIME.bits() != 0)
            .then_some((st.stx_btime.tv_sec, st.stx_btime.tv_nsec))
    }

    /// The directory at `rel` (a directory, not a link to one).
    pub fn open_dir(&self, rel: &RelativePath) -> Result<OwnedFd, ProbeError> {
        match self.open_path(rel)? {
            Opened::Dir(fd, _) => Ok(fd),
            Opened::Symlink { target, .. } => Err(ProbeError::InvalidInput(format!(
                "{} is a symlink (to {}), not a directory; symlinks are reported, not followed",
                shown(&rel.to_bytes()),
                String::from_utf8_lossy(&target)
            ))),
            _ => Err(ProbeError::InvalidInput(format!(
                "{} is not a directory",
                shown(&rel.to_bytes())
            ))),
        }
    }

    /// Whether entries named `name` in the directory at `dir` are hidden:
    /// `.zfs` at the top of the live tree.
    pub fn hides(&self, dir: &RelativePath, name: &[u8]) -> bool {
        self.live && dir.is_root() && name == b".zfs"
    }

    /// Opens child directory `name` of `dir` without following links or
    /// leaving the root's file system.
    pub fn open_child_dir(&self, dir: &impl AsFd, name: &[u8]) -> Option<OwnedFd> {
        self.open_child_dir_meta(dir, name).map(|(fd, _)| fd)
    }

    /// [`Root::open_child_dir`], with the directory's `fstat`.
    pub fn open_child_dir_meta(&self, dir: &impl AsFd, name: &[u8]) -> Option<(OwnedFd, Meta)> {
        let fd = rustix::fs::openat(
            dir,
            cstr(name),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let st = rustix::fs::fstat(&fd).ok()?;
        (st.st_dev == self.dev).then(|| (fd, Meta::from_stat(&st)))
    }
}

thread_local! {
    /// The `getdents` buffer of this thread (large enough for any entry).
    static DIRENTS: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(64 * 1024));
}

/// Calls `f(name, kind, inode)` for each entry of the directory `dir`
/// (not `.` and `..`), in directory order, from `getdents` alone (a `stat`
/// only when the file system does not report the type), without
/// allocating; each entry costs one unit of `budget`. Returns true if the
/// budget ran out before the end. Reads from the start of the directory.
pub fn for_each_name(
    dir: &impl AsFd,
    budget: &mut usize,
    mut f: impl FnMut(&[u8], Kind, u64),
) -> Result<bool, Errno> {
    rustix::fs::seek(dir, rustix::fs::SeekFrom::Start(0))?;
    let mut read = |buf: &mut Vec<u8>| -> Result<bool, Errno> {
        let mut reader = RawDir::new(dir, buf.spare_capacity_mut());
        while let Some(item) = reader.next() {
            let item = item?;
            let name = item.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if *budget == 0 {
                return Ok(true);
            }
            *budget -= 1;
            let mut kind = Kind::of(item.file_type());
            if item.file_type() == FileType::Unknown
                && let Ok(st) = rustix::fs::statat(dir, cstr(name), AtFlags::SYMLINK_NOFOLLOW)
            {
                kind = Kind::of(FileType::from_raw_mode(st.st_mode));
            }
            f(name, kind, item.ino());
        }
        Ok(false)
    };
    DIRENTS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => read(&mut buf),
        // Called from inside another listing's callback: a buffer of its own.
        Err(_) => read(&mut Vec::with_capacity(64 * 1024)),
    })
}

/// The entries of a directory (see [`for_each_name`]); the bool says the
/// budget ran out before the end.
pub fn names(dir: &impl AsFd, budget: &mut usize) -> Result<(Vec<Name>, bool), Errno> {
    let mut out = Vec::new();
    let cut = for_each_name(dir, budget, |name, kind, ino| {
        out.push(Name {
            name: name.to_vec(),
            kind,
            ino,
        });
    })?;
    Ok((out, cut))
}

/// `lstat` of `name` in `dir`.
pub fn stat_in(dir: &impl AsFd, name: &[u8]) -> Option<Meta> {
    rustix::fs::statat(dir, cstr(name), AtFlags::SYMLINK_NOFOLLOW)
        .ok()
        .map(|st| Meta::from_stat(&st))
}

/// The entries of the directory at `rel` (open as `dir`) with their
/// `lstat`, sorted by name: at most `limit` of them (the bool says there
/// were more).
pub fn list(
    root: &Root,
    dir: &impl AsFd,
    rel: &RelativePath,
    limit: usize,
) -> Result<(Vec<Entry>, bool), ProbeError> {
    // One more than asked, to know whether there were more.
    let mut budget = limit.saturating_add(1);
    let (found, _) =
        names(dir, &mut budget).map_err(|e| errno_error(e, &shown(&rel.to_bytes())))?;
    let mut entries: Vec<Entry> = found
        .into_iter()
        .filter(|n| !root.hides(rel, &n.name))
        .filter_map(|n| {
            Some(Entry {
                meta: stat_in(dir, &n.name)?,
                name: n.name,
            })
        })
        .collect();
    let more = entries.len() > limit;
    entries.truncate(limit);
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((entries, more))
}

/// Bounds of a walk.
#[derive(Debug, Clone, Copy)]
pub struct WalkBounds {
    pub max_entries: usize,
    pub deadline: Instant,
}

/// What a walk covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStats {
    pub entries: usize,
    pub dirs: usize,
    /// Directories that could not be read (permissions) and were skipped.
    pub unreadable: usize,
    /// A bound (entries or time) stopped the walk early.
    pub truncated: bool,
}

/// What a walk does after visiting an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// Go on (into the entry, if it is a directory).
    Descend,
    /// Go on, but not into this directory.
    Skip,
    /// Stop the walk.
    Stop,
}

/// Depth-first walk below `start` (links never followed, other file
/// systems never entered), calling `visit` for every entry with its path
/// relative to the root.
pub fn walk(
    root: &Root,
    start: &RelativePath,
    bounds: WalkBounds,
    mut visit: impl FnMut(&RelativePath, &Entry) -> Visit,
) -> Result<WalkStats, ProbeError> {
    let mut stats = WalkStats::default();
    let first = root.open_dir(start)?;
    let mut stack: Vec<(OwnedFd, RelativePath)> = vec![(first, start.clone())];
    while let Some((dir, here)) = stack.pop() {
        if Instant::now() >= bounds.deadline {
            stats.truncated = true;
            break;
        }
        stats.dirs += 1;
        let mut budget = bounds.max_entries.saturating_sub(stats.entries);
        let (found, cut) = match names(&dir, &mut budget) {
            Ok(x) => x,
            Err(_) => {
                stats.unreadable += 1;
                continue;
            }
        };
        for n in found {
            if root.hides(&here, &n.name) {
                continue;
            }
            stats.entries += 1;
            let Some(meta) = stat_in(&dir, &n.name) else {
                continue;
            };
            let Ok(child) = here.join(&n.name) else {
                continue;
            };
            let entry = Entry { name: n.name, meta };
            match visit(&child, &entry) {
                Visit::Stop => return Ok(stats),
                Visit::Descend if meta.kind == Kind::Dir => {
                    if let Some(fd) = root.open_child_dir(&dir, &entry.name) {
                        stack.push((fd, child));
                    }
                }
                _ => {}
            }
        }
        if cut {
            stats.truncated = true;
            break;
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn rel(s: &str) -> RelativePath {
        RelativePath::parse(s.as_bytes(), 4096).unwrap()
    }

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("root");
        std::fs::create_dir_all(r.join("etc/nginx")).unwrap();
        std::fs::create_dir_all(r.join(".zfs/snapshot/s1")).unwrap();
        std::fs::write(r.join("etc/nginx/nginx.conf"), "worker_processes 4;\n").unwrap();
        std::fs::write(d.path().join("outside.txt"), "secret").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("abs-link")).unwrap();
        std::os::unix::fs::symlink("../outside.txt", r.join("up-link")).unwrap();
        std::os::unix::fs::symlink("etc/nginx", r.join("inside-link")).unwrap();
        std::os::unix::fs::symlink("../../outside.txt", r.join("etc/deep-up")).unwrap();
        std::os::unix::fs::symlink("nginx/../..", r.join("etc/to-root")).unwrap();
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        d
    }

    #[test]
    fn paths_cannot_escape_the_snapshot() {
        let d = tree();
        for resolver in [Resolver::Kernel, Resolver::Emulated] {
            let root = Root::open(&d.path().join("root"), false)
                .unwrap()
                .with_resolver(resolver);
            // Final symlinks are reported, never followed.
            match root.open_path(&rel("abs-link")).unwrap() {
                Opened::Symlink { target, .. } => assert_eq!(target, b"/etc/passwd"),
                other => panic!("{other:?}"),
            }
            // Links in the middle that leave the root are refused.
            for escaping in [
                "abs-link/x",
                "up-link/x",
                "etc/deep-up/x",
                "etc/to-root/up-link/x",
            ] {
                let err = root.open_path(&rel(escaping)).unwrap_err();
                assert!(
                    matches!(err, ProbeError::Denied(_) | ProbeError::NotFound(_)),
                    "{resolver:?} {escaping}: {err:?}"
                );
            }
            assert!(matches!(
                root.open_path(&rel("up-link")).unwrap(),
                Opened::Symlink { .. }
            ));
            // Links that stay inside are followed in the middle of a path.
            assert!(matches!(
                root.open_path(&rel("inside-link/nginx.conf")).unwrap(),
                Opened::File(..)
            ));
            assert!(matches!(
                root.open_path(&rel("etc/to-root/etc/nginx/nginx.conf"))
                    .unwrap(),
                Opened::File(..)
            ));
            assert!(matches!(
                root.open_path(&rel("loop/x")).unwrap_err(),
                ProbeError::Failed(_)
            ));
            assert!(root.lstat(&rel("nope")).unwrap().is_none());
            assert!(root.lstat(&rel("nope/deeper")).unwrap().is_none());
            assert_eq!(
                root.lstat(&rel("etc/nginx/nginx.conf"))
                    .unwrap()
                    .unwrap()
                    .size,
                20
            );
        }
    }

    #[test]
    fn the_live_control_directory_is_not_read() {
        let d = tree();
        let live = Root::open(&d.path().join("root"), true).unwrap();
        assert!(matches!(
            live.open_path(&rel(".zfs/snapshot")).unwrap_err(),
            ProbeError::Denied(_)
        ));
        let (entries, _) = list(
            &live,
            &live.open_dir(&RelativePath::root()).unwrap(),
            &RelativePath::root(),
            100,
        )
        .unwrap();
        assert!(!entries.iter().any(|e| e.name == b".zfs"));
        let snapshot = Root::open(&d.path().join("root"), false).unwrap();
        assert!(snapshot.open_path(&rel(".zfs/snapshot")).is_ok());
    }

    #[test]
    fn walks_never_follow_links() {
        let d = tree();
        let root = Root::open(&d.path().join("root"), true).unwrap();
        let mut seen = Vec::new();
        let bounds = WalkBounds {
            max_entries: 100,
            deadline: Instant::now() + Duration::from_secs(5),
        };
        let stats = walk(&root, &RelativePath::root(), bounds, |p, _| {
            seen.push(String::from_utf8_lossy(&p.to_bytes()).into_owned());
            Visit::Descend
        })
        .unwrap();
        assert!(seen.contains(&"inside-link".to_owned()));
        assert!(
            !seen.iter().any(|s| s.starts_with("inside-link/")),
            "{seen:?}"
        );
        assert!(!seen.iter().any(|s| s.starts_with(".zfs")), "{seen:?}");
        assert!(!stats.truncated);
        let small = walk(
            &root,
            &RelativePath::root(),
            WalkBounds {
                max_entries: 2,
                ..bounds
            },
            |_, _| Visit::Descend,
        )
        .unwrap();
        assert!(small.truncated);
        assert_eq!(small.entries, 2);
    }

    /// Where `/proc/self/fd/N` says an fd points.
    fn real_path(fd: &impl AsFd) -> PathBuf {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())).unwrap()
    }

    const NAMES: &[&str] = &["a", "b", "c", "f", "l1", "l2", "l3"];
    const TARGETS: &[&str] = &[
        "..",
        "../..",
        "../../..",
        "/",
        "/etc",
        "a",
        "a/b",
        "../a",
        "b/../..",
        "../outside",
        "f",
        "l1",
        "l2",
        ".",
        "./a/../..",
        "c/../../a",
        "a/b/c/../../..",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random trees of directories, files and symlinks (some escaping,
        /// some looping), random paths: whatever either resolver opens is
        /// inside the root, and the kernel and the user-space resolver
        /// agree on what that is.
        #[test]
        fn prop_resolution_stays_beneath_the_root(
            links in prop::collection::vec((0usize..3, 0usize..TARGETS.len()), 3),
            path in prop::collection::vec(0usize..NAMES.len(), 1..6),
        ) {
            let d = tempfile::tempdir().unwrap();
            std::fs::create_dir(d.path().join("outside")).unwrap();
            std::fs::write(d.path().join("outside/f"), "secret").unwrap();
            let r = d.path().join("root");
            for dir in ["", "a", "a/b", "a/b/c", "c"] {
                std::fs::create_dir_all(r.join(dir)).unwrap();
                std::fs::write(r.join(dir).join("f"), "inside").unwrap();
            }
            for (i, (dir, target)) in links.iter().enumerate() {
                let at = r.join(["", "a", "a/b"][*dir]).join(format!("l{}", i + 1));
                std::os::unix::fs::symlink(TARGETS[*target], at).unwrap();
            }
            let canonical_root = std::fs::canonicalize(&r).unwrap();
            let query: Vec<&str> = path.iter().map(|i| NAMES[*i]).collect();
            let query = rel(&query.join("/"));
            let kernel = Root::open(&r, false).unwrap();
            let emulated = Root::open(&r, false).unwrap().with_resolver(Resolver::Emulated);
            let outcome = |root: &Root| match root.open_path(&query) {
                Ok(Opened::File(f, m)) => {
                    let p = real_path(&f);
                    assert!(p.starts_with(&canonical_root), "{query:?} opened {p:?}");
                    Some(m.ino)
                }
                Ok(Opened::Dir(fd, m)) => {
                    let p = real_path(&fd);
                    assert!(p.starts_with(&canonical_root), "{query:?} opened {p:?}");
                    Some(m.ino)
                }
                Ok(Opened::Symlink { meta, .. }) | Ok(Opened::Other(meta)) => Some(meta.ino),
                Err(_) => None,
            };
            prop_assert_eq!(outcome(&kernel), outcome(&emulated), "{:?}", query);
            let dir_outcome = |root: &Root| root.resolve_dir(query.segments()).ok().map(|fd| {
                let p = real_path(&fd);
                assert!(p.starts_with(&canonical_root), "{query:?} resolved to {p:?}");
                rustix::fs::fstat(&fd).unwrap().st_ino
            });
            prop_assert_eq!(dir_outcome(&kernel), dir_outcome(&emulated), "{:?}", query);
        }
    }
}
