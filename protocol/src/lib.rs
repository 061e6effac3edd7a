//! The contract between the Sonde hub and its agents.
//!
//! Everything that crosses the hub↔agent link, and everything both sides must
//! agree on byte for byte, lives here: the signed [`envelope`] and its
//! verification, [`capability`] levels, [`probe`] descriptors and their
//! parameter [`schema`], byte-exact [`path`]s, the tamper-evident [`audit`]
//! chain and the typed [`messages`] carried in envelopes.
//!
//! Invariant: this crate does no I/O (no files, no sockets, no async runtime).
//! It reads the clock and the OS random source only through the small
//! helpers in [`keys`] and [`time`], so callers and tests can pass their own
//! values everywhere it matters.

pub mod attestation;
pub mod audit;
pub mod audit_action;
pub mod canonical;
pub mod capability;
pub mod digest;
pub mod display;
pub mod duration;
pub mod envelope;
pub mod keys;
pub mod messages;
pub mod path;
pub mod probe;
pub mod schema;
pub mod time;

pub use capability::Capability;
pub use digest::Digest;
pub use envelope::{Envelope, Kind, MessageId, PeerVerifier, VerifyError};
pub use probe::{ProbeDescriptor, ProbeName};
