//! The `:` command palette (as in k9s): jump to a screen, an agent, a
//! filtered audit, a probe to try; sort or filter the current screen;
//! change the theme. Commands and agent names complete as you type; any
//! unique prefix of a command works (`:perm`, `:au outcome:denied`), and so
//! does a bare agent name (`:nas1`).

use crate::screens::View;
use crate::theme::ThemeName;

/// Every command, for the help overlay.
pub const COMMANDS: &[(&str, &str)] = &[
    ("fleet  (agents)", "the Fleet screen"),
    ("enrollments", "pending enrollments"),
    ("permissions  (packs)", "pack permissions"),
    ("attestation  (drift)", "drift and quarantined agents"),
    (
        "audit [FILTER]",
        "the audit, filtered: audit agent:nas1 outcome:denied",
    ),
    ("keys / tokens", "API keys / enrollment tokens"),
    ("try [AGENT [PROBE]]", "Try it, on that agent and probe"),
    (
        "agent NAME  (or NAME)",
        "Fleet with that agent selected and its detail open",
    ),
    ("filter TEXT", "filter this screen"),
    ("sort COLUMN", "sort this screen by a column"),
    ("theme NAME", "dark, light, solarized or mono"),
    ("verify", "verify the audit chain"),
    ("follow", "follow new audit entries"),
    ("refresh / help / quit", ""),
];

/// What a palette line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    GoTo(View),
    Tokens,
    Audit(String),
    Try(Option<String>, Option<String>),
    Agent(String),
    Filter(String),
    Sort(String),
    Theme(ThemeName),
    Verify,
    Follow,
    Refresh,
    Help,
    Quit,
}

/// What the palette knows about the console when completing.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub agents: Vec<String>,
    pub sorts: Vec<&'static str>,
    /// Probes by agent name (those already read).
    pub probes: Vec<(String, Vec<String>)>,
}

/// One completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub text: String,
    pub help: String,
}

/// The palette's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Palette {
    pub input: String,
    pub selected: usize,
    pub error: Option<String>,
}

/// Canonical names and their aliases.
const NAMES: &[(&str, &[&str])] = &[
    ("fleet", &["agents"]),
    ("enrollments", &["enroll"]),
    ("permissions", &["packs", "perms"]),
    ("attestation", &["drift", "quarantine", "attest"]),
    ("audit", &["log"]),
    ("keys", &[]),
    ("tokens", &[]),
    ("try", &["tryit"]),
    ("agent", &[]),
    ("filter", &[]),
    ("sort", &[]),
    ("theme", &[]),
    ("verify", &[]),
    ("follow", &[]),
    ("refresh", &[]),
    ("help", &[]),
    ("quit", &["q", "exit"]),
];

/// The canonical command a typed word names (exact, alias, or a unique prefix).
fn command_name(word: &str) -> Result<&'static str, String> {
    let word = word.to_lowercase();
    for (name, aliases) in NAMES {
        if *name == word || aliases.contains(&word.as_str()) {
            return Ok(name);
        }
    }
    let mut found: Vec<&'static str> = NAMES
        .iter()
        .filter(|(name, aliases)| {
            name.starts_with(&word) || aliases.iter().any(|a| a.starts_with(&word))
        })
        .map(|(name, _)| *name)
        .collect();
    found.dedup();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("no command {word:?}; ? lists them")),
        many => Err(format!("{word:?} could be {}", many.join(", "))),
    }
}

/// Parses a palette line.
pub fn parse(input: &str, known: &Known) -> Result<Command, String> {
    let input = input.trim();
    let (word, rest) = match input.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (input, ""),
    };
    if word.is_empty() {
        return Err("type a command (? lists them)".into());
    }
    let name = match command_name(word) {
        Ok(n) => n,
        // A bare agent name jumps to it.
        Err(e) => {
            return if rest.is_empty() && known.agents.iter().any(|a| a == word) {
                Ok(Command::Agent(word.to_owned()))
            } else {
                Err(e)
            };
        }
    };
    let arg = |what: &str| -> Result<String, String> {
        if rest.is_empty() {
            Err(format!("{name} needs {what}"))
        } else {
            Ok(rest.to_owned())
        }
    };
    Ok(match name {
        "fleet" => Command::GoTo(View::Fleet),
        "enrollments" => Command::GoTo(View::Enrollments),
        "oauth" => Command::GoTo(View::OAuth),
        "permissions" => Command::GoTo(View::Permissions),
        "attestation" => Command::GoTo(View::Attestation),
        "audit" => Command::Audit(rest.to_owned()),
        "keys" => Command::GoTo(View::Keys),
        "tokens" => Command::Tokens,
        "try" => {
            let mut w = rest.split_whitespace();
            let agent = w.next().map(str::to_owned);
            let probe = w.next().map(str::to_owned);
            if let Some(a) = &agent
                && !known.agents.contains(a)
            {
                return Err(format!("no agent named {a:?}"));
            }
            Command::Try(agent, probe)
        }
        "agent" if rest.is_empty() => Command::GoTo(View::Fleet),
        "agent" => {
            if !known.agents.iter().any(|a| a == rest) {
                return Err(format!("no agent named {rest:?}"));
            }
            Command::Agent(rest.to_owned())
        }
        "filter" => Command::Filter(rest.to_owned()),
        "sort" => Command::Sort(arg("a column")?),
        "theme" => Command::Theme(arg("a theme name")?.parse()?),
        "verify" => Command::Verify,
        "follow" => Command::Follow,
        "refresh" => Command::Refresh,
        "help" => Command::Help,
        _ => Command::Quit,
    })
}

