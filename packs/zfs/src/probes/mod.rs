//! The probes, one file per family, and what they share: the per-call
//! context (settings, the read-only `zfs` runner, the clock), snapshot
//! selection and the server-side caps on every caller-given bound.
//!
//! A bound the caller gives is capped by the server; asking for more than
//! the cap is not an error: the cap applies, and a result that was cut
//! short says so with `truncated: true` (and `limits` in the data shows
//! what was applied).

pub mod changes;
pub mod datasets;
pub mod files;
pub mod history;
pub mod pools;
pub mod snapshots;
pub mod space;

use serde_json::{Map, Value, json};
use sonde_packs::handler::{ProbeContext, ProbeError, ProbeOutput};
use sonde_protocol::path::RelativePath;
use sonde_protocol::schema::ValidatedParams;
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use crate::cache::ModelCache;
use crate::model::{self, Dataset, Snapshot};
use crate::select::{self, Selected, format_time};
use crate::settings::Settings;
use crate::tree::Root;
use crate::zfs::Zfs;

/// Longest a file-system walk may take (and never past the deadline).
pub const WALK_TIMEOUT: Duration = Duration::from_secs(30);

/// A caller's bound after the server's cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub value: usize,
    /// The caller asked for more than the cap.
    pub capped: bool,
}

/// The integer parameter `name` (or `default`), capped at `cap`.
pub fn limit(params: &ValidatedParams, name: &str, default: usize, cap: usize) -> Limit {
    let asked = params
        .i64(name)
        .map_or(default, |v| usize::try_from(v.max(1)).unwrap_or(usize::MAX));
    Limit {
        value: asked.min(cap),
        capped: asked > cap,
    }
}

/// The parameters that choose a snapshot (by name, keyword or time).
pub const SELECTOR_PARAMS: &[&str] = &["snapshot", "from", "to", "since", "before"];

