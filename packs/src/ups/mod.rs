//! The `ups` pack: a UPS's state through NUT's `upsc` ([`upsc`], argv
//! table), which asks `upsd` over TCP (port 3493 unless the settings say
//! otherwise; the probe sandbox lets `upsc` connect to that port only).
//!
//! Settings (`[packs.ups]` in agent.toml):
//! - `host = "127.0.0.1"`: where `upsd` listens (a host name, an IPv4
//!   address, or an IPv6 address in brackets);
//! - `port = 3493`: its port. The sandbox allowance follows it
//!   ([`sandbox_for_settings`]), so the operator sees and grants the port
//!   actually used.

pub mod status;
pub mod upsc;

use serde::Deserialize;
use serde_json::{Value, json};
use sonde_protocol::schema::ValidatedParams;
use std::sync::Arc;

use crate::handler::{PackDef, ProbeContext, ProbeError, ProbeHandler, ProbeOutput};
use crate::manifest::{ManifestError, SandboxSpec};
use crate::system::finding;
use upsc::{Answer, Form};

pub const MANIFEST: &str = include_str!("../../ups/pack.toml");

/// Most UPSes one call reports on (an upsd serving more is unusual).
pub const MAX_UPS: usize = 32;

/// `[packs.ups]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: default_host(),
            port: default_port(),
        }
    }
}

fn default_host() -> String {
    "127.0.0.1".into()
}

/// NUT's registered port.
pub const DEFAULT_PORT: u16 = 3493;

fn default_port() -> u16 {
    DEFAULT_PORT
}

