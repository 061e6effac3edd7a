//! Rate limits on what floods could write: at most so many audit entries
//! of one kind a minute.

/// Lets at most `limit` audit entries of one kind through per minute; the
/// rest are counted and reported with the next one let through. Keeps a
/// flood (bad handshakes, bad API keys) from bloating the audit chain.
#[derive(Debug)]
pub struct AuditBudget {
    limit: u32,
    state: std::sync::Mutex<(std::time::Instant, u32, u64)>,
}

impl AuditBudget {
    pub fn per_minute(limit: u32) -> Self {
        AuditBudget {
            limit,
            state: std::sync::Mutex::new((std::time::Instant::now(), 0, 0)),
        }
    }

    /// `Some(suppressed_since_last)` if this event may be audited.
    pub fn take(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.0.elapsed() > std::time::Duration::from_secs(60) {
            *s = (std::time::Instant::now(), 0, s.2);
        }
        if s.1 >= self.limit {
            s.2 += 1;
            return None;
        }
        s.1 += 1;
        Some(std::mem::take(&mut s.2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_lets_the_limit_through_then_counts() {
        let b = AuditBudget::per_minute(2);
        assert_eq!(b.take(), Some(0));
        assert_eq!(b.take(), Some(0));
        assert_eq!(b.take(), None);
        assert_eq!(b.take(), None);
    }
}
