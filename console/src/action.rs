//! What an operator can ask for, independent of the key that asks: keys
//! become [`Action`]s through the one key map ([`crate::keymap`]), and
//! screens and overlays act on actions only.

use crate::screens::View;

/// One thing the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    Help,
    /// The `:` command palette.
    Palette,
    NextScreen,
    PrevScreen,
    GoTo(View),
    Refresh,
    /// Edit this screen's filter (`/`); in a result, search it.
    Filter,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// Mouse wheel.
    ScrollUp,
    ScrollDown,
    /// Scroll a detail pane (the list keeps its cursor).
    DetailDown,
    DetailUp,
    /// Open the detail, pick, run.
    Enter,
    /// Close, go back, cancel.
    Back,
    /// The pane to the left / right (Keys & tokens, Try it).
    Left,
    Right,
    /// Sort by the next column / reverse the order.
    SortNext,
    SortReverse,
    /// Copy the selected thing (an id, a key, a command) with OSC 52.
    Copy,
    Approve,
    Deny,
    Revoke,
    /// Keep an agent quarantined (Attestation).
    Keep,
    /// Edit an agent's tags.
    Tags,
    /// Closed drift events too (Attestation).
    History,
    Create,
    Verify,
    /// Follow new audit entries.
    Follow,
    OlderPage,
    NewerPage,
    /// Raw JSON / human outline of a result.
    RawJson,
    SearchNext,
    SearchPrev,
    /// Save the result to a file.
    Save,
    /// Back to a probe's parameters from its result.
    EditParams,
    /// `y` in a confirmation.
    Confirm,
    /// Show a secret outside the full-screen view, for selecting it with the mouse.
    PrintPlain,
    /// Run the selected thing now (a critical path).
    Run,
    /// Complete the palette's input with the highlighted suggestion.
    Complete,
    /// Run an integration's test probe.
    Test,
    /// Re-encrypt the integrations' credentials under a new key.
    RotateKey,
    /// Set or replace the selected integration's credential (masked input).
    SetCredential,
    /// Clear the selected integration's credential.
    ClearCredential,
}
