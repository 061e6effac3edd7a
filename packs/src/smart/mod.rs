//! The `smart` pack: disk health through `smartctl --json` (read-only forms
//! only, [`smartctl::check_argv`]), interpreted in [`health`].
//!
//! What it needs (see packs/smart/README.md): the agent's user in group
//! `disk` (to open `/dev/sd*`, `/dev/sg*`, `/dev/nvme*n*` read-only), and
//! the probe sandbox lets `smartctl` issue ioctls on those nodes without
//! ever opening one for writing (`[sandbox] read_devices`). With that,
//! SCSI/SAS disks report fully; SATA disks need `CAP_SYS_RAWIO` and NVMe
//! health logs `CAP_SYS_ADMIN`, which under `no_new_privs` only an ambient
//! capability of the agent's service can give: the pack says so per disk.
//!
//! No settings.

pub mod health;
pub mod smartctl;

use serde::Deserialize;
use serde_json::{Value, json};
use sonde_protocol::schema::ValidatedParams;
use std::sync::Arc;

use crate::handler::{PackDef, ProbeContext, ProbeError, ProbeHandler, ProbeOutput};
use crate::manifest::ManifestError;
use crate::system::finding;
use smartctl::Form;

pub const MANIFEST: &str = include_str!("../../smart/pack.toml");

/// Most disks one call reads.
pub const MAX_DISKS: usize = 32;

/// `[packs.smart]` takes no settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {}

pub fn check_settings(value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    serde_json::from_value::<Settings>(value.clone())
        .map(|_| ())
        .map_err(|e| format!("the smart pack takes no settings: {e}"))
}

/// Parses smartctl's JSON; when it is not JSON, names the installed
/// version if it is too old to speak it.
fn parse_json(ctx: &ProbeContext<'_>, out: &crate::exec::ExecOutput) -> Result<Value, ProbeError> {
    if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout)
        && v.is_object()
    {
        return Ok(v);
    }
    let version = smartctl::run(ctx, &smartctl::argv(Form::Version, None, None, false))
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    Err(ProbeError::Unsupported(format!(
        "smartctl did not answer in JSON ({}): smartmontools 7.0 or newer is needed for --json{}",
        out.stderr_text().chars().take(200).collect::<String>(),
        if version.is_empty() {
            String::new()
        } else {
            format!("; installed: {version}")
        }
    )))
}

fn version_of(v: &Value) -> Option<String> {
    let parts: Vec<String> = v["smartctl"]["version"]
        .as_array()?
        .iter()
        .filter_map(Value::as_u64)
        .map(|n| n.to_string())
        .collect();
    (!parts.is_empty()).then(|| parts.join("."))
}

/// A device smartctl names: (name, device type).
type Device = (String, Option<String>);

