//! Enrollment tokens: stored as SHA-256 only, single use, expiring.

use rusqlite::{Connection, OptionalExtension, Row, params};
use sonde_protocol::Digest;
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::time::now_ms;

use super::{Audited, EnrollmentToken, HubStore, Result, StoreError, TokenRefusal, TokenState};

const COLUMNS: &str =
    "id, label, auto_approve, created_at_ms, expires_at_ms, used_at_ms, revoked_at_ms";

fn row(r: &Row<'_>) -> rusqlite::Result<EnrollmentToken> {
    Ok(EnrollmentToken {
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

fn get(conn: &Connection, id: &str) -> Result<Option<EnrollmentToken>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM tokens WHERE id = ?1"))?
        .query_row([id], row)
        .optional()?)
}

/// Burns a token: succeeds once, for an active token. Runs inside the
/// caller's transaction so the burn and what it authorises commit together.
pub(super) fn consume(
    conn: &Connection,
    secret: &str,
    now_ms: i64,
) -> Result<std::result::Result<EnrollmentToken, TokenRefusal>> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE secret_sha256 = ?1"
        ))?
        .query_row([secret_hash(secret)], row)
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
    let changed = conn
        .prepare_cached("UPDATE tokens SET used_at_ms = ?2 WHERE id = ?1 AND used_at_ms IS NULL")?
        .execute(params![token.id, now_ms])?;
    if changed != 1 {
        return Ok(Err(TokenRefusal::Reused { token_id: token.id }));
    }
    Ok(Ok(EnrollmentToken {
        used_at_ms: Some(now_ms),
        ..token
    }))
}

impl HubStore {
    /// Stores a new token (only the hash of `secret`), audited as
    /// `token.created` by `by`.
    pub async fn create_token(
        &self,
        token: EnrollmentToken,
        secret: String,
        by: &str,
    ) -> Result<EnrollmentToken> {
        let by = by.to_owned();
        let (token, _) = self
            .commit(move |c| {
                c.prepare_cached(
                    "INSERT INTO tokens (id, secret_sha256, label, auto_approve, created_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    token.id,
                    secret_hash(&secret),
                    token.label,
                    token.auto_approve,
                    token.created_at_ms,
                    token.expires_at_ms
                ])?;
                let entry = NewEntry::new(by, AuditAction::TokenCreated, "ok")
                    .detail("token_id", token.id.clone())
                    .detail("label", token.label.clone())
                    .detail("auto_approve", token.auto_approve)
                    .detail("expires_at_ms", token.expires_at_ms);
                Ok(Audited::new(token, entry))
            })
            .await?;
        Ok(token)
    }

    /// Every token, newest first.
    pub async fn tokens(&self) -> Result<Vec<EnrollmentToken>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM tokens ORDER BY created_at_ms DESC"
            ))?;
            let rows = stmt
                .query_map([], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    /// Revokes a token (idempotent), audited as `token.revoked`.
    pub async fn revoke_token(&self, id: &str, by: &str) -> Result<EnrollmentToken> {
        let (id, by) = (id.to_owned(), by.to_owned());
        let (token, _) = self
            .commit(move |c| {
                let token = get(c, &id)?
                    .ok_or_else(|| StoreError::NotFound(format!("no enrollment token {id:?}")))?;
                if token.revoked_at_ms.is_none() {
                    c.prepare_cached("UPDATE tokens SET revoked_at_ms = ?2 WHERE id = ?1")?
                        .execute(params![id, now_ms()])?;
                }
                let token = get(c, &id)?
                    .ok_or_else(|| StoreError::NotFound(format!("no enrollment token {id:?}")))?;
                let entry = NewEntry::new(by, AuditAction::TokenRevoked, "ok")
                    .detail("token_id", id.clone());
                Ok(Audited::new(token, entry))
            })
            .await?;
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{raw, store};

    fn token(id: &str, expires: i64) -> EnrollmentToken {
        EnrollmentToken {
            id: id.into(),
            label: "l".into(),
            auto_approve: false,
            created_at_ms: 0,
            expires_at_ms: expires,
            used_at_ms: None,
            revoked_at_ms: None,
        }
    }

    /// Runs `consume` in its own transaction on a raw connection.
    fn consume_now(
        dir: &tempfile::TempDir,
        secret: &str,
        now: i64,
    ) -> std::result::Result<EnrollmentToken, TokenRefusal> {
        let c = raw(dir);
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        let r = consume(&c, secret, now).unwrap();
        c.execute_batch("COMMIT").unwrap();
        r
    }

    #[tokio::test]
    async fn enrollment_token_is_single_use() {
        let (dir, store) = store();
        store
            .create_token(token("tok-1", 1000), "secret-1".into(), "op")
            .await
            .unwrap();
        assert!(consume_now(&dir, "secret-1", 10).is_ok());
        assert_eq!(
            consume_now(&dir, "secret-1", 11),
            Err(TokenRefusal::Reused {
                token_id: "tok-1".into()
            })
        );
    }

    #[tokio::test]
    async fn enrollment_token_expires() {
        let (dir, store) = store();
        store
            .create_token(token("tok-1", 1000), "secret-1".into(), "op")
            .await
            .unwrap();
        let refusal = consume_now(&dir, "secret-1", 61_000).unwrap_err();
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
        assert!(consume_now(&dir, "secret-1", 61_001).is_err());
    }

    #[tokio::test]
    async fn revoked_and_unknown_tokens_are_refused() {
        let (dir, store) = store();
        store
            .create_token(token("tok-1", 1000), "secret-1".into(), "op")
            .await
            .unwrap();
        store.revoke_token("tok-1", "op").await.unwrap();
        assert_eq!(
            consume_now(&dir, "secret-1", 6),
            Err(TokenRefusal::Revoked {
                token_id: "tok-1".into()
            })
        );
        assert_eq!(consume_now(&dir, "nope", 6), Err(TokenRefusal::Unknown));
        assert!(store.revoke_token("tok-x", "op").await.is_err());
        // Each change has its audit entry; the failed revoke has none.
        let (page, _) = store.audit_page(Default::default()).await.unwrap();
        let actions: Vec<&str> = page.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["token.revoked", "token.created"]);
    }

    #[tokio::test]
    async fn secrets_are_long_and_never_stored() {
        let s = new_secret();
        assert!(s.len() >= "sonde-enroll-".len() + 32);
        let (dir, store) = store();
        store
            .create_token(token("tok-1", 1000), s.clone(), "op")
            .await
            .unwrap();
        let stored: String = raw(&dir)
            .query_row("SELECT secret_sha256 FROM tokens", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, s);
        assert!(!stored.contains(&s[13..]));
    }
}
