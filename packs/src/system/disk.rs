//! `disk.usage`: mounts from `/proc/self/mountinfo`, sizes from `statvfs`.

use serde::Serialize;
use serde_json::Value;
use sonde_protocol::path::PathBytes;
use sonde_protocol::schema::ValidatedParams;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use super::finding;
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};

/// File systems that describe the kernel, not storage.
const PSEUDO: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "nsfs",
    "rpc_pipefs",
    "efivarfs",
    "selinuxfs",
    "devtmpfs",
];

/// File systems whose `statvfs` can block indefinitely when their server
/// is gone (a hung NFS mount hangs `df` too): asked on a helper thread.
fn may_hang(fstype: &str) -> bool {
    fstype.starts_with("fuse")
        || matches!(
            fstype,
            "nfs"
                | "nfs4"
                | "cifs"
                | "smb3"
                | "smbfs"
                | "9p"
                | "ceph"
                | "glusterfs"
                | "davfs"
                | "afs"
                | "lustre"
        )
}

/// Longest wait for one network file system's answer.
const NETWORK_FS_WAIT: Duration = Duration::from_secs(2);

/// `statvfs`, on a helper thread for file systems that may hang, giving up
/// after `wait` (the thread is left behind, blocked in the kernel; it ends
/// if the server comes back).
fn statvfs_within(
    path: &Path,
    fstype: &str,
    wait: Duration,
) -> Result<rustix::fs::StatVfs, String> {
    if !may_hang(fstype) {
        return rustix::fs::statvfs(path).map_err(|e| e.to_string());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("sonde-statvfs".into())
        .spawn(move || {
            let _ = tx.send(rustix::fs::statvfs(&owned).map_err(|e| e.to_string()));
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    rx.recv_timeout(wait).unwrap_or_else(|_| {
        Err(format!(
            "no answer within {} ms ({fstype}: is its server reachable?)",
            wait.as_millis()
        ))
    })
}

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: Vec<u8>,
    pub device: Vec<u8>,
    pub fstype: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, …), byte-exact.
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && i + 3 < field.len()
            && field[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (field[i + 1] - b'0') as u32 * 64
                + (field[i + 2] - b'0') as u32 * 8
                + (field[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

/// Parses `/proc/self/mountinfo`.
pub fn parse_mountinfo(text: &[u8]) -> Vec<Mount> {
    text.split(|b| *b == b'\n')
        .filter_map(|line| {
            let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
            let sep = fields.iter().position(|f| *f == b"-")?;
            let mount_point = unescape(fields.get(4)?);
            let fstype = String::from_utf8_lossy(fields.get(sep + 1)?).into_owned();
            let device = unescape(fields.get(sep + 2)?);
            Some(Mount {
                mount_point,
                device,
                fstype,
            })
        })
        .collect()
}

#[derive(Debug, Serialize)]
struct Fs {
    mount: PathBytes,
    device: PathBytes,
    fstype: String,
    total_bytes: u64,
    used_bytes: u64,
    available_bytes: u64,
    used_percent: f64,
    inodes_total: u64,
    inodes_free: u64,
    read_only: bool,
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        ((part as f64 / whole as f64) * 1000.0).round() / 10.0
    }
}

/// The mounts to report: the last entry for each mount point (a later
/// mount hides an earlier one at the same place), pseudo file systems left
/// out unless asked for or named.
pub fn select_mounts(mounts: Vec<Mount>, only: Option<&[u8]>, include_pseudo: bool) -> Vec<Mount> {
    let mut picked: Vec<Mount> = Vec::new();
    for m in mounts {
        if only.is_some_and(|o| o != m.mount_point.as_slice()) {
            continue;
        }
        if only.is_none() && !include_pseudo && PSEUDO.contains(&m.fstype.as_str()) {
            continue;
        }
        picked.retain(|p| p.mount_point != m.mount_point);
        picked.push(m);
    }
    picked
}

pub fn usage(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let text =
        crate::bounded::read_file_bounded(std::path::Path::new("/proc/self/mountinfo"), 8 << 20)
            .map_err(|e| ProbeError::Failed(format!("cannot read /proc/self/mountinfo: {e}")))?;
    let only = params.str("mount").map(str::as_bytes);
    let include_pseudo = params.bool("include_pseudo").unwrap_or(false);
    let mounts = select_mounts(parse_mountinfo(&text.bytes), only, include_pseudo);
    if let Some(o) = only
        && mounts.is_empty()
    {
        return Err(ProbeError::NotFound(format!(
            "{} is not a mount point; call system.disk.usage without `mount` to list them",
            String::from_utf8_lossy(o)
        )));
    }
    let mut filesystems = Vec::new();
    let mut unreadable = Vec::new();
    let mut findings: Vec<Value> = Vec::new();
    let mut truncated = text.truncated;
    for m in mounts {
        if ctx.expired() {
            truncated = true;
            break;
        }
        let path = Path::new(std::ffi::OsStr::from_bytes(&m.mount_point));
        // A mount we cannot stat (permissions, a hung NFS server) is listed,
        // not fatal.
        let wait = NETWORK_FS_WAIT.min(ctx.time_left());
        let st = match statvfs_within(path, &m.fstype, wait) {
            Ok(st) => st,
            Err(e) => {
                if may_hang(&m.fstype) {
                    findings.push(finding(
                        "warning",
                        format!(
                            "{} ({}) did not answer: {e}",
                            String::from_utf8_lossy(&m.mount_point),
                            m.fstype
                        ),
                    ));
                }
                unreadable.push(serde_json::json!({
                    "mount": PathBytes(m.mount_point),
                    "fstype": m.fstype,
                    "error": e,
                }));
                continue;
            }
        };
        let frsize = st.f_frsize.max(1);
        let total = st.f_blocks.saturating_mul(frsize);
        let free = st.f_bfree.saturating_mul(frsize);
        let avail = st.f_bavail.saturating_mul(frsize);
        let used = total.saturating_sub(free);
        let used_percent = percent(used, used.saturating_add(avail));
        let shown = String::from_utf8_lossy(&m.mount_point).into_owned();
        if total > 0 && used_percent >= 90.0 {
            findings.push(finding(
                if used_percent >= 95.0 {
                    "error"
                } else {
                    "warning"
                },
                format!("{shown} is {used_percent}% full ({avail} bytes available)"),
            ));
        }
        let inodes_used_percent = percent(st.f_files.saturating_sub(st.f_ffree), st.f_files);
        if st.f_files > 0 && inodes_used_percent >= 90.0 {
            findings.push(finding(
                "warning",
                format!("{shown} has used {inodes_used_percent}% of its inodes"),
            ));
        }
        filesystems.push(Fs {
            mount: PathBytes(m.mount_point),
            device: PathBytes(m.device),
            fstype: m.fstype,
            total_bytes: total,
            used_bytes: used,
            available_bytes: avail,
            used_percent,
            inodes_total: st.f_files,
            inodes_free: st.f_ffree,
            read_only: st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
        });
    }
    ProbeOutput::from_serialize(
        &serde_json::json!({"filesystems": filesystems, "unreadable": unreadable, "findings": findings}),
        truncated,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_with_escapes_and_odd_bytes() {
        let text = b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
            30 22 0:25 / /mnt/my\\040disk rw - vfat /dev/sdb1 rw\n\
            31 22 0:26 / /mnt/\xff\\134x rw shared:2 master:3 - xfs /dev/sdc\\0401 rw\n\
            garbage line\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].mount_point, b"/mnt/my disk");
        assert_eq!(m[2].mount_point, b"/mnt/\xff\\x");
        assert_eq!(m[2].fstype, "xfs");
        assert_eq!(m[2].device, b"/dev/sdc 1");
    }

    #[test]
    fn the_last_mount_at_a_place_wins_and_pseudo_ones_are_skipped() {
        let text = b"1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
            2 1 0:5 / /proc rw - proc proc rw\n\
            3 1 8:2 / /data rw - ext4 /dev/sdb1 rw\n\
            4 3 0:40 / /data rw - zfs tank/data rw\n";
        let m = select_mounts(parse_mountinfo(text), None, false);
        let points: Vec<(&[u8], &str)> = m
            .iter()
            .map(|m| (m.mount_point.as_slice(), m.fstype.as_str()))
            .collect();
        assert_eq!(points, vec![(&b"/"[..], "ext4"), (&b"/data"[..], "zfs")]);
        assert_eq!(select_mounts(parse_mountinfo(text), None, true).len(), 3);
        assert_eq!(
            select_mounts(parse_mountinfo(text), Some(b"/proc"), false).len(),
            1
        );
    }

    #[test]
    fn network_file_systems_are_asked_with_a_time_limit() {
        assert!(may_hang("nfs4") && may_hang("fuse.sshfs") && may_hang("cifs"));
        assert!(!may_hang("ext4") && !may_hang("zfs") && !may_hang("tmpfs"));
        // The helper-thread path answers like the direct one.
        let direct = rustix::fs::statvfs(Path::new("/")).unwrap();
        let threaded = statvfs_within(Path::new("/"), "nfs4", Duration::from_secs(5)).unwrap();
        assert_eq!(direct.f_blocks, threaded.f_blocks);
        let err = statvfs_within(Path::new("/nonexistent/x"), "nfs", Duration::from_secs(5))
            .map(|_| ())
            .unwrap_err();
        assert!(err.contains("No such file"), "{err}");
    }

    #[test]
    fn unescape_leaves_short_escapes_alone() {
        assert_eq!(unescape(b"a\\04"), b"a\\04");
        assert_eq!(unescape(b"\\101"), b"A");
    }
}