/// Per-call context.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub probe: &'a ProbeContext<'a>,
    pub zfs: Zfs<'a>,
    pub settings: Settings,
    /// Unix seconds.
    pub now: i64,
    /// The model kept between calls.
    pub cache: &'a ModelCache,
    params: &'a ValidatedParams,
    /// A listing was cut short by its output bound.
    partial: Cell<bool>,
    /// The bounds applied, reported in the result.
    limits: RefCell<Map<String, Value>>,
    /// How time expressions were resolved, reported in the result.
    times: RefCell<Map<String, Value>>,
    /// Warnings for the result.
    warnings: RefCell<Vec<String>>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        probe: &'a ProbeContext<'a>,
        cache: &'a ModelCache,
        params: &'a ValidatedParams,
    ) -> Result<Self, ProbeError> {
        Ok(Ctx {
            probe,
            zfs: Zfs::new(probe),
            settings: probe.settings_as()?,
            now: sonde_protocol::time::now_ms() / 1000,
            cache,
            params,
            partial: Cell::new(false),
            limits: RefCell::new(Map::new()),
            times: RefCell::new(Map::new()),
            warnings: RefCell::new(Vec::new()),
        })
    }

    /// A bound parameter, recorded for the result's `limits`.
    pub fn limit(&self, params: &ValidatedParams, name: &str, default: usize, cap: usize) -> Limit {
        let l = limit(params, name, default, cap);
        let mut v = json!({"applied": l.value, "cap": cap});
        if l.capped {
            v["capped"] = json!(true);
        }
        self.limits.borrow_mut().insert(name.to_owned(), v);
        l
    }

    /// A warning for the result's `warnings`.
    pub fn warn(&self, message: impl Into<String>) {
        self.warnings.borrow_mut().push(message.into());
    }

    /// When a walk must stop.
    pub fn walk_deadline(&self) -> Instant {
        self.probe.deadline.min(Instant::now() + WALK_TIMEOUT)
    }

    /// The result, with `limits`, `time_selection` and `warnings` added,
    /// and `truncated` set if anything was cut short.
    pub fn output(&self, mut data: Value, truncated: bool) -> Result<ProbeOutput, ProbeError> {
        if let Some(obj) = data.as_object_mut() {
            let limits = self.limits.borrow();
            if !limits.is_empty() {
                obj.insert("limits".into(), Value::Object(limits.clone()));
            }
            let times = self.times.borrow();
            if !times.is_empty() {
                obj.insert("time_selection".into(), Value::Object(times.clone()));
            }
            let warnings = self.warnings.borrow();
            if !warnings.is_empty() {
                obj.insert("warnings".into(), json!(*warnings));
            }
        }
        Ok(ProbeOutput {
            data,
            truncated: truncated || self.partial.get(),
        })
    }

    /// The `dataset` parameter, checked against the allowlist and loaded.
    pub fn dataset(&self, params: &ValidatedParams) -> Result<Dataset, ProbeError> {
        let name = params
            .str("dataset")
            .ok_or_else(|| ProbeError::InvalidInput("parameter `dataset` is required".into()))?;
        self.settings.require(name)?;
        self.cache.dataset(&self.zfs, name, self.now)
    }

    /// Visible file systems and volumes (`root` and below, when given),
    /// sorted by name.
    pub fn datasets(&self, root: Option<&str>) -> Result<Vec<Dataset>, ProbeError> {
        let within = |d: &Dataset| {
            root.is_none_or(|r| {
                d.name == r || d.name.strip_prefix(r).is_some_and(|t| t.starts_with('/'))
            })
        };
        let (mut listing, fresh) = self.cache.datasets(&self.zfs, self.now, false)?;
        if let Some(r) = root
            && !listing.items.iter().any(|d| d.name == r)
        {
            if !fresh {
                listing = self.cache.datasets(&self.zfs, self.now, true)?.0;
            }
            if !listing.items.iter().any(|d| d.name == r) {
                return Err(ProbeError::NotFound(format!(
                    "no file system or volume {r} (zfs.list_datasets without `root` lists them)"
                )));
            }
        }
        self.partial.set(self.partial.get() || listing.truncated);
        Ok(listing
            .items
            .iter()
            .filter(|d| within(d) && self.settings.allows(&d.name))
            .cloned()
            .collect())
    }

    /// The snapshots of one dataset, oldest first: the cached model, listed
    /// again first when a selector parameter of this call names a snapshot
    /// it lacks or a time after it was listed.
    pub fn snapshots(&self, ds: &Dataset) -> Result<Vec<Snapshot>, ProbeError> {
        let got = self.cache.snapshots(&self.zfs, ds, self.now, false)?;
        let got = if !got.fresh && self.needs_newer_list(&ds.name, &got) {
            self.cache.snapshots(&self.zfs, ds, self.now, true)?
        } else {
            got
        };
        self.partial.set(self.partial.get() || got.truncated);
        Ok(got.list.as_ref().clone())
    }

    /// Whether a selector of this call may name something newer than the
    /// listing `got`.
    fn needs_newer_list(&self, dataset: &str, got: &crate::cache::Snapshots) -> bool {
        SELECTOR_PARAMS.iter().any(|p| {
            let Some(sel) = self.params.str(p) else {
                return false;
            };
            match select::kind_of(sel, self.now) {
                select::SelectorKind::Keyword => false,
                select::SelectorKind::Name => {
                    select::choose(&got.list, dataset, sel, self.now).is_err()
                }
                select::SelectorKind::Time => {
                    let named = select::choose(&got.list, dataset, sel, self.now)
                        .is_ok_and(|c| c.by_time.is_none());
                    !named
                        && select::parse_time(sel, self.now)
                            .is_some_and(|t| t.end >= got.listed_unix)
                }
            }
        })
    }

    /// Every visible snapshot, by dataset then oldest first.
    pub fn all_snapshots(&self) -> Result<Vec<Snapshot>, ProbeError> {
        let listing = self.cache.all_snapshots(&self.zfs, self.now)?;
        self.partial.set(self.partial.get() || listing.truncated);
        Ok(listing
            .items
            .iter()
            .filter(|s| self.settings.allows(&s.name))
            .cloned()
            .collect())
    }

    /// The default selector: `live`, or `latest` where the live file
    /// system is off limits.
    pub fn live_or_latest(&self) -> &'static str {
        if self.settings.live { "live" } else { "latest" }
    }

    /// Resolves the selector parameter `param` (`default` when absent); a
    /// time is recorded in the result's `time_selection` (how far the
    /// snapshot is from it), with a warning when that is far.
    pub fn select(
        &self,
        ds: &Dataset,
        snaps: &[Snapshot],
        params: &ValidatedParams,
        param: &str,
        default: &str,
    ) -> Result<Selected, ProbeError> {
        let selector = params.str(param).unwrap_or(default);
        let choice = select::choose(snaps, &ds.name, selector, self.now)
            .map_err(|e| ProbeError::InvalidInput(format!("{param}: {e}")))?;
        if choice.selected == Selected::Live {
            self.settings.require_live()?;
        }
        if let (Some(m), Selected::Snapshot(i)) = (&choice.by_time, choice.selected)
            && let Some(snap) = snaps.get(i)
        {
            let mut v = json!({
                "asked": selector,
                "asked_time": format_time(m.asked.end),
                "snapshot": snap.short_name(),
                "snapshot_time": format_time(snap.creation),
                "distance_seconds": m.distance,
                "distance": select::duration_text(m.distance),
            });
            if m.asked.start != m.asked.end {
                v["asked_day_start"] = json!(format_time(m.asked.start));
            }
            if let Some(w) = &m.warning {
                v["warning"] = json!(w);
                self.warn(format!("{param}: {w}"));
            }
            self.times.borrow_mut().insert(param.to_owned(), v);
        }
        Ok(choice.selected)
    }

    /// The files of a selection.
    pub fn root(
        &self,
        ds: &Dataset,
        snaps: &[Snapshot],
        sel: Selected,
    ) -> Result<Root, ProbeError> {
        match sel {
            Selected::Live => {
                self.settings.require_live()?;
                self.live_root(ds)
            }
            Selected::Snapshot(i) => {
                let snap = snaps
                    .get(i)
                    .ok_or_else(|| ProbeError::Failed("snapshot index out of range".into()))?;
                let dir = model::snapshot_dir(ds)?;
                self.snapshot_root(&dir, ds, snap)
            }
        }
    }

    /// The dataset's live files.
    pub fn live_root(&self, ds: &Dataset) -> Result<Root, ProbeError> {
        let root = Root::open(model::mountpoint(ds)?, true)?;
        let own = self.probe.secrets.protected().inodes_on(root.dev);
        Ok(root.protecting(own))
    }

    /// The object numbers of the agent's own files on the dataset (by the
    /// device of its live mount point; none when it is not mounted).
    fn own_objects(&self, ds: &Dataset) -> Vec<u64> {
        let protected = self.probe.secrets.protected();
        if protected.roots().is_empty() {
            return Vec::new();
        }
        model::mountpoint(ds)
            .ok()
            .and_then(|m| rustix::fs::stat(m).ok())
            .map(|st| protected.inodes_on(st.st_dev))
            .unwrap_or_default()
    }

    /// One snapshot's files; a snapshot that vanished since the model was
    /// listed (destroyed) drops the dataset's cached list.
    pub fn snapshot_root(
        &self,
        snapdir: &std::path::Path,
        ds: &Dataset,
        snap: &Snapshot,
    ) -> Result<Root, ProbeError> {
        match Root::open(&model::snapshot_root(snapdir, snap)?, false) {
            Ok(root) => Ok(root.protecting(self.own_objects(ds))),
            Err(ProbeError::NotFound(_)) => {
                self.cache.forget(&ds.name);
                Err(ProbeError::NotFound(format!(
                    "snapshot {} no longer exists (destroyed since it was listed); ask again",
                    snap.name
                )))
            }
            other => other,
        }
    }
}

