//! The kernel's part of "no shell, ever": every probe runs confined by
//! Landlock, with `no_new_privs`.
//!
//! Landlock restricts a *thread* and everything it starts afterwards, so
//! confinement never touches the agent itself: each probe runs on a thread
//! of its own that restricts itself first ([`Sandbox::confine_handler`]),
//! and each program a probe runs is started from a further thread that adds
//! the program's own, tighter domain ([`Sandbox::confine_exec`]). Domains
//! stack: a program gets the intersection of both.
//!
//! What a probe's **program** may do:
//! - *execute* exactly two files: the resolved program and its ELF
//!   interpreter (the dynamic loader the kernel needs to start it). A shell
//!   reached through any wrapper, by any name, fails with `EACCES`;
//! - *read* the whole file system except the directories that hold programs
//!   (`/bin`, `/sbin`, `/usr/bin`, `/usr/sbin`, `/usr/local/bin`,
//!   `/usr/local/sbin`, `/usr/libexec`, `/usr/local/libexec`, `/usr/games`),
//!   so that even the dynamic loader run as a program (`ld.so /bin/sh`)
//!   cannot map a shell, and except the agent's own files (its data dir:
//!   keys, certificates, grants, audit chain; its config file);
//! - *write* nothing but `/dev/null` and the device nodes its pack declares
//!   (`[sandbox] devices`, e.g. `/dev/zfs`, which `zfs list` opens
//!   read-write to issue ioctls); create, remove, rename, link nothing;
//! - issue ioctls on the device nodes its pack declares read-only
//!   (`[sandbox] read_devices`, e.g. `/dev/sd*` for `smartctl`: patterns
//!   are expanded to the devices present when the program starts), which
//!   it can open for reading only;
//! - bind no TCP port, connect to none but the ports its pack declares
//!   (`[sandbox] connect_tcp`);
//! - signal no process and reach no abstract Unix socket outside its own
//!   sandbox (so it cannot kill or talk to the agent), and — Landlock's
//!   ptrace rule — inspect no process outside it (`/proc/<agent>/fd`,
//!   `/proc/<agent>/mem`).
//!
//! What an **in-process handler** may do (the thread that runs it): read
//! everything but the agent's own files, write only its pack's device nodes
//! and `/dev/null`. Execution and the network are left to the program-level
//! domain above (built-in handlers are trusted with the binary; their file
//! reads are what an attacker would aim at, through symlinks and `/proc`).
//!
//! Where the kernel has no Landlock the agent says so at start, attests
//! `sandbox: none`, and refuses to start when `require_sandbox = true`.
//! The rule set uses Landlock ABI 6 (file system, TCP, scopes); newer
//! kernels enforce it fully, older ones best-effort, and the attested
//! level says which.

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
};
use rustix::fs::{Mode, OFlags};
use std::ffi::OsStr;
use std::fmt;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The Landlock feature set the rules are written for.
const ABI_USED: ABI = ABI::V6;

/// Directories that hold programs: never readable by a probe's program, so
/// a loader cannot be made to map a shell or interpreter from them.
pub const PROGRAM_DIRS: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/usr/libexec",
    "/usr/local/libexec",
    "/usr/games",
    "/usr/local/games",
];

/// How well this kernel can confine probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxLevel {
    /// Landlock enforces every rule (the kernel's ABI is at least 6).
    Full { abi: u8 },
    /// Landlock enforces some rules (an older ABI).
    Partial { abi: u8 },
    /// No Landlock: only the agent's own checks stand.
    None,
}

impl SandboxLevel {
    /// The attested form: `landlock-v7`, `landlock-v3-partial`, `none`.
    pub fn as_attested(&self) -> String {
        match self {
            SandboxLevel::Full { abi } => format!("landlock-v{abi}"),
            SandboxLevel::Partial { abi } => format!("landlock-v{abi}-partial"),
            SandboxLevel::None => "none".into(),
        }
    }

    pub fn is_full(&self) -> bool {
        matches!(self, SandboxLevel::Full { .. })
    }
}

impl fmt::Display for SandboxLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_attested())
    }
}

/// Why a probe could not be confined (it then does not run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error("could not build the probe sandbox: {0}")]
    Build(String),
    #[error(
        "the kernel did not enforce the probe sandbox ({0}); the probe was not run. Check that Landlock is enabled (`cat /sys/kernel/security/lsm`)"
    )]
    NotEnforced(String),
}

