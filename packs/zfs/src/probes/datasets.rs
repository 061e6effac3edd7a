//! `list_datasets`, `dataset_properties`.

use serde_json::{Map, Value, json};
use sonde_packs::handler::{ProbeError, ProbeOutput};
use sonde_protocol::path::PathBytes;
use sonde_protocol::schema::ValidatedParams;
use std::os::unix::ffi::OsStrExt;

use super::{Ctx, time_json};
use crate::model::Dataset;
use crate::parse::{error_text, fields, lines, text};

pub fn dataset_json(d: &Dataset) -> Value {
    json!({
        "name": d.name,
        "type": d.kind,
        "used_bytes": d.used,
        "available_bytes": d.available,
        "referenced_bytes": d.referenced,
        "mountpoint": d.mountpoint.as_ref().map(|m| PathBytes::from(m.as_os_str().as_bytes())),
        "mounted": d.mounted,
        "created": time_json(d.creation),
    })
}

pub fn list_datasets(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let root = params.str("root");
    if let Some(r) = root
        && !ctx.settings.allows_below(r)
    {
        return Err(ctx.settings.outside(r));
    }
    let limit = ctx.limit(params, "limit", 1000, 10_000);
    let all = ctx.datasets(root)?;
    let list: Vec<Value> = all.iter().take(limit.value).map(dataset_json).collect();
    ctx.output(
        json!({"datasets": list, "total": all.len()}),
        all.len() > limit.value,
    )
}

pub fn dataset_properties(
    ctx: &Ctx<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let name = params
        .str("dataset")
        .ok_or_else(|| ProbeError::InvalidInput("parameter `dataset` is required".into()))?;
    ctx.settings.require(name)?;
    let wanted = params.strings("properties").unwrap_or_default();
    if let Some(word) = wanted.iter().find(|p| crate::zfs::MUTATING.contains(p)) {
        return Err(ProbeError::InvalidInput(format!(
            "{word:?} is not a ZFS property (`zfs get all` names them all)"
        )));
    }
    let list = if wanted.is_empty() {
        "all".to_owned()
    } else {
        wanted.join(",")
    };
    let out = ctx.zfs.run(
        "zfs",
        "get",
        &["-H", "-p", "-o", "property,value,source", &list, name],
    )?;
    if !out.success() {
        let err = error_text(&out.stderr);
        if err.contains("bad property list") || err.contains("invalid property") {
            return Err(ProbeError::InvalidInput(format!(
                "ZFS does not know one of the properties asked for ({err}); `zfs get all` names them all"
            )));
        }
        return Err(crate::zfs::command_error("zfs", "get", &out));
    }
    let mut props = Map::new();
    for line in lines(&out.stdout) {
        let f = fields(line);
        if let [prop, value, source, ..] = f.as_slice() {
            props.insert(
                text(prop),
                json!({"value": PathBytes::from(*value), "source": text(source)}),
            );
        }
    }
    ctx.output(
        json!({"dataset": name, "properties": props, "count": props.len()}),
        out.stdout_truncated,
    )
}
