//! How a tool takes its arguments and gives its answer, so that a tool's
//! name, description, input schema and output schema come from one place:
//! its `#[tool]` function. The argument type (`Parameters<T>`, `T:
//! JsonSchema + Deserialize`) is the input schema and the parser; the answer
//! type (`Json<Answer<T>>`, `T: JsonSchema + Serialize`) is the output
//! schema and the structured content.
//!
//! Failures are tool results (`isError: true`) with structured content
//! `{"error": code, "message": …}` (or, for a probe that ran and failed,
//! the probe result itself), so a model can read and correct them, as the
//! MCP specification asks for input errors. The output schema therefore
//! says "the answer or a failure" (`anyOf`), and clients that validate
//! `structuredContent` against it (the TypeScript SDK does) accept both.

use rmcp::handler::server::common::FromContextPart;
use rmcp::handler::server::tool::{IntoCallToolResult, ToolCallContext};
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::borrow::Cow;

use crate::mcp::policy::KeyPolicy;

/// A tool-level failure as the caller reads it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ToolFailure {
    /// Machine-readable code: `invalid_params`, `not_found`, `denied`,
    /// `refused`, `unavailable`, `cancelled`, `internal`, …
    pub error: String,
    /// What went wrong and what the caller may do instead.
    pub message: String,
}

/// A tool-level error the caller (often a model) reads and can act on.
pub fn tool_error(code: &str, message: impl Into<String>) -> CallToolResult {
    let message = message.into();
    let mut r = CallToolResult::structured_error(json!({"error": code, "message": message}));
    r.content = vec![ContentBlock::text(format!("{code}: {message}"))];
    r
}

/// A tool's arguments, parsed from the call: `Ok` or a tool error naming
/// the bad field (never a JSON-RPC error). Named `Parameters` so rmcp's
/// `#[tool]` macro takes the input schema from `T`.
#[derive(Debug)]
pub struct Parameters<T>(pub Result<T, CallToolResult>);

impl<T: JsonSchema> JsonSchema for Parameters<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

impl<S, T: DeserializeOwned> FromContextPart<ToolCallContext<'_, S>> for Parameters<T> {
    fn from_context_part(context: &mut ToolCallContext<'_, S>) -> Result<Self, rmcp::ErrorData> {
        let arguments = context.arguments.take().unwrap_or_default();
        Ok(Parameters(
            serde_json::from_value(Value::Object(arguments))
                .map_err(|e| tool_error("invalid_params", format!("invalid arguments: {e}"))),
        ))
    }
}

/// The caller's API key policy, put on the request by the guard.
#[derive(Debug, Clone)]
pub struct Caller(pub KeyPolicy);

impl<S> FromContextPart<ToolCallContext<'_, S>> for Caller {
    fn from_context_part(context: &mut ToolCallContext<'_, S>) -> Result<Self, rmcp::ErrorData> {
        policy_of(&context.request_context.extensions).map(Caller)
    }
}

/// The key policy in a request's extensions.
pub fn policy_of(extensions: &rmcp::model::Extensions) -> Result<KeyPolicy, rmcp::ErrorData> {
    extensions
        .get::<axum::http::request::Parts>()
        .and_then(|p| p.extensions.get::<KeyPolicy>())
        .cloned()
        .ok_or_else(|| {
            rmcp::ErrorData::invalid_request("no authenticated API key on this request", None)
        })
}

/// A tool's answer: its output, or a failure result.
#[derive(Debug)]
pub struct Answer<T>(pub Result<T, CallToolResult>);

impl<T> From<Result<T, CallToolResult>> for Answer<T> {
    fn from(r: Result<T, CallToolResult>) -> Self {
        Answer(r)
    }
}

impl<T: JsonSchema> JsonSchema for Answer<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("AnswerOf{}", T::schema_name()).into()
    }

    fn inline_schema() -> bool {
        true
    }

    /// `type: object` at the root (MCP requires it), then the answer or a
    /// failure.
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let ok = generator.subschema_for::<T>();
        let failure = generator.subschema_for::<ToolFailure>();
        json_schema!({"type": "object", "anyOf": [ok, failure]})
    }
}

/// The structured answer of a tool (the name lets rmcp's `#[tool]` macro
/// take the output schema from the type inside).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: Serialize + JsonSchema> IntoCallToolResult for Json<Answer<T>> {
    fn into_call_tool_result(self) -> Result<CallToolResponse, rmcp::ErrorData> {
        Ok(match self.0.0 {
            Ok(value) => match serde_json::to_value(value) {
                Ok(v) => text_and_structured(v),
                Err(e) => tool_error("internal", format!("could not encode the answer: {e}")),
            },
            Err(failure) => failure,
        }
        .into())
    }
}

/// Structured content plus the same JSON as text, for clients that ignore
/// structured content (the specification's recommendation).
fn text_and_structured(v: Value) -> CallToolResult {
    CallToolResult::structured(v)
}