fn build_err(e: impl fmt::Display) -> SandboxError {
    SandboxError::Build(e.to_string())
}

/// What a pack's probes may touch beyond reading (from the manifest's
/// `[sandbox]` table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackSandbox {
    /// Device nodes opened read-write for ioctls (under `/dev/` only).
    pub devices: Vec<PathBuf>,
    /// TCP ports the pack's programs may connect to.
    pub connect_tcp: Vec<u16>,
    /// Device nodes (or `/dev/sd*`-style patterns, see
    /// [`crate::manifest::check_device_pattern`]) opened read-only with
    /// ioctls: no write access is granted on them.
    pub read_devices: Vec<PathBuf>,
}

/// The character and block devices `pattern` names now: the node itself
/// for a plain path, or every device in its directory whose name has the
/// pattern's prefix and suffix around its one `*`. Symbolic links,
/// directories and regular files never match (Landlock judges the node a
/// link points to; `/dev/disk/by-id/…` links reach the same nodes).
pub fn expand_device_pattern(pattern: &Path) -> Vec<PathBuf> {
    let is_device = |p: &Path| {
        std::fs::symlink_metadata(p).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_block_device() || m.file_type().is_char_device()
        })
    };
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return Vec::new();
    };
    let name = name.as_bytes();
    let Some(star) = name.iter().position(|b| *b == b'*') else {
        return if is_device(pattern) {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        };
    };
    let (prefix, suffix) = (&name[..star], &name[star + 1..]);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.as_bytes();
            n.len() >= prefix.len() + suffix.len() && n.starts_with(prefix) && n.ends_with(suffix)
        })
        .map(|e| e.path())
        .filter(|p| is_device(p))
        .collect();
    out.sort();
    out
}

/// A path opened `O_PATH` (without following a final symlink), and whether
/// it is a directory.
struct Anchor {
    fd: OwnedFd,
    dir: bool,
}

impl fmt::Debug for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anchor").field("dir", &self.dir).finish()
    }
}

fn anchor(path: &Path) -> Option<Anchor> {
    let fd = rustix::fs::open(
        path,
        OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .ok()?;
    let stat = rustix::fs::fstat(&fd).ok()?;
    let kind = rustix::fs::FileType::from_raw_mode(stat.st_mode);
    if kind == rustix::fs::FileType::Symlink {
        return None;
    }
    Some(Anchor {
        fd,
        dir: kind == rustix::fs::FileType::Directory,
    })
}

/// How long opening a mount point may take before the walk goes on
/// without it. A network or FUSE file system whose server is gone (a dead
/// NFS share, a wedged FUSE daemon) can block any `stat` beneath it for
/// ever; the agent must still start.
const MOUNT_ANSWER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// The mount points this thread sees (its own mount namespace), and those
/// that did not answer in time: read once per [`Sandbox::new`], shared by
/// its walks, so a silent mount costs [`MOUNT_ANSWER_TIME`] once.
#[derive(Default)]
struct Mounts {
    points: std::collections::HashSet<PathBuf>,
    silent: std::collections::HashSet<PathBuf>,
}

impl Mounts {
    /// From `/proc/thread-self/mountinfo`; none if that cannot be read.
    fn read() -> Mounts {
        let Ok(text) =
            crate::bounded::read_file_bounded(Path::new("/proc/thread-self/mountinfo"), 8 << 20)
        else {
            return Mounts::default();
        };
        Mounts {
            points: crate::system::disk::parse_mountinfo(&text.bytes)
                .into_iter()
                .map(|m| PathBuf::from(OsStr::from_bytes(&m.mount_point)))
                .collect(),
            silent: Default::default(),
        }
    }

    /// [`anchor`], bounded for mount points; a mount point that gave
    /// nothing once (silent, or not openable) is not asked again.
    fn anchor(&mut self, path: &Path) -> Option<Anchor> {
        if !self.points.contains(path) {
            return anchor(path);
        }
        if self.silent.contains(path) {
            return None;
        }
        let found = anchor_bounded(path);
        if found.is_none() {
            self.silent.insert(path.to_owned());
        }
        found
    }
}

/// [`anchor`] for a mount point, on a helper thread, given up after
/// [`MOUNT_ANSWER_TIME`]: a mount that does not answer gets no rule (its
/// contents stay unreadable to probes) and a warning, instead of hanging
/// the agent. The helper stays blocked in the kernel until the file system
/// answers or goes away.
fn anchor_bounded(path: &Path) -> Option<Anchor> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let owned = path.to_owned();
    std::thread::Builder::new()
        .name("sandbox-mount".into())
        .spawn(move || {
            let _ = tx.send(anchor(&owned));
        })
        .ok()?;
    match rx.recv_timeout(MOUNT_ANSWER_TIME) {
        Ok(found) => found,
        Err(_) => {
            tracing::warn!(
                mount = %path.display(),
                "a mounted file system does not answer (a dead network share or FUSE daemon?); \
                 probes cannot read beneath it until the agent restarts"
            );
            None
        }
    }
}

