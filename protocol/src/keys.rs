//! Ed25519 identities: generation and the text forms used in files and on the wire.
//!
//! Public keys travel as `ed25519:<base64 of the 32 key bytes>`; secret keys
//! are stored (by the hub and the agent, in 0600 files) as
//! `sonde-ed25519-secret-v1:<base64 of the 32 seed bytes>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
pub use ed25519_dalek::{Signature, SigningKey, VerifyingKey};

use crate::Digest;

const PUBLIC_PREFIX: &str = "ed25519:";
const SECRET_PREFIX: &str = "sonde-ed25519-secret-v1:";

/// Why a key text could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("expected a key starting with `{0}`")]
    MissingPrefix(&'static str),
    #[error("key is not valid base64")]
    NotBase64,
    #[error("an Ed25519 key is 32 bytes, this one has {0}")]
    WrongLength(usize),
    #[error("the bytes are not a valid Ed25519 public key")]
    InvalidPoint,
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), KeyError> {
    getrandom::fill(buf).map_err(|e| KeyError::Random(e.to_string()))
}

/// A fresh signing key from the OS random source.
pub fn generate_signing_key() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    random_bytes(&mut seed)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// `ed25519:<base64>` form of a public key.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}", B64.encode(key.to_bytes()))
}

/// Parses the `ed25519:<base64>` form.
pub fn decode_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let body = text
        .trim()
        .strip_prefix(PUBLIC_PREFIX)
        .ok_or(KeyError::MissingPrefix(PUBLIC_PREFIX))?;
    let bytes = decode_32(body)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidPoint)
}

/// File form of a secret key.
pub fn encode_secret_key(key: &SigningKey) -> String {
    format!("{SECRET_PREFIX}{}\n", B64.encode(key.to_bytes()))
}

/// Parses the file form of a secret key.
pub fn decode_secret_key(text: &str) -> Result<SigningKey, KeyError> {
    let body = text
        .trim()
        .strip_prefix(SECRET_PREFIX)
        .ok_or(KeyError::MissingPrefix(SECRET_PREFIX))?;
    Ok(SigningKey::from_bytes(&decode_32(body)?))
}

/// SHA-256 of the raw public key bytes: what operators compare by eye.
pub fn fingerprint(key: &VerifyingKey) -> Digest {
    Digest::of(&key.to_bytes())
}

fn decode_32(body: &str) -> Result<[u8; 32], KeyError> {
    let bytes = B64.decode(body).map_err(|_| KeyError::NotBase64)?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| KeyError::WrongLength(b.len()))
}

/// Serde helper for fields holding a public key in its text form.
pub mod serde_public_key {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &VerifyingKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode_public_key(key))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VerifyingKey, D::Error> {
        let text = String::deserialize(d)?;
        decode_public_key(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        let key = generate_signing_key().unwrap();
        let public = encode_public_key(&key.verifying_key());
        assert!(public.starts_with("ed25519:"));
        assert_eq!(decode_public_key(&public).unwrap(), key.verifying_key());
        let secret = encode_secret_key(&key);
        assert_eq!(
            decode_secret_key(&secret).unwrap().to_bytes(),
            key.to_bytes()
        );
    }

    #[test]
    fn bad_key_texts_are_typed_errors() {
        assert_eq!(
            decode_public_key("abc"),
            Err(KeyError::MissingPrefix("ed25519:"))
        );
        assert_eq!(decode_public_key("ed25519:!!"), Err(KeyError::NotBase64));
        assert_eq!(
            decode_public_key("ed25519:AAAA"),
            Err(KeyError::WrongLength(3))
        );
        assert!(decode_secret_key("ed25519:AAAA").is_err());
    }
}
