//! Colours by role, in palettes that stay readable: `dark` (the default,
//! for dark terminals), `light` (256-colour shades that keep their contrast
//! on white), `solarized` (the 16 ANSI colours as a Solarized terminal maps
//! them: secondary text is base01, never "bright black", which Solarized
//! makes the background colour), and `mono`, used whenever `NO_COLOR` is
//! set (<https://no-color.org>): no colour at all, roles told apart by
//! bold, underline, dim and reverse video.

use ratatui::style::{Color, Modifier, Style};

/// A palette by name (`--theme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ThemeName {
    #[default]
    Dark,
    Light,
    Solarized,
    Mono,
}

impl ThemeName {
    pub const ALL: [ThemeName; 4] = [
        ThemeName::Dark,
        ThemeName::Light,
        ThemeName::Solarized,
        ThemeName::Mono,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ThemeName::Dark => "dark",
            ThemeName::Light => "light",
            ThemeName::Solarized => "solarized",
            ThemeName::Mono => "mono",
        }
    }
}

impl std::str::FromStr for ThemeName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ThemeName::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown theme {s:?} (dark, light, solarized, mono)"))
    }
}

/// Styles by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub name: ThemeName,
}

/// Whether `NO_COLOR` asks for no colour (set and not empty).
pub fn no_color_requested(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty())
}

impl Theme {
    /// The theme asked for, or `mono` when `no_color` (from `NO_COLOR`).
    pub fn new(name: ThemeName, no_color: bool) -> Theme {
        Theme {
            name: if no_color { ThemeName::Mono } else { name },
        }
    }

    /// [`Theme::new`] with `NO_COLOR` read from the environment.
    pub fn from_env(name: ThemeName) -> Theme {
        Theme::new(
            name,
            no_color_requested(std::env::var_os("NO_COLOR").as_deref()),
        )
    }

    pub fn is_mono(&self) -> bool {
        self.name == ThemeName::Mono
    }

    /// One colour per palette (mono: none).
    fn colour(&self, dark: Color, light: Color, solarized: Color) -> Style {
        match self.name {
            ThemeName::Dark => Style::new().fg(dark),
            ThemeName::Light => Style::new().fg(light),
            ThemeName::Solarized => Style::new().fg(solarized),
            ThemeName::Mono => Style::new(),
        }
    }

    pub fn text(&self) -> Style {
        Style::new()
    }
    pub fn header(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    pub fn key(&self) -> Style {
        if self.is_mono() {
            return Style::new().add_modifier(Modifier::UNDERLINED);
        }
        self.colour(Color::Cyan, Color::Indexed(25), Color::Blue)
            .add_modifier(Modifier::BOLD)
    }
    pub fn good(&self) -> Style {
        self.colour(Color::Green, Color::Indexed(28), Color::Green)
    }
    pub fn warn(&self) -> Style {
        self.colour(Color::Yellow, Color::Indexed(130), Color::Yellow)
            .add_modifier(Modifier::BOLD)
    }
    pub fn bad(&self) -> Style {
        let s = self
            .colour(Color::Red, Color::Indexed(160), Color::Red)
            .add_modifier(Modifier::BOLD);
        if self.is_mono() {
            s.add_modifier(Modifier::UNDERLINED)
        } else {
            s
        }
    }
    pub fn dim(&self) -> Style {
        match self.name {
            ThemeName::Mono => Style::new().add_modifier(Modifier::DIM),
            _ => self.colour(Color::DarkGray, Color::Indexed(242), Color::LightGreen),
        }
    }
    /// A value that differs (attestation drift).
    pub fn changed(&self) -> Style {
        self.colour(Color::Yellow, Color::Indexed(130), Color::LightRed)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
    /// Search matches.
    pub fn found(&self) -> Style {
        self.colour(Color::Magenta, Color::Indexed(90), Color::LightMagenta)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
    /// Revoked things: present, but the quietest thing on screen.
    pub fn revoked(&self) -> Style {
        self.dim().add_modifier(Modifier::CROSSED_OUT)
    }
    /// The loudest: the hub unreachable, the view stale.
    pub fn alarm(&self) -> Style {
        self.bad().add_modifier(Modifier::REVERSED)
    }
}

impl Default for Theme {
    fn default() -> Self {
        Theme::new(ThemeName::Dark, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_turns_every_theme_mono() {
        assert!(no_color_requested(Some("1".as_ref())));
        assert!(!no_color_requested(Some("".as_ref())));
        assert!(!no_color_requested(None));
        for name in ThemeName::ALL {
            let t = Theme::new(name, true);
            assert!(t.is_mono());
            for s in [
                t.key(),
                t.good(),
                t.warn(),
                t.bad(),
                t.dim(),
                t.changed(),
                t.alarm(),
            ] {
                assert_eq!(s.fg, None, "{name:?}");
                assert_eq!(s.bg, None, "{name:?}");
            }
        }
    }

    #[test]
    fn roles_stay_distinct_in_every_theme() {
        for name in ThemeName::ALL {
            let t = Theme::new(name, false);
            let roles = [t.good(), t.warn(), t.bad(), t.dim(), t.key()];
            for (i, a) in roles.iter().enumerate() {
                for b in &roles[i + 1..] {
                    assert_ne!(a, b, "{name:?}: two roles look the same");
                }
            }
        }
        // Solarized never uses bright black (the background there).
        let s = Theme::new(ThemeName::Solarized, false);
        assert_ne!(s.dim().fg, Some(Color::DarkGray));
        // Light never uses yellow or cyan (unreadable on white).
        let l = Theme::new(ThemeName::Light, false);
        for st in [l.warn(), l.key(), l.changed()] {
            assert!(!matches!(st.fg, Some(Color::Yellow | Color::Cyan)));
        }
        assert_eq!("Solarized".parse::<ThemeName>(), Ok(ThemeName::Solarized));
        assert!("pink".parse::<ThemeName>().is_err());
    }
}
