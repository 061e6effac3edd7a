//! The hub's certificate authority: the CA itself, the hub's TLS server
//! certificate, and client certificates for approved agents.
//!
//! Agent certificates name the agent id as their common name, carry only the
//! client-auth usage, and last [`AGENT_CERT_DAYS`] days. The CSR an agent
//! sends is used for its public key only (after its self-signature is
//! checked); everything else in the certificate is chosen here.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sonde_protocol::Digest;
use std::net::IpAddr;
use time::OffsetDateTime;

/// Days an agent certificate is valid.
pub const AGENT_CERT_DAYS: i64 = 90;
const CA_DAYS: i64 = 3650;
const SERVER_DAYS: i64 = 825;

/// Why a certificate operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("the certificate signing request is invalid or its signature does not verify: {0}")]
    BadCsr(String),
    #[error("certificate error: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Pem(String),
}

/// A freshly made CA.
#[derive(Debug)]
pub struct NewCa {
    pub cert_pem: String,
    pub key_pem: String,
}

fn validity(days: i64) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    // Backdate a little: clocks on small machines drift.
    (
        now - time::Duration::hours(1),
        now + time::Duration::days(days),
    )
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    sonde_protocol::keys::random_bytes(&mut bytes).expect("the OS random source failed");
    bytes[0] &= 0x7f; // positive
    SerialNumber::from_slice(&bytes)
}

/// Makes the hub CA.
pub fn create_ca(hub_id: &str) -> Result<NewCa, CaError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("Sonde hub CA ({hub_id})"));
    dn.push(DnType::OrganizationName, "Sonde");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (params.not_before, params.not_after) = validity(CA_DAYS);
    params.serial_number = Some(random_serial());
    let cert = params.self_signed(&key)?;
    Ok(NewCa {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The loaded CA, able to issue certificates.
#[derive(Debug)]
pub struct CertificateAuthority {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl CertificateAuthority {
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| CaError::Pem(format!("ca.crt: {e}")))?;
        Ok(CertificateAuthority {
            cert_pem: cert_pem.to_owned(),
            cert_der,
            issuer,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// SHA-256 of the CA certificate (DER): what agents pin at enrollment.
    pub fn fingerprint(&self) -> Digest {
        Digest::of(&self.cert_der)
    }

    /// Issues the hub's TLS server certificate. Returns (chain PEM, key PEM).
    pub fn issue_server(
        &self,
        hostnames: &[String],
        ips: &[IpAddr],
    ) -> Result<(String, String), CaError> {
        let key = KeyPair::generate()?;
        let mut names: Vec<String> = vec!["localhost".into()];
        names.extend(hostnames.iter().cloned());
        names.sort();
        names.dedup();
        let mut params = CertificateParams::new(names.clone())?;
        let mut all_ips: Vec<IpAddr> = vec![
            "127.0.0.1".parse().unwrap_or(IpAddr::from([127, 0, 0, 1])),
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        ];
        all_ips.extend(ips.iter().copied());
        all_ips.sort();
        all_ips.dedup();
        params
            .subject_alt_names
            .extend(all_ips.into_iter().map(SanType::IpAddress));
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names
                .iter()
                .find(|n| *n != "localhost")
                .cloned()
                .unwrap_or_else(|| "localhost".into()),
        );
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        (params.not_before, params.not_after) = validity(SERVER_DAYS);
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((
            format!("{}{}", cert.pem(), self.cert_pem),
            key.serialize_pem(),
        ))
    }

    /// Checks a CSR's self-signature and returns the SHA-256 of its public key.
    pub fn check_csr(csr_pem: &str) -> Result<(CertificateSigningRequestParams, Digest), CaError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::BadCsr(e.to_string()))?;
        let key_hash = Digest::of(rcgen::PublicKeyData::der_bytes(&csr.public_key));
        Ok((csr, key_hash))
    }

    /// Issues an agent's client certificate for the key in `csr_pem`.
    /// Returns (cert PEM, SHA-256 of the cert DER, expiry in Unix ms).
    pub fn issue_agent(
        &self,
        csr_pem: &str,
        agent_id: &str,
    ) -> Result<(String, Digest, i64), CaError> {
        let (mut csr, _) = Self::check_csr(csr_pem)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, agent_id);
        dn.push(DnType::OrganizationName, "Sonde agents");
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let (not_before, not_after) = validity(AGENT_CERT_DAYS);
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        csr.params = params;
        let cert = csr.signed_by(&self.issuer)?;
        let expires_ms = (not_after.unix_timestamp_nanos() / 1_000_000) as i64;
        Ok((cert.pem(), Digest::of(cert.der()), expires_ms))
    }
}

