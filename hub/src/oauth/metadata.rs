//! Discovery documents: protected-resource metadata (RFC 9728), served at
//! `/.well-known/oauth-protected-resource/mcp` (path-aware, as MCP clients
//! try first) and at the root form, and authorization-server metadata
//! (RFC 8414) at `/.well-known/oauth-authorization-server`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use std::sync::Arc;

use super::{OAuth, SCOPE, issuer, no_store, resource};
use crate::hub::Hub;

/// The protected-resource metadata document.
pub fn protected_resource_document(hub: &Hub) -> serde_json::Value {
    json!({
        "resource": resource(hub),
        "authorization_servers": [issuer(hub)],
        "scopes_supported": [SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": "Sonde hub",
    })
}

/// The authorization-server metadata document.
pub fn authorization_server_document(hub: &Hub) -> serde_json::Value {
    let iss = issuer(hub);
    json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth/authorize"),
        "token_endpoint": format!("{iss}/oauth/token"),
        "registration_endpoint": format!("{iss}/oauth/register"),
        "revocation_endpoint": format!("{iss}/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": [SCOPE],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": false,
    })
}

pub async fn protected_resource(State(o): State<Arc<OAuth>>) -> Response {
    no_store(StatusCode::OK, protected_resource_document(&o.hub))
}

pub async fn authorization_server(State(o): State<Arc<OAuth>>) -> Response {
    no_store(StatusCode::OK, authorization_server_document(&o.hub))
}
