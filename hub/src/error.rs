//! Errors of hub operations, with the HTTP status and stable code each maps to.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl HubError {
    pub fn status(&self) -> u16 {
        match self {
            HubError::NotFound(_) => 404,
            HubError::Conflict(_) => 409,
            HubError::BadRequest(_) => 400,
            HubError::Forbidden(_) => 403,
            HubError::Unavailable(_) => 503,
            HubError::Store(StoreError::NotFound(_)) => 404,
            HubError::Store(StoreError::Conflict(_)) => 409,
            HubError::Store(_) | HubError::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self.status() {
            404 => "not_found",
            409 => "conflict",
            400 => "bad_request",
            403 => "forbidden",
            503 => "unavailable",
            _ => "internal",
        }
    }
}

impl From<crate::ca::CaError> for HubError {
    fn from(e: crate::ca::CaError) -> Self {
        match e {
            crate::ca::CaError::BadCsr(m) => {
                HubError::BadRequest(format!("the certificate signing request is invalid: {m}"))
            }
            other => HubError::Internal(other.to_string()),
        }
    }
}