/// The devices smartctl finds: (name, type).
fn scan(ctx: &ProbeContext<'_>, open: bool) -> Result<(Value, Vec<Device>), ProbeError> {
    let form = if open { Form::ScanOpen } else { Form::Scan };
    let out = smartctl::run(ctx, &smartctl::argv(form, None, None, false))?;
    let v = parse_json(ctx, &out)?;
    let list = v["devices"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|x| {
                    let name = x["name"].as_str()?.to_owned();
                    Some((name, x["type"].as_str().map(str::to_owned)))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((v, list))
}

fn list_probe(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let open = params.bool("open").unwrap_or(true);
    let (v, _) = scan(ctx, open)?;
    let devices: Vec<Value> = v["devices"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|x| {
                    json!({
                        "name": x["name"],
                        "info_name": x["info_name"],
                        "type": x["type"],
                        "protocol": x["protocol"],
                        "readable_by_the_pack": x["name"].as_str().is_some_and(smartctl::is_device),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let note = devices.is_empty().then(|| {
        "smartctl found no disk: virtual disks (/dev/vd*, /dev/xvd*) have no SMART data, and disks behind some RAID controllers need a device type"
            .to_owned()
    });
    Ok(ProbeOutput::new(json!({
        "smartctl_version": version_of(&v),
        "opened": open,
        "count": devices.len(),
        "devices": devices,
        "messages": health::messages(&v),
        "note": note,
    })))
}

/// One device's smartctl JSON (`--all` or `--xall`).
fn read_device(
    ctx: &ProbeContext<'_>,
    form: Form,
    device: &str,
    device_type: Option<&str>,
    wake: bool,
) -> Result<Value, ProbeError> {
    if !smartctl::is_device(device) {
        return Err(ProbeError::InvalidInput(format!(
            "{device} is not a disk device the pack reads (/dev/sdX, /dev/sgN, /dev/nvmeN[nM], /dev/disk/by-id/…)"
        )));
    }
    let out = smartctl::run(ctx, &smartctl::argv(form, Some(device), device_type, wake))?;
    parse_json(ctx, &out)
}

fn targets(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<(Vec<Device>, bool), ProbeError> {
    let device_type = params.str("device_type").map(str::to_owned);
    if let Some(d) = params.str("device") {
        return Ok((vec![(d.to_owned(), device_type)], false));
    }
    if device_type.is_some() {
        return Err(ProbeError::InvalidInput(
            "device_type applies to one device: give device as well".into(),
        ));
    }
    let (_, mut list) = scan(ctx, true)?;
    // Devices the pack cannot name (a RAID controller's /dev/bus/N) are
    // left out rather than failing the whole answer.
    list.retain(|(name, _)| smartctl::is_device(name));
    let truncated = list.len() > MAX_DISKS;
    list.truncate(MAX_DISKS);
    Ok((list, truncated))
}

fn health_probe(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let wake = params.bool("wake").unwrap_or(false);
    let (list, mut truncated) = targets(ctx, params)?;
    let mut disks = Vec::new();
    let mut findings = Vec::new();
    for (device, device_type) in &list {
        if ctx.expired() {
            truncated = true;
            findings.push(finding(
                "info",
                "the probe's time ran out before every disk was read",
            ));
            break;
        }
        match read_device(ctx, Form::All, device, device_type.as_deref(), wake) {
            Ok(v) => {
                let (s, mut f) = health::summarise(&v, device, 3);
                disks.push(s);
                findings.append(&mut f);
            }
            Err(e) if params.str("device").is_some() => return Err(e),
            Err(e) => {
                findings.push(finding("warning", format!("{device}: {e}")));
                disks.push(json!({"device": device, "verdict": "unknown", "readable": false, "reason": e.to_string()}));
            }
        }
    }
    let count = |v: &str| disks.iter().filter(|d| d["verdict"] == v).count();
    let counts = json!({
        "disks": disks.len(),
        "ok": count("ok"),
        "warning": count("warning"),
        "failing": count("failing"),
        "unknown": count("unknown"),
    });
    let note = disks
        .is_empty()
        .then(|| "smartctl found no disk here (virtual disks have no SMART data)".to_owned());
    ProbeOutput::from_serialize(
        &json!({"counts": counts, "disks": disks, "findings": findings, "note": note}),
        truncated,
    )
}

fn details_probe(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let device = params
        .str("device")
        .ok_or_else(|| ProbeError::InvalidInput("device is required".into()))?;
    let wake = params.bool("wake").unwrap_or(false);
    let v = read_device(ctx, Form::Xall, device, params.str("device_type"), wake)?;
    let (summary, findings) = health::summarise(&v, device, 64);
    let temps = &v["ata_sct_temperature_history"];
    Ok(ProbeOutput::new(json!({
        "summary": summary,
        "attributes": health::attributes(&v),
        "nvme_health_log": v["nvme_smart_health_information_log"],
        "nvme_error_log_entries": v["nvme_error_information_log"]["unread"],
        "scsi_error_counter_log": v["scsi_error_counter_log"],
        "ata_error_log": {
            "count": v["ata_smart_error_log"]["summary"]["count"]
                .as_u64()
                .or_else(|| v["ata_smart_error_log"]["extended"]["count"].as_u64()),
        },
        "temperature_limits": {
            "current": v["temperature"]["current"],
            "lifetime_min": v["temperature"]["lifetime_min"],
            "lifetime_max": v["temperature"]["lifetime_max"],
            "op_limit_max": v["temperature"]["op_limit_max"].as_i64().or_else(|| temps["op_limit_max"].as_i64()),
        },
        "messages": health::messages(&v),
        "smartctl_version": version_of(&v),
        "findings": findings,
    })))
}

pub fn pack() -> Result<PackDef, ManifestError> {
    let handlers: Vec<(&str, Arc<dyn ProbeHandler>)> = vec![
        ("disks.list", Arc::new(list_probe)),
        ("disks.health", Arc::new(health_probe)),
        ("disk.details", Arc::new(details_probe)),
    ];
    PackDef::builtin(MANIFEST, handlers, Some(check_settings))
}
