//! Third-party declarative packs: manifests whose probes are argv templates.
//!
//! ```toml
//! [[probes]]
//! name = "smart.health"
//! description = "SMART health of one disk"
//! exec = ["smartctl", "--json", "-H", "{device}"]
//! parse = "json"
//! [[probes.params]]
//! name = "device"
//! type = "string"
//! pattern = "/dev/(sd[a-z]+|nvme[0-9]+n[0-9]+)"
//! ```
//!
//! Rules, checked when the manifest is loaded and again when a probe runs:
//! - `exec[0]` is a literal program name, never a placeholder, and never a
//!   shell, interpreter or exec-wrapper;
//! - a placeholder is a *whole* element `{param}` naming a declared
//!   parameter; braces anywhere else are refused, so values are never
//!   spliced into a larger string;
//! - list and path parameters cannot be placeholders;
//! - a value that starts with `-` is refused, so it cannot become an option
//!   of the program;
//! - an optional parameter that is absent drops its element.

use serde_json::{Value, json};
use sonde_protocol::Capability;
use sonde_protocol::path::PathBytes;
use sonde_protocol::schema::{ParamKind, ValidatedParams};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::exec::{Argv, ExecLimits, is_forbidden_program};
use crate::handler::{PackDef, ProbeContext, ProbeError, ProbeHandler, ProbeOutput};
use crate::manifest::{Manifest, ManifestError, OutputFormat, ProbeSpec};

/// One element of an argv template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateArg {
    Literal(String),
    Param(String),
}

/// A declarative probe, ready to run.
#[derive(Debug, Clone)]
pub struct DeclarativeProbe {
    program: String,
    args: Vec<TemplateArg>,
    parse: OutputFormat,
}

impl DeclarativeProbe {
    /// Checks a probe's template against the rules in the module docs.
    pub fn compile(spec: &ProbeSpec) -> Result<Self, String> {
        let exec = spec.exec.as_ref().ok_or("declarative probes need `exec`")?;
        let (program, rest) = exec.split_first().ok_or("`exec` is empty")?;
        if program.contains(['{', '}']) {
            return Err("the program (exec[0]) must be a literal name, not a placeholder".into());
        }
        if program.is_empty() || (program.contains('/') && !program.starts_with('/')) {
            return Err(format!(
                "program {program:?} must be a bare name or an absolute path"
            ));
        }
        if is_forbidden_program(program) {
            return Err(format!(
                "program {program:?} is a shell, interpreter or exec-wrapper"
            ));
        }
        let mut args = Vec::new();
        for element in rest {
            let placeholder = element.strip_prefix('{').and_then(|e| e.strip_suffix('}'));
            match placeholder {
                Some(name) if !name.contains(['{', '}']) => {
                    let param = spec.params.iter().find(|p| p.name == name).ok_or_else(|| {
                        format!("placeholder {{{name}}} names no declared parameter")
                    })?;
                    if matches!(
                        param.kind,
                        ParamKind::StringList { .. } | ParamKind::RelativePath { .. }
                    ) {
                        return Err(format!(
                            "parameter {name:?}: lists and paths cannot be placeholders"
                        ));
                    }
                    args.push(TemplateArg::Param(name.to_owned()));
                }
                _ if element.contains(['{', '}']) => {
                    return Err(format!(
                        "{element:?}: a placeholder must be a whole element like {{name}}"
                    ));
                }
                _ => args.push(TemplateArg::Literal(element.clone())),
            }
        }
        Ok(DeclarativeProbe {
            program: program.clone(),
            args,
            parse: spec.parse.unwrap_or_default(),
        })
    }

    /// The argv for validated parameters.
    pub fn argv(&self, params: &ValidatedParams) -> Result<Argv, ProbeError> {
        let mut argv = Argv::new(&self.program);
        for arg in &self.args {
            match arg {
                TemplateArg::Literal(text) => argv = argv.arg(text),
                TemplateArg::Param(name) => {
                    let text = match params.get(name) {
                        None | Some(Value::Null) => continue,
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                    };
                    if text.starts_with('-') {
                        return Err(ProbeError::InvalidInput(format!(
                            "parameter `{name}` may not start with `-` (it would become an option)"
                        )));
                    }
                    argv = argv.arg(text);
                }
            }
        }
        Ok(argv)
    }
}

