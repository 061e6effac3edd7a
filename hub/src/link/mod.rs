//! The agent endpoint: one TLS port carrying enrollment (HTTPS, no client
//! certificate yet) and the agent link (WebSocket, mutual TLS).
//!
//! - [`admission`]: limits on connections that have not authenticated yet;
//! - [`listener`]: TLS accept loop, client-certificate checks, HTTP routes;
//! - [`session`]: one connected agent: hello, attestation, heartbeats,
//!   probe requests and replies — every frame a verified envelope;
//! - [`registry`]: the live sessions, and how other parts of the hub send a
//!   probe to an agent and wait for its reply.

pub mod admission;
pub mod listener;
pub mod registry;
pub mod session;