/// The DNS names and IP addresses a certificate is valid for, without the
/// loopback names every hub certificate carries anyway.
pub fn subject_alt_names(der: &[u8]) -> Option<(Vec<String>, Vec<IpAddr>)> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut names = Vec::new();
    let mut ips = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) if *n != "localhost" => names.push((*n).to_owned()),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => IpAddr::from(<[u8; 4]>::try_from(*b).ok()?),
                        16 => IpAddr::from(<[u8; 16]>::try_from(*b).ok()?),
                        _ => continue,
                    };
                    if !ip.is_loopback() {
                        ips.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    Some((names, ips))
}

/// The common name of a certificate (the agent id for agent certificates).
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(cn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(cn: &str) -> (KeyPair, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        let csr = params.serialize_request(&key).unwrap();
        (key, csr.pem().unwrap())
    }

    #[test]
    fn issues_agent_certs_naming_the_agent_id_only() {
        let ca = create_ca("hub-1").unwrap();
        let ca = CertificateAuthority::load(&ca.cert_pem, &ca.key_pem).unwrap();
        let (_key, csr_pem) = csr("evil-admin");
        let (pem, digest, expires) = ca.issue_agent(&csr_pem, "agt-123").unwrap();
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(
            common_name(&der).as_deref(),
            Some("agt-123"),
            "the CSR's subject is ignored"
        );
        assert_eq!(digest, Digest::of(&der));
        assert!(expires > sonde_protocol::time::now_ms() + 89 * 86_400_000);
    }

    #[test]
    fn tampered_csr_is_refused() {
        let ca = create_ca("hub-1").unwrap();
        let ca = CertificateAuthority::load(&ca.cert_pem, &ca.key_pem).unwrap();
        let (_key, csr_pem) = csr("agent");
        // Flip one byte inside the signed part of the DER.
        let der =
            rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
                .unwrap();
        let mut bytes = der.as_ref().to_vec();
        let i = bytes.len() / 3;
        bytes[i] ^= 0x01;
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let tampered = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{b64}\n-----END CERTIFICATE REQUEST-----\n"
        );
        assert!(matches!(
            ca.issue_agent(&tampered, "agt-1"),
            Err(CaError::BadCsr(_))
        ));
        assert!(matches!(
            ca.issue_agent("not a csr", "agt-1"),
            Err(CaError::BadCsr(_))
        ));
    }

    #[test]
    fn server_cert_covers_loopback_and_given_names() {
        let ca = create_ca("hub-1").unwrap();
        let ca = CertificateAuthority::load(&ca.cert_pem, &ca.key_pem).unwrap();
        let (chain, _key) = ca
            .issue_server(&["nas.lan".into()], &["192.168.1.5".parse().unwrap()])
            .unwrap();
        let certs: Vec<_> = CertificateDer::pem_slice_iter(chain.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(certs.len(), 2, "leaf + CA");
        let (_, leaf) = x509_parser::parse_x509_certificate(&certs[0]).unwrap();
        let san = leaf
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| format!("{n}"))
            .collect::<Vec<_>>()
            .join(",");
        for want in ["localhost", "nas.lan", "7f:00:00:01", "c0:a8:01:05"] {
            assert!(san.contains(want), "{want} missing from {san}");
        }
    }
}
