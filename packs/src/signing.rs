//! Pack manifest signatures (`pack.sig` next to `pack.toml`).
//!
//! A publisher signs `"sonde/pack/v1\0" ‖ manifest SHA-256` with Ed25519.
//! The agent loads a third-party manifest only if the signature verifies
//! with a publisher key listed in its config, or the hub (whose key is
//! pinned at enrollment) approved that exact manifest hash, or
//! `allow_unsigned_packs = true`.
//!
//! ```toml
//! # pack.sig
//! key = "ed25519:…"
//! signature = "…hex…"
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sonde_protocol::Digest;
use sonde_protocol::keys::{decode_public_key, encode_public_key};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackSignature {
    pub key: String,
    pub signature: String,
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("pack.sig is not valid: {0}")]
    Format(String),
    #[error(
        "signed by {key}, which is not a trusted publisher key (add it to `publisher_keys` in the agent config)"
    )]
    UntrustedKey { key: String },
    #[error("the signature does not match the manifest: the pack was modified after it was signed")]
    BadSignature,
}

fn signed_bytes(manifest_sha256: &Digest) -> Vec<u8> {
    let mut b = b"sonde/pack/v1\0".to_vec();
    b.extend_from_slice(&manifest_sha256.0);
    b
}

/// Signs a manifest hash.
pub fn sign(manifest_sha256: &Digest, key: &SigningKey) -> PackSignature {
    PackSignature {
        key: encode_public_key(&key.verifying_key()),
        signature: hex::encode(key.sign(&signed_bytes(manifest_sha256)).to_bytes()),
    }
}

impl PackSignature {
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        toml::from_str(text).map_err(|e| SignatureError::Format(e.to_string()))
    }

    pub fn to_toml(&self) -> String {
        format!(
            "key = \"{}\"\nsignature = \"{}\"\n",
            self.key, self.signature
        )
    }

    /// Checks the signature: the key must be trusted and the signature must
    /// cover exactly `manifest_sha256`.
    pub fn verify(
        &self,
        manifest_sha256: &Digest,
        trusted: &[VerifyingKey],
    ) -> Result<(), SignatureError> {
        let key =
            decode_public_key(&self.key).map_err(|e| SignatureError::Format(e.to_string()))?;
        if !trusted.contains(&key) {
            return Err(SignatureError::UntrustedKey {
                key: self.key.clone(),
            });
        }
        let bytes = hex::decode(&self.signature)
            .map_err(|_| SignatureError::Format("signature is not hex".into()))?;
        let array: [u8; 64] = bytes
            .try_into()
            .map_err(|_| SignatureError::Format("signature is not 64 bytes".into()))?;
        key.verify(
            &signed_bytes(manifest_sha256),
            &Signature::from_bytes(&array),
        )
        .map_err(|_| SignatureError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_tamper() {
        let key = SigningKey::from_bytes(&[2; 32]);
        let digest = Digest::of(b"manifest");
        let sig = sign(&digest, &key);
        let parsed = PackSignature::parse(&sig.to_toml()).unwrap();
        assert_eq!(parsed.verify(&digest, &[key.verifying_key()]), Ok(()));
        assert_eq!(
            parsed.verify(&Digest::of(b"other"), &[key.verifying_key()]),
            Err(SignatureError::BadSignature)
        );
        let stranger = SigningKey::from_bytes(&[3; 32]).verifying_key();
        assert!(matches!(
            parsed.verify(&digest, &[stranger]),
            Err(SignatureError::UntrustedKey { .. })
        ));
        assert!(PackSignature::parse("key = 1").is_err());
    }
}
