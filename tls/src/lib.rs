//! Certificates pinned by fingerprint: the rustls client configurations
//! Sonde uses where no public root vouches for the server. Two rules, each
//! written once:
//!
//! - [`PinnedCa`]: the server's chain must carry the CA certificate whose
//!   SHA-256 is the pin, and the server's own certificate must be valid
//!   under that CA for the name dialled (expiry, usage, name). The agent's
//!   enrollment and the MCP bridge trust the hub this way: no system roots,
//!   no trust on first use, and a mismatch fails the handshake before
//!   anything (a token, an API key) is sent.
//! - [`pinned_leaf_config`]: exactly one self-signed server certificate,
//!   identified by its SHA-256 (Proxmox VE, UniFi and other homelab gear);
//!   names are not checked, the pin is the identity.
//!
//! Both still verify the handshake signatures, with the `ring` provider.
//! There is no "skip verification" anywhere.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest as _, Sha256};

/// The crypto provider of every Sonde TLS client: rustls with `ring`.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The handshake-signature methods of a verifier that checks them with
/// `self.algorithms` (the provider's algorithms), as rustls's own do.
macro_rules! verify_signatures_with_algorithms {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

/// Accepts a server only if its chain carries the CA with the pinned
/// SHA-256 and its certificate is valid under that CA for the name dialled.
#[derive(Debug)]
pub struct PinnedCa {
    pin: [u8; 32],
    /// The refusal's text when no certificate in the chain has the pin: it
    /// names the caller's setting (`--ca-sha256`, `--hub-ca-sha256`).
    mismatch: &'static str,
    provider: Arc<CryptoProvider>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCa {
    pub fn new(pin: [u8; 32], mismatch: &'static str) -> Arc<PinnedCa> {
        let provider = provider();
        Arc::new(PinnedCa {
            pin,
            mismatch,
            algorithms: provider.signature_verification_algorithms,
            provider,
        })
    }

    /// A client configuration (HTTP/1.1 by ALPN, no client certificate)
    /// that trusts only this CA.
    pub fn client_config(self: Arc<Self>) -> Result<ClientConfig, rustls::Error> {
        let mut config = ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(self)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| Sha256::digest(c.as_ref()).as_slice() == self.pin)
            .ok_or_else(|| rustls::Error::General(self.mismatch.into()))?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&self.provider))
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    verify_signatures_with_algorithms!();
}

