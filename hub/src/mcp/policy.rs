//! What one API key may do: which agents, probes and tools, up to which
//! capability. Checked on every MCP call; a denial names what the key *may*
//! do so the caller (often a model) can correct itself.

use crate::store::ApiKey;
use sonde_protocol::Capability;

/// `*` matches any run of characters; everything else is literal. Kept
/// this small on purpose (not `globset`): a key's policy is a security
/// boundary, and agent names and probe names may hold `?`, `[` or `{`,
/// which must never widen what a key reaches.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

fn any_match(patterns: &[String], text: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| glob_match(p, text))
}

fn describe(patterns: &[String]) -> String {
    if patterns.is_empty() {
        "any".into()
    } else {
        patterns.join(", ")
    }
}

/// A key's policy.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    pub key: ApiKey,
}

impl KeyPolicy {
    pub fn actor(&self) -> String {
        // An OAuth grant's policy (`oauth/token.rs::policy_of`) names its
        // client: `oauth:<client id>`.
        if self.key.prefix.starts_with("oauth:") {
            return self.key.prefix.clone();
        }
        format!("api-key:{}", self.key.prefix)
    }

    pub fn allows_agent(&self, agent_name: &str) -> bool {
        any_match(&self.key.agents, agent_name)
    }

    pub fn allows_probe(&self, probe: &str) -> bool {
        any_match(&self.key.probes, probe)
    }

    pub fn allows_tool(&self, tool: &str) -> bool {
        self.key.tools.is_empty() || self.key.tools.iter().any(|t| t == tool)
    }

    pub fn allows_capability(&self, c: Capability) -> bool {
        c <= self.key.max_capability
    }

    /// What the key may do, for denial messages.
    pub fn summary(&self) -> String {
        format!(
            "key {} may use agents: {}; probes: {}; tools: {}; up to capability {}",
            self.key.name,
            describe(&self.key.agents),
            describe(&self.key.probes),
            describe(&self.key.tools),
            self.key.max_capability
        )
    }

    /// Checks agent, probe and capability (the probe's, which the agent's
    /// own ceiling already bounds since only registered probes exist).
    pub fn check_probe(
        &self,
        agent_name: &str,
        probe: &str,
        capability: Capability,
    ) -> Result<(), String> {
        if !self.allows_agent(agent_name) {
            return Err(format!(
                "agent {agent_name:?} is outside this key's scope ({})",
                self.summary()
            ));
        }
        if !self.allows_probe(probe) {
            return Err(format!(
                "probe {probe:?} is outside this key's scope ({})",
                self.summary()
            ));
        }
        if !self.allows_capability(capability) {
            return Err(format!(
                "probe {probe:?} needs capability {capability}, above this key's limit ({})",
                self.summary()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(agents: &[&str], probes: &[&str], tools: &[&str], max: Capability) -> KeyPolicy {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        KeyPolicy {
            key: ApiKey {
                id: "key-1".into(),
                name: "claude".into(),
                prefix: "sk_12345678".into(),
                agents: v(agents),
                probes: v(probes),
                tools: v(tools),
                max_capability: max,
                created_at_ms: 0,
                expires_at_ms: None,
                last_used_at_ms: None,
                revoked_at_ms: None,
            },
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("zfs.*", "zfs.list_pools"));
        assert!(!glob_match("zfs.*", "system.uptime"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("nas-*-lan", "nas-01-lan"));
        assert!(!glob_match("nas-*-lan", "nas-01-wan"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(glob_match("exact", "exact"));
        assert!(
            !glob_match("ab*ba", "aba"),
            "overlapping ends must not both match"
        );
    }

    #[test]
    fn api_key_scope_is_enforced() {
        let k = key(&["nas*"], &["zfs.*"], &["probe"], Capability::Observe);
        assert!(
            k.check_probe("nas1", "zfs.list_pools", Capability::Observe)
                .is_ok()
        );
        let e = k
            .check_probe("web1", "zfs.list_pools", Capability::Observe)
            .unwrap_err();
        assert!(e.contains("agents: nas*") && e.contains("web1"), "{e}");
        assert!(
            k.check_probe("nas1", "system.uptime", Capability::Observe)
                .unwrap_err()
                .contains("probes: zfs.*")
        );
        assert!(
            k.check_probe("nas1", "zfs.x", Capability::Interact)
                .unwrap_err()
                .contains("capability interact")
        );
        assert!(k.allows_tool("probe") && !k.allows_tool("diagnose"));
        let open = key(&[], &[], &[], Capability::Manage);
        assert!(
            open.check_probe("any", "any.thing", Capability::Manage)
                .is_ok()
        );
    }
}