impl ProbeHandler for DeclarativeProbe {
    fn run(
        &self,
        ctx: &ProbeContext<'_>,
        params: &ValidatedParams,
    ) -> Result<ProbeOutput, ProbeError> {
        let argv = self.argv(params)?;
        let out = ctx
            .runner
            .run(&argv, &ExecLimits::until(ctx.deadline))
            .map_err(|e| ProbeError::Failed(e.to_string()))?;
        if out.timed_out {
            return Err(ProbeError::Timeout);
        }
        let json_with_output = self.parse == OutputFormat::Json && !out.stdout.is_empty();
        if !out.success() && !json_with_output {
            return Err(ProbeError::Failed(format!(
                "`{}` exited with {}: {}",
                self.program,
                out.code
                    .map_or("a signal".to_owned(), |c| format!("status {c}")),
                out.stderr_text()
            )));
        }
        let data = match self.parse {
            OutputFormat::Text => {
                json!({ "text": PathBytes(out.stdout).to_json(), "exit_code": out.code })
            }
            OutputFormat::Lines => {
                let lines: Vec<Value> = out
                    .stdout
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| PathBytes::from(l).to_json())
                    .collect();
                json!({ "lines": lines, "exit_code": out.code })
            }
            OutputFormat::Json => {
                if out.stdout_truncated {
                    return Err(ProbeError::Failed(
                        "JSON output exceeded the output limit".into(),
                    ));
                }
                serde_json::from_slice(&out.stdout).map_err(|e| {
                    ProbeError::Failed(format!("`{}` did not print valid JSON: {e}", self.program))
                })?
            }
        };
        Ok(ProbeOutput {
            data,
            truncated: out.stdout_truncated,
        })
    }
}

/// Builds a pack from a declarative manifest.
pub fn pack_from_manifest(manifest: Manifest) -> Result<PackDef, ManifestError> {
    let mut handlers: BTreeMap<String, Arc<dyn ProbeHandler>> = BTreeMap::new();
    for probe in &manifest.probes {
        let compiled = DeclarativeProbe::compile(probe).map_err(|e| {
            ManifestError::Invalid(format!(
                "pack {:?}: probe {:?}: {e}",
                manifest.name, probe.name
            ))
        })?;
        handlers.insert(probe.name.clone(), Arc::new(compiled));
    }
    if manifest.max_capability() > Capability::Observe {
        tracing::info!(pack = %manifest.name, "declarative pack declares probes above observe");
    }
    Ok(PackDef {
        manifest,
        builtin: false,
        handlers,
        settings_check: None,
        requirements_hook: None,
        sandbox_hook: None,
    })
}

/// A pack directory entry as found on disk.
#[derive(Debug)]
pub struct PackFile {
    pub dir: std::path::PathBuf,
    pub result: Result<(PackDef, Option<crate::signing::PackSignature>), String>,
}

/// Loads every `<dir>/<pack>/pack.toml` (and `pack.sig` if present). Each
/// entry carries its own error, so one bad pack never hides the others.
pub fn load_dir(dir: &Path) -> Vec<PackFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .filter(|d| d.join("pack.toml").exists())
        .map(|d| {
            let result = load_one(&d);
            PackFile { dir: d, result }
        })
        .collect()
}

