//! The hub's admin API, shared by the hub (server side), its CLI and the
//! console: every request and response type ([`api`]) and an async client
//! ([`client::AdminClient`]) that speaks JSON over HTTP/1.1 on the hub's Unix
//! socket (`<data dir>/admin.sock`, mode 0600), so
//! `curl --unix-socket DIR/admin.sock http://hub/v1/status` works too.
//!
//! The socket is the operator's boundary: whoever can open it is an operator.
//! The hub names the operator in audit entries from the socket peer's
//! credentials (`operator:<unix user>`).

pub mod api;
pub mod client;

pub use client::{AdminClient, AdminError};
