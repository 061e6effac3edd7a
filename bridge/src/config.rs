//! Command line, key and pin: everything checked before anything is sent.

use clap::Parser;
use std::ffi::OsString;
use std::path::PathBuf;

/// What can be wrong with the bridge's configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "argument {position} looks like an API key; keys are never taken from the command line (other users can read it in the process list): put it in a file for --key-file (chmod 600) or in the SONDE_API_KEY environment variable"
    )]
    KeyInArgv { position: usize },
    #[error(
        "{flag} is not an option: the key is read from --key-file (chmod 600) or the SONDE_API_KEY environment variable, never from the command line"
    )]
    KeyFlag { flag: String },
    #[error(
        "no API key: give --key-file PATH (a file holding only the key, chmod 600) or set SONDE_API_KEY (create a key with `sonde-hub keys create`)"
    )]
    NoKey,
    #[error("cannot read the key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error(
        "the key file {path} can be read by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    KeyFileMode { path: PathBuf, mode: u32 },
    #[error("the API key is empty or holds spaces or control characters; check {source_name}")]
    BadKey { source_name: String },
    #[error("--hub-url {url:?} is not a usable MCP URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "--hub-ca-sha256 is required for an https hub: the bridge trusts only the hub's own CA (its SHA-256 fingerprint: `Hub CA SHA-256` in the output of `sonde-hub init` or `sonde-hub token create`, `ca_sha256` in `sonde-hub --json status`)"
    )]
    NoPin,
    #[error(
        "--hub-ca-sha256 {value:?} is not a SHA-256 fingerprint (64 hex digits, colons and a `sha256:` prefix allowed)"
    )]
    BadPin { value: String },
    #[error(
        "plain http is only for a hub on this machine (loopback, behind a local reverse proxy); use the hub's https URL with --hub-ca-sha256"
    )]
    PlainHttpNotLoopback,
}

/// `sonde-mcp-bridge` command line.
#[derive(Debug, Parser)]
#[command(
    name = "sonde-mcp-bridge",
    version,
    about = "MCP over stdio for local clients, relayed to a Sonde hub (Streamable HTTP) with its CA pinned.",
    after_help = "The API key is read from --key-file or SONDE_API_KEY, never from the command line."
)]
pub struct Args {
    /// The hub's MCP URL, e.g. https://hub.lan:7444/mcp
    #[arg(long, env = "SONDE_HUB_URL")]
    pub hub_url: String,
    /// SHA-256 fingerprint of the hub's CA certificate (required for https)
    #[arg(long, env = "SONDE_HUB_CA_SHA256")]
    pub hub_ca_sha256: Option<String>,
    /// File holding the API key, readable only by you (chmod 600); else SONDE_API_KEY
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Log filter for stderr (error, warn, info, debug)
    #[arg(long, default_value = "warn", env = "SONDE_BRIDGE_LOG")]
    pub log: String,
}

/// Does `s` hold something shaped like a Sonde API key (`sonde_sk_…`) or
/// another `sonde_…` secret token?
fn looks_like_key(s: &str) -> bool {
    let mut rest = s;
    while let Some(i) = rest.find("sonde_") {
        let tail = &rest[i + "sonde_".len()..];
        let run = tail
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
            .count();
        if tail.starts_with("sk_") || run >= 24 {
            return true;
        }
        rest = tail;
    }
    false
}

/// Refuses a command line that carries a key, before clap could echo it
/// in an error message.
pub fn check_argv(argv: &[OsString]) -> Result<(), ConfigError> {
    for (position, arg) in argv.iter().enumerate().skip(1) {
        let arg = arg.to_string_lossy();
        if looks_like_key(&arg) {
            return Err(ConfigError::KeyInArgv { position });
        }
        let flag = arg.split('=').next().unwrap_or_default();
        if matches!(
            flag,
            "--key" | "--api-key" | "--token" | "--bearer" | "--authorization" | "--header"
        ) {
            return Err(ConfigError::KeyFlag { flag: flag.into() });
        }
    }
    Ok(())
}

/// A SHA-256 fingerprint from its usual spellings.
pub fn parse_fingerprint(value: &str) -> Result<[u8; 32], ConfigError> {
    let v = value.trim();
    let v = v
        .strip_prefix("sha256:")
        .or_else(|| v.strip_prefix("SHA256:"))
        .unwrap_or(v);
    let hex_digits: String = v.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(&hex_digits).map_err(|_| ConfigError::BadPin {
        value: value.into(),
    })?;
    bytes.try_into().map_err(|_| ConfigError::BadPin {
        value: value.into(),
    })
}

fn checked_key(key: &str, source_name: &str) -> Result<String, ConfigError> {
    let key = key.trim();
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::BadKey {
            source_name: source_name.into(),
        });
    }
    Ok(key.to_owned())
}

