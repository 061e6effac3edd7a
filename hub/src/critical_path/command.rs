//! `sonde-hub paths …` and `sonde-hub trending`: through the running hub's
//! admin socket (a run and a definition need the live fleet).

use anyhow::Context;
use serde_json::Value;
use sonde_admin::api::{PathDefinition, PathInfo, TrendingQuery};
use std::fmt::Write as _;
use std::path::Path;

use crate::cli::PathCommand;
use crate::commands::{Out, ago, require_hub, table};
use crate::datadir::DataDir;

/// Reads a definition from a TOML or JSON file (`-`: TOML on stdin).
pub fn read_definition(file: &Path) -> anyhow::Result<PathDefinition> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading the definition from stdin")?
    } else {
        std::fs::read_to_string(file)
            .with_context(|| format!("reading the path definition {}", file.display()))?
    };
    let json = file.extension().is_some_and(|e| e == "json");
    if json {
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a path definition", file.display()))
    } else {
        toml::from_str(&text)
            .with_context(|| format!("{} is not a path definition", file.display()))
    }
}

fn show(p: &PathInfo) -> String {
    let d = &p.definition;
    let mut o = d.name.clone();
    if !d.description.is_empty() {
        let _ = write!(o, " — {}", d.description);
    }
    let _ = writeln!(
        o,
        "\n  defined by {} ({}), on failure: {:?}",
        p.defined_by,
        ago(Some(p.updated_at_ms)),
        d.on_failure
    );
    for (i, s) in d.steps.iter().enumerate() {
        let _ = writeln!(o, "  {}. {}", i + 1, s.name);
        for c in &s.checks {
            let params = if c.params.is_empty() {
                String::new()
            } else {
                format!(" {}", Value::Object(c.params.clone()))
            };
            let _ = writeln!(o, "     - {} {}{params}", c.target, c.probe);
            for e in &c.expect {
                let text = match e {
                    sonde_admin::api::ExpectationDef::Text(t) => t.clone(),
                    other => serde_json::to_string(other).unwrap_or_default(),
                };
                let _ = writeln!(o, "         expect {text}");
            }
        }
    }
    match &p.last_run {
        Some(r) => {
            let _ = writeln!(
                o,
                "  last run: {} by {}: {}",
                ago(Some(r.at_ms)),
                r.by,
                r.summary
            );
        }
        None => o.push_str("  last run: never\n"),
    }
    o
}

fn report(v: &Value) -> String {
    let mut o = format!(
        "{}: {}\n",
        v["path"].as_str().unwrap_or("?"),
        v["summary"].as_str().unwrap_or("?")
    );
    for s in v["steps"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {}. {:<8} {}",
            s["index"],
            s["status"].as_str().unwrap_or("?"),
            s["name"].as_str().unwrap_or("?")
        );
        for c in s["checks"].as_array().into_iter().flatten() {
            let status = c["status"].as_str().unwrap_or("-");
            let _ = writeln!(
                o,
                "       {status:<7} {} {}",
                c["target"].as_str().unwrap_or("?"),
                c["probe"].as_str().unwrap_or("?")
            );
            if let Some(m) = c["error"]["message"].as_str() {
                let _ = writeln!(o, "               {m}");
            }
            for e in c["expectations"].as_array().into_iter().flatten() {
                if e["ok"] == Value::Bool(false) {
                    let _ = writeln!(
                        o,
                        "               {} — {} (found {})",
                        e["expect"].as_str().unwrap_or("?"),
                        e["reason"].as_str().unwrap_or("?"),
                        e["actual"]
                    );
                }
            }
        }
    }
    o
}

pub async fn paths(data: &DataDir, out: Out, cmd: PathCommand) -> anyhow::Result<u8> {
    match cmd {
        PathCommand::Add { file } => {
            let def = read_definition(&file)?;
            let defined = require_hub(data, async |c| c.define_path(&def).await).await?;
            out.print(&defined, |d| {
                let mut o = format!(
                    "critical path {} {} ({} steps)\n",
                    d.info.definition.name,
                    if d.replaced { "replaced" } else { "defined" },
                    d.info.definition.steps.len()
                );
                for w in &d.warnings {
                    let _ = writeln!(o, "warning: {w}");
                }
                o
            })?;
        }
        PathCommand::List => {
            let paths = require_hub(data, async |c| c.paths().await).await?;
            out.print(&paths, |ps| {
                table(
                    &["NAME", "STEPS", "CHECKS", "LAST RUN", "RESULT"],
                    ps.iter()
                        .map(|p| {
                            let d = &p.definition;
                            vec![
                                d.name.clone(),
                                d.steps.len().to_string(),
                                d.steps
                                    .iter()
                                    .map(|s| s.checks.len())
                                    .sum::<usize>()
                                    .to_string(),
                                ago(p.last_run.as_ref().map(|r| r.at_ms)),
                                p.last_run
                                    .as_ref()
                                    .map_or_else(|| "-".into(), |r| r.summary.clone()),
                            ]
                        })
                        .collect(),
                )
            })?;
        }
        PathCommand::Show { name } => {
            let p = require_hub(data, async |c| c.path(&name).await).await?;
            out.print(&p, show)?;
        }
        PathCommand::Remove { name } => {
            let p = require_hub(data, async |c| c.remove_path(&name).await).await?;
            out.print(&p, |p| {
                format!("critical path {} removed\n", p.definition.name)
            })?;
        }
        PathCommand::Run { name } => {
            let r = require_hub(data, async |c| c.run_path(&name).await).await?;
            out.print(&r, report)?;
            // Exit status 1 when the path is broken (for scripts and cron).
            return Ok(u8::from(r["ok"] != Value::Bool(true)));
        }
    }
    Ok(0)
}

pub async fn trending(data: &DataDir, out: Out, q: TrendingQuery) -> anyhow::Result<()> {
    let v = require_hub(data, async |c| c.trending(&q).await).await?;
    out.print(&v, |v| {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "window {} (vs the {} before): {}",
            v["window"]["length"].as_str().unwrap_or("?"),
            v["window"]["length"].as_str().unwrap_or("?"),
            v["summary"].as_str().unwrap_or("")
        );
        let rows = v["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| {
                let c = &g["current"];
                let p = &g["previous"];
                vec![
                    g["target"].as_str().unwrap_or("?").to_owned(),
                    g["probe"].as_str().unwrap_or("?").to_owned(),
                    format!("{} ({})", c["calls"], p["calls"]),
                    format!("{} ({})", c["failures"], p["failures"]),
                    format!("{} ({})", c["p95_ms"], p["p95_ms"]),
                    g["change"]["note"].as_str().unwrap_or("").to_owned(),
                ]
            })
            .collect();
        o.push_str(&table(
            &[
                "TARGET",
                "PROBE",
                "CALLS (PREV)",
                "FAILURES (PREV)",
                "P95 MS (PREV)",
                "CHANGE",
            ],
            rows,
        ));
        o
    })
}
