//! `sonde-mcp-bridge`: MCP over stdio ⇄ a Sonde hub's Streamable HTTP
//! endpoint. See the crate's README.

fn main() -> std::process::ExitCode {
    sonde_mcp_bridge::main()
}
