//! `sonde-hub init`: a new data dir with its database, CA, server
//! certificate and signing key.

use std::net::IpAddr;
use std::path::Path;

use crate::ca::{CertificateAuthority, create_ca};
use crate::datadir::{DataDir, create_private_dir, write_private, write_public};
use crate::store::{self, Store};

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
    let db = Store::open(&dir.db())?;
    let hostnames_json = serde_json::to_string(hostnames)?;
    let id = hub_id.clone();
    db.write_blocking(move |c| {
        store::meta_set(c, "hub_id", &id)?;
        store::meta_set(c, "hostnames", &hostnames_json)?;
        store::meta_set(
            c,
            "created_at_ms",
            &sonde_protocol::time::now_ms().to_string(),
        )?;
        store::audit::append(
            c,
            sonde_protocol::audit::NewEntry::new("hub", "hub.initialised", "ok")
                .detail("hub_id", id.clone()),
            sonde_protocol::time::now_ms(),
        )?;
        Ok(())
    })?;
    Ok(Initialised {
        hub_id,
        ca_sha256: authority.fingerprint().to_hex(),
    })
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
}