/// Completions for what is typed so far (at most `limit`).
pub fn suggestions(input: &str, known: &Known, limit: usize) -> Vec<Suggestion> {
    let lower = input.to_lowercase();
    let mut out = Vec::new();
    let mut push = |text: String, help: &str| {
        if !out.iter().any(|s: &Suggestion| s.text == text) {
            out.push(Suggestion {
                text,
                help: help.to_owned(),
            });
        }
    };
    match lower.split_once(' ') {
        None => {
            for (name, aliases) in NAMES {
                if name.starts_with(&lower) || aliases.iter().any(|a| a.starts_with(&lower)) {
                    let help = COMMANDS
                        .iter()
                        .find(|(c, _)| c.starts_with(name))
                        .map(|(_, h)| *h)
                        .unwrap_or("");
                    push((*name).to_owned(), help);
                }
            }
            for a in &known.agents {
                if a.to_lowercase().contains(&lower) {
                    push(format!("agent {a}"), "select it in Fleet");
                }
            }
        }
        Some((word, rest)) => {
            let name = command_name(word).unwrap_or("");
            let rest = rest.trim_start();
            match name {
                "agent" => {
                    for a in known
                        .agents
                        .iter()
                        .filter(|a| a.to_lowercase().contains(rest))
                    {
                        push(format!("agent {a}"), "select it in Fleet");
                    }
                }
                "try" => match rest.split_once(' ') {
                    None => {
                        for a in known
                            .agents
                            .iter()
                            .filter(|a| a.to_lowercase().contains(rest))
                        {
                            push(format!("try {a}"), "its probes in Try it");
                        }
                    }
                    Some((agent, probe)) => {
                        if let Some((_, probes)) = known.probes.iter().find(|(a, _)| a == agent) {
                            for p in probes.iter().filter(|p| p.contains(probe.trim())) {
                                push(format!("try {agent} {p}"), "fill its parameters");
                            }
                        }
                    }
                },
                "audit" => {
                    for a in &known.agents {
                        let text = format!("audit agent:{a}");
                        if text.starts_with(&lower) || text.contains(rest) {
                            push(text, "everything about this agent");
                        }
                    }
                    for (f, h) in [
                        ("outcome:denied", "refusals by policy"),
                        ("outcome:refused", "refusals by the hub or agent"),
                        ("action:pack.*", "pack decisions"),
                        ("action:enrollment.*", "enrollments"),
                        ("since:1h", "the last hour"),
                    ] {
                        let text = format!("audit {f}");
                        if text.starts_with(&lower) || f.contains(rest) {
                            push(text, h);
                        }
                    }
                }
                "theme" => {
                    for t in ThemeName::ALL {
                        if t.as_str().starts_with(rest) {
                            push(format!("theme {}", t.as_str()), "");
                        }
                    }
                }
                "sort" => {
                    for s in &known.sorts {
                        if s.starts_with(rest) {
                            push(format!("sort {s}"), "");
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known {
        Known {
            agents: vec!["nas1".into(), "web2".into()],
            sorts: vec!["name", "status"],
            probes: vec![(
                "nas1".into(),
                vec!["system.uptime".into(), "zfs.list_pools".into()],
            )],
        }
    }

    #[test]
    fn commands_by_name_alias_prefix_or_agent_name() {
        let k = known();
        assert_eq!(parse("fleet", &k), Ok(Command::GoTo(View::Fleet)));
        assert_eq!(parse("packs", &k), Ok(Command::GoTo(View::Permissions)));
        assert_eq!(parse("perm", &k), Ok(Command::GoTo(View::Permissions)));
        assert_eq!(parse("drift", &k), Ok(Command::GoTo(View::Attestation)));
        assert_eq!(
            parse("au agent:nas1 outcome:denied", &k),
            Ok(Command::Audit("agent:nas1 outcome:denied".into()))
        );
        assert_eq!(parse("agent web2", &k), Ok(Command::Agent("web2".into())));
        assert_eq!(parse("nas1", &k), Ok(Command::Agent("nas1".into())));
        assert_eq!(
            parse("try nas1 system.uptime", &k),
            Ok(Command::Try(
                Some("nas1".into()),
                Some("system.uptime".into())
            ))
        );
        assert_eq!(
            parse("theme solarized", &k),
            Ok(Command::Theme(ThemeName::Solarized))
        );
        assert_eq!(parse("sort status", &k), Ok(Command::Sort("status".into())));
        assert_eq!(parse("q", &k), Ok(Command::Quit));
        assert_eq!(parse("tok", &k), Ok(Command::Tokens));
        assert!(parse("a", &k).unwrap_err().contains("could be"));
        assert!(parse("agent nobody", &k).unwrap_err().contains("no agent"));
        assert!(parse("bogus", &k).unwrap_err().contains("no command"));
        assert!(parse("theme pink", &k).is_err());
        assert!(parse("sort", &k).unwrap_err().contains("needs"));
        assert!(parse("", &k).is_err());
    }

    #[test]
    fn suggestions_complete_commands_agents_probes_and_filters() {
        let k = known();
        let texts = |input: &str| -> Vec<String> {
            suggestions(input, &k, 20)
                .into_iter()
                .map(|s| s.text)
                .collect()
        };
        assert!(texts("at").contains(&"attestation".to_owned()));
        assert!(texts("we").contains(&"agent web2".to_owned()));
        assert_eq!(texts("agent n"), ["agent nas1"]);
        assert_eq!(texts("try nas1 up"), ["try nas1 system.uptime"]);
        assert!(texts("audit ag").contains(&"audit agent:nas1".to_owned()));
        assert_eq!(texts("theme so"), ["theme solarized"]);
        assert_eq!(texts("sort st"), ["sort status"]);
        assert_eq!(suggestions("", &k, 3).len(), 3);
    }
}
