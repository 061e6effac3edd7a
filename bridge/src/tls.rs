//! The hub's CA pinned by fingerprint (`sonde_tls::PinnedCa`, the same rule
//! as the agent's enrollment): the hub must present, in its chain, the CA
//! certificate whose SHA-256 is the pin, and its own certificate must be
//! valid under that CA for the host dialled. No system roots, no trust on
//! first use; a mismatch fails the handshake before anything (the key
//! included) is sent.

use sonde_tls::PinnedCa;

/// Text of the handshake error when the pin does not match.
pub const PIN_MISMATCH: &str = "the hub's CA does not match --hub-ca-sha256; nothing was sent (compare with `ca_sha256` in `sonde-hub --json status`)";

/// A client config that trusts only the CA with SHA-256 `pin`.
pub fn client_config(pin: [u8; 32]) -> Result<rustls::ClientConfig, rustls::Error> {
    PinnedCa::new(pin, PIN_MISMATCH).client_config()
}
