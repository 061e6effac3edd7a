//! Pools, datasets and snapshots as the probes see them, each listed with
//! one or two commands (and kept between calls by [`crate::cache`]), and
//! where their files are.
//!
//! On OpenZFS, `zfs list -H -p` gives exact numbers in one line per object.
//! zfs-fuse (and other old ZFS) has no `list -p`; there the pack lists names
//! with `zfs list -H -o name` and reads exact values with `zfs get -H -p`,
//! which it does have. Snapshots are ordered by `createtxg` (creation
//! seconds can tie), then creation time and name.

use sonde_packs::handler::ProbeError;
use sonde_protocol::schema::DATASET;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::parse::{fields, lines, parse_get, parse_size, text};
use crate::zfs::{Zfs, command_error, is_unsupported};

/// A file system or volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub name: String,
    /// `filesystem` or `volume`.
    pub kind: String,
    pub used: Option<u64>,
    pub available: Option<u64>,
    pub referenced: Option<u64>,
    /// `None` for `legacy`, `none` and volumes.
    pub mountpoint: Option<PathBuf>,
    pub mounted: Option<bool>,
    /// Unix seconds.
    pub creation: Option<i64>,
}

/// A snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `dataset@name`.
    pub name: String,
    pub createtxg: u64,
    /// Unix seconds.
    pub creation: i64,
    /// Space only this snapshot holds.
    pub used: u64,
    pub referenced: u64,
}

impl Snapshot {
    /// The part after `@`.
    pub fn short_name(&self) -> &str {
        self.name.split_once('@').map_or(&*self.name, |(_, s)| s)
    }

    /// The dataset part.
    pub fn dataset(&self) -> &str {
        self.name.split_once('@').map_or(&*self.name, |(d, _)| d)
    }
}

/// A listing and whether it is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    /// The command's output hit its bound: the list is partial.
    pub truncated: bool,
    /// Exact numbers (`-p`); false only if neither form gave them.
    pub exact: bool,
}

const DATASET_COLUMNS: &str = "name,type,used,available,referenced,mountpoint,creation,mounted";
const DATASET_PROPS: &str = "type,used,available,referenced,mountpoint,creation,mounted";
const SNAPSHOT_COLUMNS: &str = "name,type,createtxg,creation,used,referenced";
const SNAPSHOT_PROPS: &str = "type,createtxg,creation,used,referenced";

fn number(v: Option<&[u8]>) -> Option<u64> {
    v.and_then(|b| parse_size(&text(b)))
}

fn time(v: Option<&[u8]>) -> Option<i64> {
    v.and_then(|b| text(b).trim().parse::<i64>().ok())
}

fn to_dataset(name: &str, get: impl Fn(&str) -> Option<Vec<u8>>) -> Dataset {
    let mountpoint = get("mountpoint").and_then(|m| match m.as_slice() {
        b"-" | b"none" | b"legacy" | b"" => None,
        path if path.starts_with(b"/") => Some(PathBuf::from(OsStr::from_bytes(path))),
        _ => None,
    });
    Dataset {
        name: name.to_owned(),
        kind: get("type").map(|t| text(&t)).unwrap_or_default(),
        used: number(get("used").as_deref()),
        available: number(get("available").as_deref()),
        referenced: number(get("referenced").as_deref()),
        mountpoint,
        mounted: get("mounted").and_then(|m| match m.as_slice() {
            b"yes" => Some(true),
            b"no" => Some(false),
            _ => None,
        }),
        creation: time(get("creation").as_deref()),
    }
}

