//! `sonde-hub init`: a new data dir with its database, CA, server
//! certificate and signing key.

use rustls_pki_types::pem::PemObject;
use std::net::IpAddr;
use std::path::Path;

use crate::ca::{CertificateAuthority, create_ca};
use crate::datadir::{DataDir, create_private_dir, write_private, write_public};
use crate::store::{self, HubStore};
use sonde_protocol::audit::AuditAction;

/// What `init` made.
#[derive(Debug)]
pub struct Initialised {
    pub hub_id: String,
    pub ca_sha256: String,
}

/// Creates a hub data dir. Refuses a directory that already holds anything.
pub fn init(root: &Path, hostnames: &[String], ips: &[IpAddr]) -> anyhow::Result<Initialised> {
    if root.exists() {
        let non_empty = std::fs::read_dir(root)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", root.display()))?
            .next()
            .is_some();
        if non_empty {
            anyhow::bail!(
                "{} already exists and is not empty; refusing to overwrite it (use another --data, or remove it if you really mean to start over)",
                root.display()
            );
        }
    }
    check_hostnames(hostnames)?;
    create_private_dir(root)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", root.display()))?;
    let dir = DataDir::new(root);
    let hub_id = store::new_id("hub-", 4);
    let ca = create_ca(&hub_id)?;
    write_private(&dir.ca_key(), ca.key_pem.as_bytes())?;
    write_public(&dir.ca_cert(), ca.cert_pem.as_bytes())?;
    let authority = CertificateAuthority::load(&ca.cert_pem, &ca.key_pem)?;
    let (chain, key) = authority.issue_server(hostnames, ips)?;
    write_private(&dir.server_key(), key.as_bytes())?;
    write_public(&dir.server_cert(), chain.as_bytes())?;
    let signing = sonde_protocol::keys::generate_signing_key()?;
    write_private(
        &dir.signing_key(),
        sonde_protocol::keys::encode_secret_key(&signing).as_bytes(),
    )?;
    write_public(&dir.config(), crate::config::DEFAULT_FILE.as_bytes())?;
    let db = HubStore::open(&dir.db(), signing, crate::audit::CHECKPOINT_EVERY)?;
    db.initialise(&hub_id, hostnames, sonde_protocol::time::now_ms())?;
    db.close();
    Ok(Initialised {
        hub_id,
        ca_sha256: authority.fingerprint().to_hex(),
    })
}

/// What `cert reissue` made.
#[derive(Debug)]
pub struct Reissued {
    pub hostnames: Vec<String>,
    pub ips: Vec<IpAddr>,
}

/// Issues a new TLS server certificate from the hub's CA (new key, 825
/// days), for the given names — or, when none are given, for the names
/// and addresses of the current certificate. The previous pair is kept as
/// `server.crt.old` / `server.key.old`. Agents and MCP clients keep
/// working: they trust the CA, which does not change. The running hub
/// serves the new certificate after a restart.
pub fn reissue_server_cert(
    root: &Path,
    hostnames: &[String],
    ips: &[IpAddr],
) -> anyhow::Result<Reissued> {
    check_hostnames(hostnames)?;
    let dir = DataDir::new(root);
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| {
            anyhow::anyhow!(
                "cannot read {}: {e} (is --data a hub data dir?)",
                p.display()
            )
        })
    };
    let authority = CertificateAuthority::load(&read(&dir.ca_cert())?, &read(&dir.ca_key())?)?;
    let (hostnames, ips) = if hostnames.is_empty() && ips.is_empty() {
        let current = read(&dir.server_cert())?;
        let der =
            rustls_pki_types::CertificateDer::from_pem_slice(current.as_bytes()).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not a PEM certificate: {e}",
                    dir.server_cert().display()
                )
            })?;
        crate::ca::subject_alt_names(&der).ok_or_else(|| {
            anyhow::anyhow!(
                "cannot read the names of {}; give them with --hostname/--ip",
                dir.server_cert().display()
            )
        })?
    } else {
        (hostnames.to_vec(), ips.to_vec())
    };
    let (chain, key) = authority.issue_server(&hostnames, &ips)?;
    let (new_key, new_cert) = (
        dir.server_key().with_extension("key.new"),
        dir.server_cert().with_extension("crt.new"),
    );
    let _ = std::fs::remove_file(&new_key);
    write_private(&new_key, key.as_bytes())?;
    write_public(&new_cert, chain.as_bytes())?;
    for (live, old) in [
        (dir.server_key(), dir.server_key().with_extension("key.old")),
        (
            dir.server_cert(),
            dir.server_cert().with_extension("crt.old"),
        ),
    ] {
        if live.exists() {
            std::fs::rename(&live, &old)?;
        }
    }
    std::fs::rename(&new_key, dir.server_key())?;
    std::fs::rename(&new_cert, dir.server_cert())?;
    let key = sonde_protocol::keys::decode_secret_key(&read(&dir.signing_key())?)?;
    let db = HubStore::open(&dir.db(), key, crate::audit::CHECKPOINT_EVERY)?;
    let detail = serde_json::json!({"hostnames": hostnames, "ips": ips.iter().map(|i| i.to_string()).collect::<Vec<_>>()});
    db.record_blocking(
        sonde_protocol::audit::NewEntry::new("cli", AuditAction::HubServerCertReissued, "ok")
            .detail("names", detail),
    )?;
    Ok(Reissued { hostnames, ips })
}

