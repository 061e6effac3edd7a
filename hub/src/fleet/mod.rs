//! The fleet: the live state of every agent ([`Fleet`], in memory), what
//! agent connections report to it ([`connection`]), and the operator's
//! actions — on agents ([`agents`]), their pack permissions ([`packs`]),
//! enrollment tokens ([`tokens`]) and API keys ([`keys`]) — shared by the
//! admin API, the CLI and the console. Every change is committed through
//! the store with its audit entry (the operator as actor) before memory
//! and connected agents see it.

pub mod agents;
pub mod connection;
pub mod keys;
mod live;
pub mod packs;
pub mod tokens;

pub use agents::*;
pub use keys::*;
pub use live::{AgentView, Fleet, LiveAgent};
pub use packs::*;
pub use tokens::*;