/// Everything readable: the whole tree from `/` except `excluded` (and
/// except symbolic links, which need no rule: what they point to has its
/// own). Each entry on the way down to an excluded path is granted, the
/// excluded path itself is not. Mount points are opened with a time limit
/// ([`anchor_bounded`]).
fn readable_roots(excluded: &[PathBuf], mounts: &mut Mounts) -> Vec<Anchor> {
    fn walk(
        dir: &Path,
        excluded: &[PathBuf],
        mounts: &mut Mounts,
        out: &mut Vec<Anchor>,
        depth: usize,
    ) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = dir.join(entry.file_name());
            if excluded.contains(&path) {
                continue;
            }
            // No `entry.file_type()`: where the directory gives no type
            // it would `stat` the entry, and a mount point's `stat` is
            // answered by the mounted file system.
            let Some(a) = mounts.anchor(&path) else {
                continue;
            };
            if a.dir && depth < 32 && excluded.iter().any(|e| e.starts_with(&path)) {
                walk(&path, excluded, mounts, out, depth + 1);
            } else {
                out.push(a);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/"), excluded, mounts, &mut out, 0);
    out
}

/// Canonical forms of `paths` (those that exist), the way Landlock sees
/// them (it judges the file, not the name used to reach it).
fn canonical(paths: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = paths
        .into_iter()
        .filter_map(|p| std::fs::canonicalize(&p).ok())
        .filter(|p| p != Path::new("/"))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The probe sandbox of one agent.
pub struct Sandbox {
    level: SandboxLevel,
    /// What in-process handlers may read.
    handler_roots: Vec<Anchor>,
    /// What programs may read.
    exec_roots: Vec<Anchor>,
    /// The agent's own files (never readable).
    hidden: Vec<PathBuf>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("level", &self.level)
            .field("hidden", &self.hidden)
            .field("handler_roots", &self.handler_roots.len())
            .field("exec_roots", &self.exec_roots.len())
            .finish()
    }
}

impl Sandbox {
    /// A sandbox that hides `hidden` (the agent's data dir and config file)
    /// from every probe. Reads the kernel's Landlock support.
    pub fn new(hidden: impl IntoIterator<Item = PathBuf>) -> Arc<Sandbox> {
        let hidden = canonical(hidden);
        let level = detect();
        let (handler_roots, exec_roots) = if level == SandboxLevel::None {
            (Vec::new(), Vec::new())
        } else {
            let mut exec_hidden = hidden.clone();
            exec_hidden.extend(canonical(PROGRAM_DIRS.iter().map(PathBuf::from)));
            exec_hidden.sort();
            exec_hidden.dedup();
            let mut mounts = Mounts::read();
            (
                readable_roots(&hidden, &mut mounts),
                readable_roots(&exec_hidden, &mut mounts),
            )
        };
        Arc::new(Sandbox {
            level,
            handler_roots,
            exec_roots,
            hidden,
        })
    }

    pub fn level(&self) -> SandboxLevel {
        self.level
    }

    /// The agent's own files and directories, canonical.
    pub fn hidden(&self) -> &[PathBuf] {
        &self.hidden
    }

    fn base(&self, fs: BitFlags<AccessFs>) -> Result<Ruleset, SandboxError> {
        Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(fs)
            .map_err(build_err)
    }

    fn grant_reads(
        &self,
        mut rs: RulesetCreated,
        roots: &[Anchor],
    ) -> Result<RulesetCreated, SandboxError> {
        let file = AccessFs::ReadFile;
        let dir = AccessFs::ReadFile | AccessFs::ReadDir;
        for a in roots {
            rs = rs
                .add_rule(PathBeneath::new(
                    &a.fd,
                    if a.dir { dir } else { file.into() },
                ))
                .map_err(build_err)?;
        }
        Ok(rs)
    }

    fn grant_devices(
        &self,
        mut rs: RulesetCreated,
        pack: &PackSandbox,
    ) -> Result<RulesetCreated, SandboxError> {
        let rw = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev;
        let devices = std::iter::once(Path::new("/dev/null"))
            .chain(pack.devices.iter().map(PathBuf::as_path))
            .filter(|d| d.starts_with("/dev/"));
        for dev in devices {
            // A device the machine lacks: the probe will say so itself.
            if let Some(a) = anchor(dev).filter(|a| !a.dir) {
                rs = rs.add_rule(PathBeneath::new(a.fd, rw)).map_err(build_err)?;
            }
        }
        // Read-only devices: read and ioctls, never a writable open.
        let ro = AccessFs::ReadFile | AccessFs::IoctlDev;
        for pattern in pack.read_devices.iter().filter(|d| d.starts_with("/dev/")) {
            for dev in expand_device_pattern(pattern) {
                if let Some(a) = anchor(&dev).filter(|a| !a.dir) {
                    rs = rs.add_rule(PathBeneath::new(a.fd, ro)).map_err(build_err)?;
                }
            }
        }
        Ok(rs)
    }

    fn enforce(&self, rs: RulesetCreated) -> Result<(), SandboxError> {
        let status = rs.restrict_self().map_err(build_err)?;
        match (self.level, status.ruleset) {
            (SandboxLevel::None, _) => Ok(()),
            (_, RulesetStatus::NotEnforced) => {
                Err(SandboxError::NotEnforced("no rule took effect".into()))
            }
            (_, _) if !status.no_new_privs => {
                Err(SandboxError::NotEnforced("no_new_privs was not set".into()))
            }
            _ => Ok(()),
        }
    }

    /// Confines the calling thread for an in-process handler (see the
    /// module docs). Call it on a thread that exists for this probe only.
    pub fn confine_handler(&self, pack: &PackSandbox) -> Result<(), SandboxError> {
        if self.level == SandboxLevel::None {
            return Ok(());
        }
        let fs = AccessFs::from_all(ABI_USED) & !AccessFs::Execute;
        let rs = self.base(fs)?.create().map_err(build_err)?;
        let rs = self.grant_reads(rs, &self.handler_roots)?;
        let rs = self.grant_devices(rs, pack)?;
        self.enforce(rs)
    }

    /// Confines the calling thread so that a program started from it can
    /// execute only `program` (and `interpreter`, its ELF loader), read
    /// nothing in the program directories nor the agent's files, write
    /// nothing but its pack's devices, use no TCP port but its pack's, and
    /// reach nothing outside its sandbox.
    pub fn confine_exec(
        &self,
        pack: &PackSandbox,
        program: &Path,
        interpreter: Option<&Path>,
    ) -> Result<(), SandboxError> {
        if self.level == SandboxLevel::None {
            return Ok(());
        }
        let rs = self
            .base(AccessFs::from_all(ABI_USED))?
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(build_err)?
            .scope(Scope::from_all(ABI_USED))
            .map_err(build_err)?
            .create()
            .map_err(build_err)?;
        let mut rs = self.grant_reads(rs, &self.exec_roots)?;
        for file in std::iter::once(program).chain(interpreter) {
            let a =
                anchor(file).ok_or_else(|| build_err(format!("cannot open {}", file.display())))?;
            rs = rs
                .add_rule(PathBeneath::new(
                    a.fd,
                    AccessFs::ReadFile | AccessFs::Execute,
                ))
                .map_err(build_err)?;
        }
        let mut rs = self.grant_devices(rs, pack)?;
        for port in &pack.connect_tcp {
            rs = rs
                .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
                .map_err(build_err)?;
        }
        self.enforce(rs)
    }
}

/// Reads the kernel's Landlock support by confining a throwaway thread.
fn detect() -> SandboxLevel {
    let probe = std::thread::spawn(|| -> Option<landlock::RestrictionStatus> {
        let root = anchor(Path::new("/"))?;
        Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::from_all(ABI_USED))
            .ok()?
            .create()
            .ok()?
            .add_rule(PathBeneath::new(root.fd, AccessFs::from_all(ABI_USED)))
            .ok()?
            .restrict_self()
            .ok()
    });
    let Ok(Some(status)) = probe.join() else {
        return SandboxLevel::None;
    };
    match (status.landlock, status.ruleset) {
        (_, RulesetStatus::NotEnforced) => SandboxLevel::None,
        (landlock::LandlockStatus::Available { effective_abi, .. }, state) => {
            let abi = effective_abi as u8;
            if state == RulesetStatus::FullyEnforced && abi >= ABI_USED as u8 {
                SandboxLevel::Full {
                    abi: kernel_abi(&status.landlock).unwrap_or(abi),
                }
            } else {
                SandboxLevel::Partial { abi }
            }
        }
        _ => SandboxLevel::None,
    }
}