fn check_hostnames(hostnames: &[String]) -> anyhow::Result<()> {
    for name in hostnames {
        if name.is_empty()
            || name.len() > 253
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        {
            anyhow::bail!("--hostname {name:?} is not a valid DNS name");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_creates_private_keys_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("hub");
        let made = init(&root, &["nas.lan".into()], &[]).unwrap();
        assert_eq!(made.ca_sha256.len(), 64);
        let dir = DataDir::new(&root);
        for key in [dir.ca_key(), dir.server_key(), dir.signing_key()] {
            assert_eq!(
                std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
                0o600,
                "{}",
                key.display()
            );
        }
        assert_eq!(
            std::fs::metadata(&root).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let before = std::fs::read(dir.ca_key()).unwrap();
        let err = init(&root, &[], &[]).unwrap_err().to_string();
        assert!(err.contains("refusing to overwrite"), "{err}");
        assert_eq!(std::fs::read(dir.ca_key()).unwrap(), before);
        assert!(init(&tmp.path().join("h2"), &["bad name".into()], &[]).is_err());
    }

    #[test]
    fn reissue_keeps_names_unless_given_and_chains_to_the_same_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("hub");
        let lan: IpAddr = "192.168.1.5".parse().unwrap();
        init(&root, &["nas.lan".into()], &[lan]).unwrap();
        let dir = DataDir::new(&root);
        let ca_before = std::fs::read(dir.ca_cert()).unwrap();
        let cert_before = std::fs::read(dir.server_cert()).unwrap();
        let key_before = std::fs::read(dir.server_key()).unwrap();

        let same = reissue_server_cert(&root, &[], &[]).unwrap();
        assert_eq!(same.hostnames, ["nas.lan"]);
        assert_eq!(same.ips, [lan]);
        assert_ne!(std::fs::read(dir.server_key()).unwrap(), key_before);
        assert_eq!(
            std::fs::read(dir.server_cert().with_extension("crt.old")).unwrap(),
            cert_before
        );
        assert_eq!(
            std::fs::metadata(dir.server_key())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read(dir.ca_cert()).unwrap(),
            ca_before,
            "the CA stays"
        );

        let moved = reissue_server_cert(&root, &["hub.example".into()], &[]).unwrap();
        assert_eq!(moved.hostnames, ["hub.example"]);
        let pem = std::fs::read(dir.server_cert()).unwrap();
        let der = rustls_pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
        let (names, ips) = crate::ca::subject_alt_names(&der).unwrap();
        assert_eq!((names, ips), (vec!["hub.example".to_owned()], vec![]));
        // The new pair is one the hub can serve, under the same CA.
        let config = crate::link::listener::server_only_config(&dir);
        assert!(config.is_ok(), "{config:?}");
        assert!(reissue_server_cert(&root, &["bad name".into()], &[]).is_err());
        assert!(reissue_server_cert(&tmp.path().join("nothing"), &[], &[]).is_err());
    }
}