fn load_one(dir: &Path) -> Result<(PackDef, Option<crate::signing::PackSignature>), String> {
    let path = dir.join("pack.toml");
    let text = crate::bounded::read_file_bounded(&path, 1 << 20)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.truncated {
        return Err(format!("{}: larger than 1 MiB", path.display()));
    }
    let text =
        String::from_utf8(text.bytes).map_err(|_| format!("{}: not UTF-8", path.display()))?;
    let manifest = Manifest::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let pack = pack_from_manifest(manifest).map_err(|e| format!("{}: {e}", path.display()))?;
    let sig_path = dir.join("pack.sig");
    let signature = if sig_path.exists() {
        let sig_text = std::fs::read_to_string(&sig_path)
            .map_err(|e| format!("{}: {e}", sig_path.display()))?;
        Some(
            crate::signing::PackSignature::parse(&sig_text)
                .map_err(|e| format!("{}: {e}", sig_path.display()))?,
        )
    } else {
        None
    };
    Ok((pack, signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RecordingRunner;
    use serde_json::Map;
    use std::time::{Duration, Instant};

    fn manifest(exec: &str, extra_params: &str) -> String {
        format!(
            r#"
name = "thirdparty"
version = "0.1.0"
description = "test"
[[probes]]
name = "run"
description = "x"
exec = {exec}
parse = "lines"
[[probes.params]]
name = "device"
type = "string"
{extra_params}
"#
        )
    }

    fn compile(exec: &str) -> Result<PackDef, String> {
        let m = Manifest::parse(&manifest(exec, "")).map_err(|e| e.to_string())?;
        pack_from_manifest(m).map_err(|e| e.to_string())
    }

    #[test]
    fn templates_are_checked() {
        assert!(compile(r#"["smartctl", "-H", "{device}"]"#).is_ok());
        assert!(
            compile(r#"["{device}", "x"]"#)
                .unwrap_err()
                .contains("literal")
        );
        assert!(
            compile(r#"["sh", "-c", "{device}"]"#)
                .unwrap_err()
                .contains("shell")
        );
        assert!(
            compile(r#"["/usr/bin/env", "{device}"]"#)
                .unwrap_err()
                .contains("shell")
        );
        assert!(
            compile(r#"["ls", "--dev={device}"]"#)
                .unwrap_err()
                .contains("whole element")
        );
        assert!(
            compile(r#"["ls", "{other}"]"#)
                .unwrap_err()
                .contains("no declared parameter")
        );
        assert!(compile(r#"["bin/ls"]"#).unwrap_err().contains("absolute"));
        assert!(compile(r#"[]"#).unwrap_err().contains("empty"));
    }

    #[test]
    fn values_are_whole_arguments_and_never_options() {
        let pack = compile(r#"["smartctl", "-H", "{device}"]"#).unwrap();
        let probe = DeclarativeProbe::compile(&pack.manifest.probes[0]).unwrap();
        let params = |v: &str| {
            let mut m = Map::new();
            m.insert("device".into(), json!(v));
            sonde_protocol::schema::validate(&pack.manifest.probes[0].params, &m).unwrap()
        };
        let argv = probe.argv(&params("/dev/sda; rm -rf /")).unwrap();
        assert_eq!(argv.args.last().unwrap(), "/dev/sda; rm -rf /");
        assert_eq!(argv.args.len(), 2);
        assert!(matches!(
            probe.argv(&params("--output=/etc/passwd")),
            Err(ProbeError::InvalidInput(_))
        ));
        let absent = probe.argv(
            &sonde_protocol::schema::validate(&pack.manifest.probes[0].params, &Map::new())
                .unwrap(),
        );
        assert_eq!(absent.unwrap().args.len(), 1);
    }

    #[test]
    fn runs_through_the_runner() {
        let pack = compile(r#"["smartctl", "{device}"]"#).unwrap();
        let runner = RecordingRunner::replying(|_| crate::exec::ExecOutput {
            code: Some(0),
            stdout: b"a\nb\n".to_vec(),
            ..Default::default()
        });
        let ctx = ProbeContext {
            deadline: Instant::now() + Duration::from_secs(5),
            runner: &runner,
            settings: &Value::Null,
            secrets: &crate::SecretGuard::standard(),
        };
        let mut m = Map::new();
        m.insert("device".into(), json!("sda"));
        let params = sonde_protocol::schema::validate(&pack.manifest.probes[0].params, &m).unwrap();
        let out = pack.handlers["run"].run(&ctx, &params).unwrap();
        assert_eq!(out.data["lines"], json!(["a", "b"]));
        assert_eq!(runner.calls()[0].display(), "smartctl sda");
    }

    #[test]
    fn load_dir_reports_each_pack_separately() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("good")).unwrap();
        std::fs::write(
            dir.path().join("good/pack.toml"),
            manifest(r#"["smartctl", "{device}"]"#, ""),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("bad")).unwrap();
        std::fs::write(
            dir.path().join("bad/pack.toml"),
            manifest(r#"["bash", "{device}"]"#, ""),
        )
        .unwrap();
        let loaded = load_dir(dir.path());
        assert_eq!(loaded.len(), 2);
        assert!(loaded[0].result.as_ref().unwrap_err().contains("shell"));
        assert!(loaded[1].result.is_ok());
    }
}