/// A client configuration that accepts exactly the server certificate
/// whose SHA-256 is `sha256`: the pin for self-signed homelab gear
/// (Proxmox VE, UniFi), whose certificates no public root vouches for.
/// Handshake signatures are still verified; names are not (the pin is the
/// identity). `pin_name` names the setting in the refusal
/// (`api_fingerprint`). Used by the proxmox pack and the hub's integrations.
pub fn pinned_leaf_config(
    sha256: [u8; 32],
    pin_name: &'static str,
) -> Result<ClientConfig, rustls::Error> {
    let provider = provider();
    let verifier = PinnedLeaf {
        sha256,
        pin_name,
        algorithms: provider.signature_verification_algorithms,
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// See [`pinned_leaf_config`].
#[derive(Debug)]
struct PinnedLeaf {
    sha256: [u8; 32],
    pin_name: &'static str,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedLeaf {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Sha256::digest(end_entity.as_ref());
        if got.as_slice() == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            let shown: Vec<String> = got.iter().map(|b| format!("{b:02X}")).collect();
            Err(rustls::Error::General(format!(
                "the server's certificate has fingerprint {}, not the pinned {}",
                shown.join(":"),
                self.pin_name
            )))
        }
    }

    verify_signatures_with_algorithms!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls_pki_types::PrivateKeyDer;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const MISMATCH: &str = "pin mismatch: nothing was sent";

    /// A CA and a server certificate it issued for `names`.
    struct Pki {
        ca: CertificateDer<'static>,
        leaf: CertificateDer<'static>,
        leaf_key: PrivateKeyDer<'static>,
    }

    fn pki(names: &[&str]) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        Pki {
            ca: ca.der().clone(),
            leaf: leaf.der().clone(),
            leaf_key: PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        }
    }

    fn sha256(c: &CertificateDer<'_>) -> [u8; 32] {
        Sha256::digest(c.as_ref()).into()
    }

    /// A real handshake over an in-memory pipe: the server presents
    /// `chain`; the client dials `name` with `config` and, once the
    /// handshake holds, sends one byte. `Ok(byte the server got)`, or the
    /// client's error (and the server got nothing).
    async fn handshake(
        config: ClientConfig,
        name: &str,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<u8, String> {
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let (c, s) = tokio::io::duplex(1 << 16);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let served = tokio::spawn(async move {
            let mut tls = acceptor.accept(s).await.ok()?;
            let mut b = [0u8; 1];
            tls.read_exact(&mut b).await.ok()?;
            Some(b[0])
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let client = async {
            let mut tls = connector
                .connect(name, c)
                .await
                .map_err(|e| e.to_string())?;
            tls.write_all(b"k").await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(tls)
        }
        .await;
        match client {
            Ok(_tls) => served
                .await
                .unwrap()
                .ok_or_else(|| "the server got nothing".to_owned()),
            Err(e) => {
                assert_eq!(
                    served.await.unwrap(),
                    None,
                    "refused, yet the server got data"
                );
                Err(e)
            }
        }
    }

    #[tokio::test]
    async fn a_pinned_ca_admits_only_its_own_certificates_for_the_name_dialled() {
        let hub = pki(&["hub.lan"]);
        let pin = sha256(&hub.ca);
        let chain = vec![hub.leaf.clone(), hub.ca.clone()];
        let config = || PinnedCa::new(pin, MISMATCH).client_config().unwrap();
        assert_eq!(
            handshake(config(), "hub.lan", chain.clone(), hub.leaf_key.clone_key()).await,
            Ok(b'k')
        );
        // Another name: the CA is right, the certificate is not for it.
        let err = handshake(
            config(),
            "other.lan",
            chain.clone(),
            hub.leaf_key.clone_key(),
        )
        .await
        .unwrap_err();
        assert!(!err.contains(MISMATCH), "{err}");
        // Another CA (an impostor's full chain): refused by the pin.
        let impostor = pki(&["hub.lan"]);
        let err = handshake(
            config(),
            "hub.lan",
            vec![impostor.leaf.clone(), impostor.ca.clone()],
            impostor.leaf_key.clone_key(),
        )
        .await
        .unwrap_err();
        assert!(err.contains(MISMATCH), "{err}");
        // The pinned CA sent along with a certificate it did not issue.
        let err = handshake(
            config(),
            "hub.lan",
            vec![impostor.leaf, hub.ca.clone()],
            impostor.leaf_key,
        )
        .await
        .unwrap_err();
        assert!(!err.is_empty());
        // Without the CA in the chain there is nothing to match.
        let err = handshake(
            config(),
            "hub.lan",
            vec![hub.leaf.clone()],
            hub.leaf_key.clone_key(),
        )
        .await
        .unwrap_err();
        assert!(err.contains(MISMATCH), "{err}");
        // The pin is the CA's, not the leaf's.
        let leaf_pinned = PinnedCa::new(sha256(&hub.leaf), MISMATCH);
        let err = handshake(
            leaf_pinned.client_config().unwrap(),
            "hub.lan",
            chain,
            hub.leaf_key,
        )
        .await
        .unwrap_err();
        assert!(!err.is_empty());
    }

    #[tokio::test]
    async fn a_pinned_leaf_admits_exactly_that_certificate_under_any_name() {
        let gear = pki(&["pve.lan"]);
        let config = || pinned_leaf_config(sha256(&gear.leaf), "api_fingerprint").unwrap();
        assert_eq!(
            handshake(
                config(),
                "10.0.0.9",
                vec![gear.leaf.clone()],
                gear.leaf_key.clone_key()
            )
            .await,
            Ok(b'k'),
            "names are not checked: the pin is the identity"
        );
        let other = pki(&["pve.lan"]);
        let err = handshake(config(), "pve.lan", vec![other.leaf], other.leaf_key)
            .await
            .unwrap_err();
        assert!(err.contains("not the pinned api_fingerprint"), "{err}");
        // Pinning the CA's hash does not admit the leaf it issued.
        let by_ca = pinned_leaf_config(sha256(&gear.ca), "api_fingerprint").unwrap();
        assert!(
            handshake(by_ca, "pve.lan", vec![gear.leaf, gear.ca], gear.leaf_key)
                .await
                .is_err()
        );
    }
}
