//! Tenants, their API tokens and operator tokens: what `herald tenant`, `herald admin` and the
//! `/v1/tokens` and `/v1/admin` routes share.

use chrono::{DateTime, Utc};
use herald_core::id::{TenantId, TokenId};
use herald_core::token::Scope;
use herald_core::validate::Invalid;

use crate::sql;

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("tenant {0:?} exists already; `herald tenant token {0}` issues it another token")]
    Exists(String),
    #[error("no tenant {0:?}; `herald tenant create {0}` creates it")]
    Unknown(String),
    #[error("the database has no Herald schema yet: run `herald migrate` first")]
    NotMigrated,
    #[error("database: {0}")]
    Database(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for TenantError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(c)
                if *c == tokio_postgres::error::SqlState::UNDEFINED_TABLE
                    || *c == tokio_postgres::error::SqlState::INVALID_SCHEMA_NAME =>
            {
                TenantError::NotMigrated
            }
            _ => TenantError::Database(e),
        }
    }
}

/// What a new token is: its name, scope and expiry.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub scope: Scope,
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewToken {
    /// A tenant's first token, as `herald tenant create` and `POST /v1/admin/tenants` give it.
    pub fn first() -> Self {
        Self { name: "first".into(), scope: Scope::Full, expires_at: None }
    }

    /// Checks the name and expiry (`now`: an expiry must be later).
    pub fn checked(
        name: &str,
        scope: Scope,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Self, Invalid> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Invalid::new(
                "invalid_name",
                "name: 1 to 100 characters without control characters, to tell the token apart (e.g. `ci-publisher`)",
            ));
        }
        if let Some(at) = expires_at.filter(|at| *at <= now) {
            return Err(Invalid::new(
                "invalid_expires_at",
                format!(
                    "expires_at {} is not in the future; leave it out for a token that does not expire",
                    at.to_rfc3339()
                ),
            ));
        }
        Ok(Self { name: name.to_string(), scope, expires_at })
    }
}

/// A token just made: its row and the token itself (shown this once).
#[derive(Debug, Clone)]
pub struct Issued {
    pub id: TokenId,
    pub new: NewToken,
    pub created_at: DateTime<Utc>,
    pub token: String,
}

/// Creates tenant `name` and returns its first API token (scope `full`).
pub async fn create(
    client: &mut tokio_postgres::Client,
    name: &TenantId,
    now: DateTime<Utc>,
) -> Result<String, TenantError> {
    let tx = client.transaction().await?;
    let issued = create_in(&tx, name, now).await?;
    tx.commit().await?;
    Ok(issued.token)
}

/// Creates tenant `name` with its first token, inside `tx`.
pub async fn create_in(
    tx: &tokio_postgres::Transaction<'_>,
    name: &TenantId,
    now: DateTime<Utc>,
) -> Result<Issued, TenantError> {
    if tx.execute(sql::CREATE_TENANT, &[&name, &now]).await? == 0 {
        return Err(TenantError::Exists(name.to_string()));
    }
    insert_token(tx, name, NewToken::first(), now).await
}

/// Issues another API token (scope `full`) for an existing tenant.
pub async fn issue_token(
    client: &mut tokio_postgres::Client,
    name: &TenantId,
    now: DateTime<Utc>,
) -> Result<String, TenantError> {
    let tx = client.transaction().await?;
    let issued = issue_in(&tx, name, NewToken { name: "cli".into(), ..NewToken::first() }, now).await?;
    tx.commit().await?;
    Ok(issued.token)
}

/// Issues a token for an existing tenant, inside `tx`.
pub async fn issue_in(
    tx: &tokio_postgres::Transaction<'_>,
    name: &TenantId,
    new: NewToken,
    now: DateTime<Utc>,
) -> Result<Issued, TenantError> {
    let exists = tx.query_opt("SELECT 1 FROM herald.tenants WHERE tenant_id = $1", &[&name]).await?.is_some();
    if !exists {
        return Err(TenantError::Unknown(name.to_string()));
    }
    insert_token(tx, name, new, now).await
}

async fn insert_token(
    tx: &tokio_postgres::Transaction<'_>,
    name: &TenantId,
    new: NewToken,
    now: DateTime<Utc>,
) -> Result<Issued, TenantError> {
    let token = herald_core::token::generate(name);
    let id = TokenId::generate(now);
    let hash = herald_core::token::hash(&token);
    tx.execute(sql::CREATE_TOKEN, &[&name, &hash, &now, &id, &new.name, &new.scope.as_str(), &new.expires_at]).await?;
    Ok(Issued { id, new, created_at: now, token })
}

/// Announces a revocation or a disabled tenant to every API process (their token caches),
/// when `tx` commits. A hint sent from Herald's own session (shared/scale-out.md, rule 6).
pub async fn announce(tx: &tokio_postgres::Transaction<'_>, tenant: &TenantId) -> Result<(), tokio_postgres::Error> {
    tx.execute("SELECT pg_notify('herald_tokens', $1)", &[&tenant.as_str()]).await.map(drop)
}

/// Creates an operator token: it reaches `/v1/admin` and nothing else.
pub async fn create_operator_token(
    client: &tokio_postgres::Client,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Issued, TenantError> {
    let new = NewToken::checked(name, Scope::Full, expires_at, now)?;
    let token = herald_core::token::generate_operator();
    let id = TokenId::generate(now);
    client
        .execute(
            "INSERT INTO herald.operator_tokens (token_id, token_hash, name, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
            &[&id, &herald_core::token::hash(&token), &new.name, &now, &new.expires_at],
        )
        .await?;
    Ok(Issued { id, new, created_at: now, token })
}

/// Revokes an operator token; false if there is none by that id that is not revoked yet.
pub async fn revoke_operator_token(
    client: &tokio_postgres::Client,
    id: &TokenId,
    now: DateTime<Utc>,
) -> Result<bool, TenantError> {
    let n = client
        .execute(
            "UPDATE herald.operator_tokens SET revoked_at = $2 WHERE token_id = $1 AND revoked_at IS NULL",
            &[&id, &now],
        )
        .await?;
    Ok(n == 1)
}

/// Operator tokens not revoked: id, name, created, expires.
pub async fn operator_tokens(
    client: &tokio_postgres::Client,
) -> Result<Vec<(String, String, DateTime<Utc>, Option<DateTime<Utc>>)>, TenantError> {
    let rows = client
        .query(
            "SELECT token_id, name, created_at, expires_at FROM herald.operator_tokens \
              WHERE revoked_at IS NULL ORDER BY token_id",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
}
