//! Enrollment tokens: stored as SHA-256 only, single use, expiring.

use rusqlite::{Connection, OptionalExtension, Row, params};
use sonde_admin::api::{TokenInfo, TokenState};
use sonde_protocol::Digest;

use super::{Result, StoreError};

/// A token row.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub id: String,
    pub label: String,
    pub auto_approve: bool,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl TokenRow {
    pub fn state(&self, now_ms: i64) -> TokenState {
        if self.revoked_at_ms.is_some() {
            TokenState::Revoked
        } else if self.used_at_ms.is_some() {
            TokenState::Used
        } else if now_ms >= self.expires_at_ms {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }

    pub fn info(&self, now_ms: i64) -> TokenInfo {
        TokenInfo {
            id: self.id.clone(),
            label: self.label.clone(),
            state: self.state(now_ms),
            auto_approve: self.auto_approve,
            created_at_ms: self.created_at_ms,
            expires_at_ms: self.expires_at_ms,
            used_at_ms: self.used_at_ms,
            revoked_at_ms: self.revoked_at_ms,
        }
    }
}

const COLUMNS: &str =
    "id, label, auto_approve, created_at_ms, expires_at_ms, used_at_ms, revoked_at_ms";

fn row(r: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        label: r.get(1)?,
        auto_approve: r.get(2)?,
        created_at_ms: r.get(3)?,
        expires_at_ms: r.get(4)?,
        used_at_ms: r.get(5)?,
        revoked_at_ms: r.get(6)?,
    })
}

/// A new token secret: `sonde-enroll-` and 160 random bits in hex.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    sonde_protocol::keys::random_bytes(&mut bytes).expect("the OS random source failed");
    format!("sonde-enroll-{}", hex::encode(bytes))
}

pub fn secret_hash(secret: &str) -> String {
    Digest::of(secret.trim().as_bytes()).to_hex()
}

pub fn insert(conn: &Connection, token: &TokenRow, secret: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO tokens (id, secret_sha256, label, auto_approve, created_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![token.id, secret_hash(secret), token.label, token.auto_approve, token.created_at_ms, token.expires_at_ms],
    )?;
    Ok(())
}

pub fn list(conn: &Connection) -> Result<Vec<TokenRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM tokens ORDER BY created_at_ms DESC"
    ))?;
    let rows = stmt
        .query_map([], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<TokenRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM tokens WHERE id = ?1"),
            [id],
            row,
        )
        .optional()?)
}

pub fn revoke(conn: &Connection, id: &str, now_ms: i64) -> Result<TokenRow> {
    let token = get(conn, id)?
        .ok_or_else(|| StoreError::NotFound(format!("no enrollment token {id:?}")))?;
    if token.revoked_at_ms.is_none() {
        conn.execute(
            "UPDATE tokens SET revoked_at_ms = ?2 WHERE id = ?1",
            params![id, now_ms],
        )?;
    }
    get(conn, id)?.ok_or_else(|| StoreError::NotFound(format!("no enrollment token {id:?}")))
}

/// Why a presented token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Expired { token_id: String, ago_ms: i64 },
    Reused { token_id: String },
    Revoked { token_id: String },
}

impl TokenRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            TokenRefusal::Unknown => "token_unknown",
            TokenRefusal::Expired { .. } => "token_expired",
            TokenRefusal::Reused { .. } => "token_reused",
            TokenRefusal::Revoked { .. } => "token_revoked",
        }
    }

    pub fn token_id(&self) -> Option<&str> {
        match self {
            TokenRefusal::Unknown => None,
            TokenRefusal::Expired { token_id, .. }
            | TokenRefusal::Reused { token_id }
            | TokenRefusal::Revoked { token_id } => Some(token_id),
        }
    }

    /// What the agent is told (and the operator reads in the audit).
    pub fn message(&self) -> String {
        match self {
            TokenRefusal::Unknown => "enrollment token not recognised; create one with `sonde-hub token create`".into(),
            TokenRefusal::Expired { ago_ms, .. } => format!(
                "enrollment token expired {} ago; create a new one with `sonde-hub token create`",
                crate::util::human_duration_ms(*ago_ms)
            ),
            TokenRefusal::Reused { .. } => {
                "enrollment token was already used (tokens are single-use); create a new one with `sonde-hub token create`".into()
            }
            TokenRefusal::Revoked { .. } => "enrollment token was revoked; create a new one with `sonde-hub token create`".into(),
        }
    }
}