impl Settings {
    /// `HOST:PORT` as `upsc` takes it.
    pub fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Refuses unknown keys, a host that is not a plain host name or address,
/// and port 0.
pub fn check_settings(value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    let s: Settings = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    if !upsc::is_host(&s.host) {
        return Err(format!(
            "host: {:?} is not a host name, IPv4 address or [IPv6] address",
            s.host
        ));
    }
    if s.port == 0 {
        return Err("port: 0 is not a port (upsd's default is 3493)".into());
    }
    Ok(())
}

/// The sandbox lets `upsc` connect to the port the settings name (instead
/// of the manifest's default 3493).
pub fn sandbox_for_settings(spec: &SandboxSpec, settings: &Value) -> SandboxSpec {
    let mut out = spec.clone();
    if let Ok(s) = serde_json::from_value::<Settings>(settings.clone()) {
        out.connect_tcp = vec![s.port];
    }
    out
}

/// A UPS upsd serves: (name, description).
type Named = (String, Option<String>);

fn ups_param(params: &ValidatedParams) -> Option<&str> {
    params.str("ups")
}

/// The UPS names to look at: the one asked for, or every one upsd serves.
/// Returns the names and their descriptions.
fn names(
    ctx: &ProbeContext<'_>,
    settings: &Settings,
    asked: Option<&str>,
) -> Result<(Vec<Named>, bool), ProbeError> {
    if let Some(name) = asked {
        return Ok((vec![(name.to_owned(), None)], false));
    }
    let text = match upsc::run(ctx, settings, Form::List, None)? {
        Answer::Ok(text) => text,
        Answer::UpsdError(e) => {
            return Err(ProbeError::Failed(format!(
                "upsd at {} could not list its UPSes: {e}",
                settings.server()
            )));
        }
    };
    let mut list = status::parse_list(&text);
    let truncated = list.len() > MAX_UPS;
    list.truncate(MAX_UPS);
    if list.is_empty() {
        return Err(ProbeError::NotFound(format!(
            "upsd at {} serves no UPS: configure one in ups.conf and start its driver (`upsdrvctl start`)",
            settings.server()
        )));
    }
    Ok((list, truncated))
}

fn status_probe(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let settings: Settings = ctx.settings_as()?;
    let asked = ups_param(params);
    let (list, truncated) = names(ctx, &settings, asked)?;
    let mut upses = Vec::new();
    let mut findings = Vec::new();
    for (name, description) in list {
        if ctx.expired() {
            return Err(ProbeError::Timeout);
        }
        match upsc::run(ctx, &settings, Form::Variables, Some(&name))? {
            Answer::Ok(text) => {
                let vars = status::parse_variables(&text);
                let now_days = sonde_protocol::time::now_ms().div_euclid(86_400_000);
                let (summary, mut f) = status::summarise(&name, &vars, now_days);
                let mut summary = summary;
                if let (Some(d), Some(obj)) = (description, summary.as_object_mut()) {
                    obj.insert("description".into(), json!(d));
                }
                findings.append(&mut f);
                upses.push(summary);
            }
            Answer::UpsdError(e) if e.contains("Unknown UPS") && asked.is_some() => {
                return Err(ProbeError::NotFound(format!(
                    "upsd at {} has no UPS named {name:?}; `ups.status` without `ups` lists every UPS it serves",
                    settings.server()
                )));
            }
            Answer::UpsdError(e) => {
                // A driver that lost its UPS (Data stale, Driver not
                // connected) is the finding, not a failed probe.
                findings.push(finding(
                    "error",
                    format!("UPS {name}: upsd has no current data ({e}): the driver lost contact with the UPS (cable, USB, the driver process)"),
                ));
                upses.push(json!({"name": name, "reachable": false, "error": e}));
            }
        }
    }
    ProbeOutput::from_serialize(
        &json!({"server": settings.server(), "upses": upses, "findings": findings}),
        truncated,
    )
}

fn variables_probe(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let settings: Settings = ctx.settings_as()?;
    let name =
        ups_param(params).ok_or_else(|| ProbeError::InvalidInput("ups is required".into()))?;
    match upsc::run(ctx, &settings, Form::Variables, Some(name))? {
        Answer::Ok(text) => {
            let vars = status::parse_variables(&text);
            Ok(ProbeOutput::new(json!({
                "ups": name,
                "count": vars.len(),
                "variables": vars,
            })))
        }
        Answer::UpsdError(e) if e.contains("Unknown UPS") => Err(ProbeError::NotFound(format!(
            "upsd at {} has no UPS named {name:?}",
            settings.server()
        ))),
        Answer::UpsdError(e) => Err(ProbeError::Failed(format!(
            "upsd at {} has no data for {name}: {e}",
            settings.server()
        ))),
    }
}

fn clients_probe(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let settings: Settings = ctx.settings_as()?;
    let asked = ups_param(params);
    let (list, truncated) = names(ctx, &settings, asked)?;
    let mut out = Vec::new();
    let mut findings = Vec::new();
    for (name, _) in list {
        match upsc::run(ctx, &settings, Form::Clients, Some(&name))? {
            Answer::Ok(text) => {
                let clients: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                if clients.is_empty() {
                    findings.push(finding(
                        "warning",
                        format!("UPS {name}: no upsmon is logged in, so no machine will shut down cleanly when its battery runs low (run upsmon with a MONITOR line for {name})"),
                    ));
                }
                out.push(json!({"ups": name, "clients": clients}));
            }
            Answer::UpsdError(e) if e.contains("Unknown UPS") && asked.is_some() => {
                return Err(ProbeError::NotFound(format!(
                    "upsd at {} has no UPS named {name:?}",
                    settings.server()
                )));
            }
            Answer::UpsdError(e) => {
                out.push(json!({"ups": name, "clients": null, "error": e}));
            }
        }
    }
    ProbeOutput::from_serialize(
        &json!({"server": settings.server(), "upses": out, "findings": findings}),
        truncated,
    )
}

pub fn pack() -> Result<PackDef, ManifestError> {
    let handlers: Vec<(&str, Arc<dyn ProbeHandler>)> = vec![
        ("status", Arc::new(status_probe)),
        ("variables", Arc::new(variables_probe)),
        ("clients", Arc::new(clients_probe)),
    ];
    Ok(PackDef::builtin(MANIFEST, handlers, Some(check_settings))?
        .with_sandbox_hook(sandbox_for_settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_the_port_follows_them() {
        assert!(check_settings(&Value::Null).is_ok());
        assert!(check_settings(&json!({"host": "nas.lan", "port": 3493})).is_ok());
        assert!(check_settings(&json!({"host": "[::1]"})).is_ok());
        for bad in [
            json!({"host": "a b"}),
            json!({"host": "-oProxyCommand=x"}),
            json!({"host": "h@x"}),
            json!({"port": 0}),
            json!({"port": 70000}),
            json!({"hots": "x"}),
        ] {
            assert!(check_settings(&bad).is_err(), "{bad}");
        }
        let def = pack().unwrap();
        assert_eq!(def.sandbox(&Value::Null).connect_tcp, vec![3493]);
        assert_eq!(
            def.sandbox(&json!({"port": 13493})).connect_tcp,
            vec![13493]
        );
        assert!(
            def.sandbox(&json!({"port": 13493}))
                .grants()
                .iter()
                .any(|g| g.contains("13493"))
        );
    }
}
