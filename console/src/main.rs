//! `sonde-console`: the operator's terminal UI (being written; see issue 8).
fn main() {}