/// File systems and volumes (below `root` when given), sorted by name.
pub fn datasets(zfs: &Zfs<'_>, root: Option<&str>) -> Result<Listing<Dataset>, ProbeError> {
    let mut args = vec!["-H", "-p", "-o", DATASET_COLUMNS, "-t", "filesystem,volume"];
    if let Some(r) = root {
        args.extend(["-r", r]);
    }
    let out = zfs.run("zfs", "list", &args)?;
    if out.success() {
        let names: Vec<&str> = DATASET_COLUMNS.split(',').collect();
        let mut items: Vec<Dataset> = lines(&out.stdout)
            .filter_map(|line| {
                let f = fields(line);
                if f.len() < names.len() {
                    return None;
                }
                let name = std::str::from_utf8(f[0]).ok()?;
                Some(to_dataset(name, |prop| {
                    let i = names.iter().position(|n| *n == prop)?;
                    f.get(i).map(|v| v.to_vec())
                }))
            })
            .collect();
        items.sort_by(|a, b| a.name.cmp(&b.name));
        return Ok(Listing {
            items,
            truncated: out.stdout_truncated,
            exact: true,
        });
    }
    if !is_unsupported(&out) {
        return Err(command_error("zfs", "list", &out));
    }
    // Old ZFS: names, then exact values with `zfs get -p`.
    let mut args = vec!["-H", "-o", "name", "-t", "filesystem,volume"];
    if let Some(r) = root {
        args.extend(["-r", r]);
    }
    let listed = zfs.ok("zfs", "list", &args)?;
    let names: Vec<String> = lines(&listed.stdout)
        .filter_map(|l| std::str::from_utf8(l).ok())
        .filter(|n| DATASET.validate(n).is_ok())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Ok(Listing {
            items: Vec::new(),
            truncated: listed.stdout_truncated,
            exact: true,
        });
    }
    let mut get_args = vec!["-H", "-p", "-o", "name,property,value", DATASET_PROPS];
    get_args.extend(names.iter().map(String::as_str));
    let got = zfs.ok("zfs", "get", &get_args)?;
    let props = parse_get(&got.stdout);
    let items = names
        .iter()
        .filter_map(|n| {
            let p = props.get(n)?;
            Some(to_dataset(n, |k| p.get(k).cloned()))
        })
        .collect();
    Ok(Listing {
        items,
        truncated: listed.stdout_truncated || got.stdout_truncated,
        exact: true,
    })
}

/// One dataset by name.
pub fn dataset(zfs: &Zfs<'_>, name: &str) -> Result<Dataset, ProbeError> {
    let out = zfs.ok(
        "zfs",
        "get",
        &["-H", "-p", "-o", "name,property,value", DATASET_PROPS, name],
    )?;
    let props = parse_get(&out.stdout);
    let p = props
        .get(name)
        .ok_or_else(|| ProbeError::NotFound(format!("no dataset {name}")))?;
    let ds = to_dataset(name, |k| p.get(k).cloned());
    if ds.kind != "filesystem" && ds.kind != "volume" {
        return Err(ProbeError::InvalidInput(format!(
            "{name} is a {}, not a file system or volume",
            ds.kind
        )));
    }
    Ok(ds)
}

fn sort_snapshots(snaps: &mut [Snapshot]) {
    snaps.sort_by(|a, b| {
        a.dataset()
            .cmp(b.dataset())
            .then(a.createtxg.cmp(&b.createtxg))
            .then(a.creation.cmp(&b.creation))
            .then(a.name.cmp(&b.name))
    });
}

/// Snapshots of `dataset` (not of its children), or of every dataset when
/// `None`; sorted by dataset, then oldest first.
pub fn snapshots(zfs: &Zfs<'_>, dataset: Option<&str>) -> Result<Listing<Snapshot>, ProbeError> {
    // `-t all` and a filter on the type, rather than `-t snapshot`: no argv
    // the pack builds holds a word that is also a mutating subcommand.
    let mut args = vec!["-H", "-p", "-t", "all", "-o", SNAPSHOT_COLUMNS];
    if let Some(d) = dataset {
        args.extend(["-d", "1", d]);
    }
    let out = zfs.run("zfs", "list", &args)?;
    let (mut items, truncated) = if out.success() {
        let items = lines(&out.stdout)
            .filter_map(|line| {
                let f = fields(line);
                if f.get(1) != Some(&&b"snapshot"[..]) {
                    return None;
                }
                let name = std::str::from_utf8(f.first()?).ok()?;
                Some(Snapshot {
                    name: name.to_owned(),
                    createtxg: number(f.get(2).copied()).unwrap_or(0),
                    creation: time(f.get(3).copied()).unwrap_or(0),
                    used: number(f.get(4).copied()).unwrap_or(0),
                    referenced: number(f.get(5).copied()).unwrap_or(0),
                })
            })
            .collect::<Vec<_>>();
        (items, out.stdout_truncated)
    } else if is_unsupported(&out) {
        let mut args = vec!["-H", "-p", "-o", "name,property,value", "-r"];
        if let Some(d) = dataset {
            args.extend(["-d", "1"]);
            args.extend([SNAPSHOT_PROPS, d]);
        } else {
            args.push(SNAPSHOT_PROPS);
        }
        let got = zfs.ok("zfs", "get", &args)?;
        let items = parse_get(&got.stdout)
            .into_iter()
            .filter(|(_, p)| p.get("type").is_some_and(|t| t == b"snapshot"))
            .map(|(name, p)| Snapshot {
                createtxg: number(p.get("createtxg").map(Vec::as_slice)).unwrap_or(0),
                creation: time(p.get("creation").map(Vec::as_slice)).unwrap_or(0),
                used: number(p.get("used").map(Vec::as_slice)).unwrap_or(0),
                referenced: number(p.get("referenced").map(Vec::as_slice)).unwrap_or(0),
                name,
            })
            .collect::<Vec<_>>();
        (items, got.stdout_truncated)
    } else {
        return Err(command_error("zfs", "list", &out));
    };
    items.retain(|s| s.name.contains('@') && dataset.is_none_or(|d| s.dataset() == d));
    sort_snapshots(&mut items);
    Ok(Listing {
        items,
        truncated,
        exact: true,
    })
}

