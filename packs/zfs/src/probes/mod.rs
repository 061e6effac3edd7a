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

/// Per-call context.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub probe: &'a ProbeContext<'a>,
    pub zfs: Zfs<'a>,
    pub settings: Settings,
    /// Unix seconds.
    pub now: i64,
    /// A listing was cut short by its output bound.
    partial: Cell<bool>,
    /// The bounds applied, reported in the result.
    limits: RefCell<Map<String, Value>>,
}

impl<'a> Ctx<'a> {
    pub fn new(probe: &'a ProbeContext<'a>) -> Result<Self, ProbeError> {
        Ok(Ctx {
            probe,
            zfs: Zfs::new(probe),
            settings: probe.settings_as()?,
            now: sonde_protocol::time::now_ms() / 1000,
            partial: Cell::new(false),
            limits: RefCell::new(Map::new()),
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

    /// When a walk must stop.
    pub fn walk_deadline(&self) -> Instant {
        self.probe.deadline.min(Instant::now() + WALK_TIMEOUT)
    }

    /// The result, with `limits` added and `truncated` set if anything was
    /// cut short.
    pub fn output(&self, mut data: Value, truncated: bool) -> Result<ProbeOutput, ProbeError> {
        let limits = self.limits.borrow();
        if !limits.is_empty()
            && let Some(obj) = data.as_object_mut()
        {
            obj.insert("limits".into(), Value::Object(limits.clone()));
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
        model::dataset(&self.zfs, name)
    }

    /// Visible file systems and volumes (below `root`).
    pub fn datasets(&self, root: Option<&str>) -> Result<Vec<Dataset>, ProbeError> {
        let listing = model::datasets(&self.zfs, root)?;
        self.partial.set(self.partial.get() || listing.truncated);
        Ok(listing
            .items
            .into_iter()
            .filter(|d| self.settings.allows(&d.name))
            .collect())
    }

    /// The snapshots of one dataset, oldest first (one command per call).
    pub fn snapshots(&self, ds: &Dataset) -> Result<Vec<Snapshot>, ProbeError> {
        let listing = model::snapshots(&self.zfs, Some(&ds.name))?;
        self.partial.set(self.partial.get() || listing.truncated);
        Ok(listing.items)
    }

    /// Every visible snapshot, by dataset then oldest first.
    pub fn all_snapshots(&self) -> Result<Vec<Snapshot>, ProbeError> {
        let listing = model::snapshots(&self.zfs, None)?;
        self.partial.set(self.partial.get() || listing.truncated);
        Ok(listing
            .items
            .into_iter()
            .filter(|s| self.settings.allows(&s.name))
            .collect())
    }

    /// The default selector: `live`, or `latest` where the live file
    /// system is off limits.
    pub fn live_or_latest(&self) -> &'static str {
        if self.settings.live { "live" } else { "latest" }
    }

    /// Resolves the selector parameter `param` (`default` when absent).
    pub fn select(
        &self,
        ds: &Dataset,
        snaps: &[Snapshot],
        params: &ValidatedParams,
        param: &str,
        default: &str,
    ) -> Result<Selected, ProbeError> {
        let selector = params.str(param).unwrap_or(default);
        let sel = select::select(snaps, &ds.name, selector, self.now)
            .map_err(|e| ProbeError::InvalidInput(format!("{param}: {e}")))?;
        if sel == Selected::Live {
            self.settings.require_live()?;
        }
        Ok(sel)
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
                Root::open(model::mountpoint(ds)?, true)
            }
            Selected::Snapshot(i) => {
                let snap = snaps
                    .get(i)
                    .ok_or_else(|| ProbeError::Failed("snapshot index out of range".into()))?;
                let dir = model::snapshot_dir(ds)?;
                Root::open(&model::snapshot_root(&dir, snap)?, false)
            }
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