/// The relative-path parameter `name` (the root when absent).
pub fn path_param(params: &ValidatedParams, name: &str) -> RelativePath {
    params.path(name).unwrap_or_default()
}

/// How a snapshot is shown in results.
pub fn snapshot_json(s: &Snapshot) -> Value {
    json!({
        "name": s.short_name(),
        "full_name": s.name,
        "time": format_time(s.creation),
        "unix": s.creation,
    })
}

/// How a selection is shown in results.
pub fn selected_json(snaps: &[Snapshot], sel: Selected) -> Value {
    match sel {
        Selected::Live => json!({"name": "live"}),
        Selected::Snapshot(i) => snaps.get(i).map_or(Value::Null, snapshot_json),
    }
}

/// A finding for the diagnose report: `error`, `warning` or `info`.
pub fn finding(severity: &str, message: impl Into<String>) -> Value {
    json!({"severity": severity, "message": message.into()})
}

/// A time as Unix seconds and ISO text.
pub fn time_json(t: Option<i64>) -> Value {
    match t {
        Some(t) => json!({"unix": t, "time": format_time(t)}),
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sonde_protocol::schema::{ParamSpec, validate};

    #[test]
    fn bounds_are_capped_not_refused() {
        let specs: Vec<ParamSpec> = vec![
            serde_json::from_value(json!({"name": "limit", "type": "integer", "min": 1})).unwrap(),
        ];
        let p = |v: Value| validate(&specs, v.as_object().unwrap()).unwrap();
        assert_eq!(
            limit(&p(json!({})), "limit", 100, 1000),
            Limit {
                value: 100,
                capped: false
            }
        );
        assert_eq!(
            limit(&p(json!({"limit": 5})), "limit", 100, 1000),
            Limit {
                value: 5,
                capped: false
            }
        );
        assert_eq!(
            limit(&p(json!({"limit": 50_000})), "limit", 100, 1000),
            Limit {
                value: 1000,
                capped: true
            }
        );
    }
}