fn kernel_abi(status: &landlock::LandlockStatus) -> Option<u8> {
    match status {
        landlock::LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => Some(
            kernel_abi
                .and_then(|k| u8::try_from(k).ok())
                .unwrap_or(*effective_abi as u8),
        ),
        _ => None,
    }
}

/// What the kernel will need to execute to start `program`: its ELF
/// interpreter, if it has one. `Err` for anything that is not a native
/// program (a `#!` script, which would run an interpreter; an unknown
/// format) — those are never run.
pub fn elf_interpreter(program: &Path) -> Result<Option<PathBuf>, String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(program).map_err(|e| format!("cannot open it: {e}"))?;
    let mut head = [0u8; 64];
    let n = f.read(&mut head).map_err(|e| e.to_string())?;
    let head = &head[..n];
    if head.starts_with(b"#!") {
        return Err("it is a script, run by an interpreter".into());
    }
    if !head.starts_with(b"\x7fELF") || n < 64 {
        return Err("it is not a native (ELF) program".into());
    }
    let class64 = head[4] == 2;
    let le = head[5] == 1;
    let u16_at = |b: &[u8], o: usize| -> u64 {
        let v = [b[o], b[o + 1]];
        u64::from(if le {
            u16::from_le_bytes(v)
        } else {
            u16::from_be_bytes(v)
        })
    };
    let u32_at = |b: &[u8], o: usize| -> u64 {
        let v = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        u64::from(if le {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        })
    };
    let u64_at = |b: &[u8], o: usize| -> u64 {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[o..o + 8]);
        if le {
            u64::from_le_bytes(v)
        } else {
            u64::from_be_bytes(v)
        }
    };
    let (phoff, phentsize, phnum) = if class64 {
        (u64_at(head, 32), u16_at(head, 54), u16_at(head, 56))
    } else {
        (u32_at(head, 28), u16_at(head, 42), u16_at(head, 44))
    };
    if phnum > 256 || !(32..=128).contains(&phentsize) {
        return Err("its ELF program headers are malformed".into());
    }
    let mut table = vec![0u8; (phentsize * phnum) as usize];
    f.seek(SeekFrom::Start(phoff)).map_err(|e| e.to_string())?;
    f.read_exact(&mut table)
        .map_err(|_| "its ELF program headers are cut short".to_owned())?;
    for i in 0..phnum as usize {
        let ph = &table[i * phentsize as usize..(i + 1) * phentsize as usize];
        if u32_at(ph, 0) != 3 {
            continue; // not PT_INTERP
        }
        let (offset, size) = if class64 {
            (u64_at(ph, 8), u64_at(ph, 32))
        } else {
            (u32_at(ph, 4), u32_at(ph, 16))
        };
        if size == 0 || size > 4096 {
            return Err("its ELF interpreter path is malformed".into());
        }
        let mut path = vec![0u8; size as usize];
        f.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
        f.read_exact(&mut path)
            .map_err(|_| "its ELF interpreter path is cut short".to_owned())?;
        if let Some(nul) = path.iter().position(|b| *b == 0) {
            path.truncate(nul);
        }
        return Ok(Some(PathBuf::from(OsStr::from_bytes(&path))));
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