/// Where a dataset's live files are: its mount point, which must be mounted.
pub fn mountpoint(ds: &Dataset) -> Result<&Path, ProbeError> {
    if ds.kind == "volume" {
        return Err(ProbeError::Unsupported(format!(
            "{} is a volume (a block device), not a file system: it has no files to read",
            ds.name
        )));
    }
    let m = ds.mountpoint.as_deref().ok_or_else(|| {
        ProbeError::Unsupported(format!(
            "{} has no mount point of its own (mountpoint=legacy or none): the pack cannot find its files",
            ds.name
        ))
    })?;
    if ds.mounted == Some(false) {
        return Err(ProbeError::Unsupported(format!(
            "{} is not mounted (its mount point would be {}): its files and snapshots cannot be read until it is",
            ds.name,
            m.display()
        )));
    }
    Ok(m)
}

/// `<mountpoint>/.zfs/snapshot`, if this ZFS offers it.
pub fn snapshot_dir(ds: &Dataset) -> Result<PathBuf, ProbeError> {
    let dir = mountpoint(ds)?.join(".zfs").join("snapshot");
    // `.zfs` is hidden (not listed) by default but can always be looked up.
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => Ok(dir),
        _ => Err(ProbeError::Unsupported(format!(
            "{} has no {} directory: this ZFS does not expose snapshot contents (zfs-fuse and some old versions do not), so only snapshot names, times and sizes are available; files can be read from the live file system",
            ds.name,
            dir.display()
        ))),
    }
}

/// The directory of one snapshot's files.
pub fn snapshot_root(snapdir: &Path, snap: &Snapshot) -> Result<PathBuf, ProbeError> {
    let short = snap.short_name();
    if short.is_empty()
        || short == "."
        || short == ".."
        || short.contains('/')
        || short.contains('\0')
    {
        return Err(ProbeError::Failed(format!(
            "snapshot name {:?} cannot be a directory name",
            snap.name
        )));
    }
    Ok(snapdir.join(short))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_sort_by_txg_before_time() {
        let s = |name: &str, txg, creation| Snapshot {
            name: name.into(),
            createtxg: txg,
            creation,
            used: 0,
            referenced: 0,
        };
        let mut v = vec![s("t/h@b", 11, 100), s("t/h@a", 16, 100), s("t/a@z", 1, 5)];
        sort_snapshots(&mut v);
        let names: Vec<&str> = v.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["t/a@z", "t/h@b", "t/h@a"]);
    }

    #[test]
    fn mount_points() {
        let ds = to_dataset("tank/x", |k| match k {
            "type" => Some(b"filesystem".to_vec()),
            "mountpoint" => Some(b"/mnt/a b\xff".to_vec()),
            "mounted" => Some(b"no".to_vec()),
            "creation" => Some(b"1700000000".to_vec()),
            _ => None,
        });
        assert_eq!(
            ds.mountpoint.as_deref().map(|p| p.as_os_str().as_bytes()),
            Some(&b"/mnt/a b\xff"[..])
        );
        assert_eq!(ds.creation, Some(1_700_000_000));
        let err = mountpoint(&ds).unwrap_err();
        assert!(matches!(err, ProbeError::Unsupported(ref m) if m.contains("not mounted")));
        let legacy = to_dataset("tank/y", |k| {
            (k == "mountpoint").then(|| b"legacy".to_vec())
        });
        assert!(
            mountpoint(&legacy)
                .unwrap_err()
                .to_string()
                .contains("legacy")
        );
    }
}
