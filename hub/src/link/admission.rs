//! Who may open a connection on the agent port before proving who they are.
//!
//! Until a TLS handshake ends with a client certificate from the hub's CA,
//! a connection is *unauthenticated* (an enrollment, a status poll, or an
//! attacker). Those are capped per source address and overall, and each
//! has a short deadline, so idle handshakes cannot fill the port:
//!
//! - at most `max_unauthenticated_per_ip` at once from one address;
//! - at most `max_unauthenticated` at once in all — except from addresses
//!   that an agent authenticated from recently, which are still let in when
//!   the pool is full: a flood from elsewhere never locks out the fleet;
//! - the TLS handshake must finish within `handshake_timeout_s`, and an
//!   unauthenticated connection serves one request and closes.
//!
//! A connection that authenticates leaves the unauthenticated pool at once
//! and counts only against `max_connections`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an address stays "known" after an agent authenticated from it.
const KNOWN_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most known addresses remembered (the oldest are forgotten first).
const MAX_KNOWN: usize = 100_000;

/// Why a connection was turned away before its handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "{ip} already has {limit} unauthenticated connections open (agents.max_unauthenticated_per_ip)"
    )]
    PerAddress { ip: IpAddr, limit: usize },
    #[error(
        "{limit} unauthenticated connections are open (agents.max_unauthenticated); only addresses agents use are let in"
    )]
    Full { limit: usize },
}

#[derive(Debug, Default)]
struct State {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
    known: HashMap<IpAddr, Instant>,
}

/// The admission rules of one agent port.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<State>,
}

/// A slot in the unauthenticated pool; freed when dropped (or when the
/// connection authenticates, [`PreAuthSlot::authenticated`]).
#[derive(Debug)]
pub struct PreAuthSlot {
    admission: Arc<Admission>,
    ip: IpAddr,
    held: bool,
}

impl PreAuthSlot {
    /// The connection proved it is an agent: it leaves the pool, and its
    /// address is remembered as an agent's.
    pub fn authenticated(mut self) {
        self.release();
        let mut s = self.admission.lock();
        if s.known.len() >= MAX_KNOWN && !s.known.contains_key(&self.ip) {
            let oldest = s.known.iter().min_by_key(|(_, t)| **t).map(|(ip, _)| *ip);
            if let Some(ip) = oldest {
                s.known.remove(&ip);
            }
        }
        s.known.insert(self.ip, Instant::now());
    }

    fn release(&mut self) {
        if !self.held {
            return;
        }
        self.held = false;
        let mut s = self.admission.lock();
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.by_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.by_ip.remove(&self.ip);
            }
        }
    }
}

impl Drop for PreAuthSlot {
    fn drop(&mut self) {
        self.release();
    }
}

impl Admission {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Admission {
            max_total: max_total.max(1),
            max_per_ip: max_per_ip.max(1),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection from `ip`, or why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<PreAuthSlot, Refusal> {
        let mut s = self.lock();
        let known = s.known.get(&ip).is_some_and(|t| t.elapsed() < KNOWN_FOR);
        let from_ip = s.by_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            return Err(Refusal::PerAddress {
                ip,
                limit: self.max_per_ip,
            });
        }
        if s.total >= self.max_total && !known {
            return Err(Refusal::Full {
                limit: self.max_total,
            });
        }
        s.total += 1;
        *s.by_ip.entry(ip).or_default() += 1;
        Ok(PreAuthSlot {
            admission: Arc::clone(self),
            ip,
            held: true,
        })
    }

    /// Unauthenticated connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn one_address_cannot_fill_the_pool() {
        let a = Admission::new(10, 3);
        let held: Vec<_> = (0..3).map(|_| a.admit(ip(2)).unwrap()).collect();
        assert!(matches!(a.admit(ip(2)), Err(Refusal::PerAddress { .. })));
        assert!(a.admit(ip(3)).is_ok(), "others still get in");
        drop(held);
        assert_eq!(a.open(), 0);
        assert!(a.admit(ip(2)).is_ok());
    }

    #[test]
    fn a_full_pool_still_admits_addresses_agents_use() {
        let a = Admission::new(4, 2);
        a.admit(ip(1)).unwrap().authenticated();
        assert_eq!(a.open(), 0, "an authenticated connection leaves the pool");
        let flood: Vec<_> = (2..4)
            .flat_map(|n| [a.admit(ip(n)).unwrap(), a.admit(ip(n)).unwrap()])
            .collect();
        assert_eq!(a.open(), 4);
        assert!(matches!(a.admit(ip(9)), Err(Refusal::Full { .. })));
        let agent = a.admit(ip(1));
        assert!(
            agent.is_ok(),
            "a known agent address gets a slot: {agent:?}"
        );
        drop(flood);
    }
}