/// Reads the key from `file` (which only its owner may read) or from the
/// `env` value of SONDE_API_KEY.
pub fn load_key(file: Option<&PathBuf>, env: Option<String>) -> Result<String, ConfigError> {
    if let Some(path) = file {
        use std::os::unix::fs::PermissionsExt;
        let err = |e: std::io::Error| ConfigError::KeyFile {
            path: path.clone(),
            reason: e.to_string(),
        };
        let meta = std::fs::metadata(path).map_err(err)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ConfigError::KeyFileMode {
                path: path.clone(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(err)?;
        return checked_key(&text, &path.display().to_string());
    }
    match env {
        Some(key) => checked_key(&key, "SONDE_API_KEY"),
        None => Err(ConfigError::NoKey),
    }
}

/// Where and how to reach the hub.
#[derive(Debug, Clone)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, e.g. `/mcp`.
    pub path: String,
}

/// Splits an `http(s)://host:port/path` URL.
pub fn parse_url(url: &str) -> Result<Target, ConfigError> {
    let bad = |reason: &str| ConfigError::BadUrl {
        url: url.into(),
        reason: reason.into(),
    };
    let uri: hyper::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad("the scheme must be https (or http for a loopback hub)")),
    };
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    Ok(Target {
        https,
        host,
        port,
        path,
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Everything the relay needs, checked.
#[derive(Clone)]
pub struct Settings {
    pub target: Target,
    pub pin: Option<[u8; 32]>,
    pub key: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("target", &self.target)
            .field("pin", &self.pin.map(hex::encode))
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Settings {
    pub fn from_args(args: &Args) -> Result<Self, ConfigError> {
        let target = parse_url(&args.hub_url)?;
        let pin = match (&args.hub_ca_sha256, target.https) {
            (Some(p), _) => Some(parse_fingerprint(p)?),
            (None, true) => return Err(ConfigError::NoPin),
            (None, false) => None,
        };
        if !target.https && !is_loopback(&target.host) {
            return Err(ConfigError::PlainHttpNotLoopback);
        }
        let key = load_key(args.key_file.as_ref(), std::env::var("SONDE_API_KEY").ok())?;
        Ok(Settings { target, pin, key })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("sonde-mcp-bridge")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn a_key_on_the_command_line_is_refused_without_echoing_it() {
        let key = "sonde_sk_0123abcd_0123456789abcdef0123456789abcdef01234567";
        for bad in [
            vec!["--hub-url", "https://h/mcp", key],
            vec!["--hub-url", key],
            vec![&format!("--key-file={key}")],
            vec!["--log", &format!("x{key}y")],
        ] {
            let e = check_argv(&argv(&bad)).unwrap_err();
            assert!(!e.to_string().contains("0123abcd"), "{e}");
            assert!(e.to_string().contains("SONDE_API_KEY"), "{e}");
        }
        for flag in ["--key", "--api-key=abc", "--token", "--header"] {
            assert!(matches!(
                check_argv(&argv(&[flag, "x"])),
                Err(ConfigError::KeyFlag { .. })
            ));
        }
        check_argv(&argv(&[
            "--hub-url",
            "https://nas.lan:7444/mcp",
            "--key-file",
            "/home/me/.config/sonde_keys/claude.key",
            "--hub-ca-sha256",
            &"ab".repeat(32),
        ]))
        .unwrap();
    }

    #[test]
    fn fingerprints_in_their_usual_spellings() {
        let hexed = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        for v in [hexed.clone(), format!("sha256:{hexed}"), colons] {
            assert_eq!(parse_fingerprint(&v).unwrap(), [0xab; 32], "{v}");
        }
        for bad in ["", "abcd", &"zz".repeat(32), &"ab".repeat(33)] {
            assert!(parse_fingerprint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_key_file_must_be_private_and_the_key_clean() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "sonde_sk_abc\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_key(Some(&path), None),
            Err(ConfigError::KeyFileMode { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_key(Some(&path), None).unwrap(), "sonde_sk_abc");
        assert_eq!(load_key(None, Some(" k1 ".into())).unwrap(), "k1");
        assert!(matches!(load_key(None, None), Err(ConfigError::NoKey)));
        assert!(load_key(None, Some("a b".into())).is_err());
        assert!(load_key(None, Some("a\r\nInjected: x".into())).is_err());
        assert!(load_key(Some(&dir.path().join("missing")), None).is_err());
    }

    #[test]
    fn urls_and_plain_http_only_on_loopback() {
        let t = parse_url("https://nas.lan:7444/mcp").unwrap();
        assert!(t.https && t.host == "nas.lan" && t.port == 7444 && t.path == "/mcp");
        let t = parse_url("http://[::1]:8080/mcp").unwrap();
        assert!(!t.https && t.host == "::1" && is_loopback(&t.host));
        assert!(parse_url("ftp://x/mcp").is_err());
        assert!(parse_url("nas.lan/mcp").is_err());
        assert!(!is_loopback("nas.lan"));
    }
}
