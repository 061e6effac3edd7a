//! Packs: what an agent can be asked to look at.
//!
//! A pack is a [`manifest`] (name, version, requirements, probes with their
//! parameter schemas and capability, runbooks, detection hints) plus the code
//! that runs each probe ([`handler`]). Built-in packs are compiled in with
//! their manifests embedded; third-party *declarative* packs ([`declarative`])
//! are manifests whose probes are argv templates.
//!
//! Invariants kept here:
//! - probes never run a shell: anything external goes through [`exec`], which
//!   takes an argv vector, refuses shells, interpreters and exec-wrappers as
//!   the program, clears the environment, kills the process group at the
//!   deadline and bounds the output;
//! - every read is bounded ([`bounded`]);
//! - a manifest's identity is the SHA-256 of its canonical form
//!   ([`manifest::Manifest::sha256`]); signatures and approvals bind to it
//!   ([`signing`]).

pub mod bounded;
pub mod builtin;
pub mod database;
pub mod declarative;
pub mod docker;
pub mod exec;
pub mod handler;
pub mod http_client;
pub mod manifest;
pub mod mysql;
pub mod nginx;
pub mod postgres;
pub mod proxmox;
pub mod redis;
pub mod requirements;
pub mod sandbox;
pub mod scrub;
pub mod secrets;
pub mod signing;
pub mod smart;
pub mod system;
pub mod systemd;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod ups;

pub use handler::{PackDef, ProbeContext, ProbeError, ProbeHandler, ProbeOutput};
pub use manifest::Manifest;
pub use secrets::SecretGuard;