/// Burns a token: succeeds once, for an active token. Must run inside the
/// caller's transaction so the burn and what it authorises commit together.
pub fn consume(
    conn: &Connection,
    secret: &str,
    now_ms: i64,
) -> Result<std::result::Result<TokenRow, TokenRefusal>> {
    let found = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM tokens WHERE secret_sha256 = ?1"),
            [secret_hash(secret)],
            row,
        )
        .optional()?;
    let Some(token) = found else {
        return Ok(Err(TokenRefusal::Unknown));
    };
    let refusal = match token.state(now_ms) {
        TokenState::Active => None,
        TokenState::Revoked => Some(TokenRefusal::Revoked {
            token_id: token.id.clone(),
        }),
        TokenState::Used => Some(TokenRefusal::Reused {
            token_id: token.id.clone(),
        }),
        TokenState::Expired => Some(TokenRefusal::Expired {
            token_id: token.id.clone(),
            ago_ms: now_ms - token.expires_at_ms,
        }),
    };
    if let Some(refusal) = refusal {
        return Ok(Err(refusal));
    }
    let changed = conn.execute(
        "UPDATE tokens SET used_at_ms = ?2 WHERE id = ?1 AND used_at_ms IS NULL",
        params![token.id, now_ms],
    )?;
    if changed != 1 {
        return Ok(Err(TokenRefusal::Reused { token_id: token.id }));
    }
    Ok(Ok(TokenRow {
        used_at_ms: Some(now_ms),
        ..token
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::store;

    fn token(id: &str, expires: i64) -> TokenRow {
        TokenRow {
            id: id.into(),
            label: "l".into(),
            auto_approve: false,
            created_at_ms: 0,
            expires_at_ms: expires,
            used_at_ms: None,
            revoked_at_ms: None,
        }
    }

    #[test]
    fn enrollment_token_is_single_use() {
        let (_d, store) = store();
        store
            .write_blocking(|c| {
                insert(c, &token("tok-1", 1000), "secret-1")?;
                assert!(consume(c, "secret-1", 10)?.is_ok());
                assert_eq!(
                    consume(c, "secret-1", 11)?,
                    Err(TokenRefusal::Reused {
                        token_id: "tok-1".into()
                    })
                );
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn enrollment_token_expires() {
        let (_d, store) = store();
        store
            .write_blocking(|c| {
                insert(c, &token("tok-1", 1000), "secret-1")?;
                let refusal = consume(c, "secret-1", 61_000)?.unwrap_err();
                assert_eq!(
                    refusal,
                    TokenRefusal::Expired {
                        token_id: "tok-1".into(),
                        ago_ms: 60_000
                    }
                );
                assert!(
                    refusal.message().contains("expired 1m ago"),
                    "{}",
                    refusal.message()
                );
                // Expired tokens are not burnt by the attempt, but stay unusable.
                assert!(consume(c, "secret-1", 61_001)?.is_err());
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn revoked_and_unknown_tokens_are_refused() {
        let (_d, store) = store();
        store
            .write_blocking(|c| {
                insert(c, &token("tok-1", 1000), "secret-1")?;
                revoke(c, "tok-1", 5)?;
                assert_eq!(
                    consume(c, "secret-1", 6)?,
                    Err(TokenRefusal::Revoked {
                        token_id: "tok-1".into()
                    })
                );
                assert_eq!(consume(c, "nope", 6)?, Err(TokenRefusal::Unknown));
                assert!(revoke(c, "tok-x", 5).is_err());
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn secrets_are_long_and_never_stored() {
        let s = new_secret();
        assert!(s.len() >= "sonde-enroll-".len() + 32);
        let (_d, store) = store();
        store
            .write_blocking(|c| {
                insert(c, &token("tok-1", 1000), &s)?;
                let stored: String =
                    c.query_row("SELECT secret_sha256 FROM tokens", [], |r| r.get(0))?;
                assert_ne!(stored, s);
                assert!(!stored.contains(&s[13..]));
                Ok(())
            })
            .unwrap();
    }
}
