//! Tenants and their API tokens, for the `herald tenant` commands.

use chrono::{DateTime, Utc};
use herald_core::id::TenantId;
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

/// Creates tenant `name` and returns its first API token (shown once; only its hash is kept).
pub async fn create(
    client: &mut tokio_postgres::Client,
    name: &TenantId,
    now: DateTime<Utc>,
) -> Result<String, TenantError> {
    let tx = client.transaction().await?;
    if tx.execute(sql::CREATE_TENANT, &[&name, &now]).await? == 0 {
        return Err(TenantError::Exists(name.to_string()));
    }
    let token = insert_token(&tx, name, now).await?;
    tx.commit().await?;
    Ok(token)
}

/// Issues another API token for an existing tenant.
pub async fn issue_token(
    client: &mut tokio_postgres::Client,
    name: &TenantId,
    now: DateTime<Utc>,
) -> Result<String, TenantError> {
    let tx = client.transaction().await?;
    let exists = tx.query_opt("SELECT 1 FROM herald.tenants WHERE tenant_id = $1", &[&name]).await?.is_some();
    if !exists {
        return Err(TenantError::Unknown(name.to_string()));
    }
    let token = insert_token(&tx, name, now).await?;
    tx.commit().await?;
    Ok(token)
}

async fn insert_token(
    tx: &tokio_postgres::Transaction<'_>,
    name: &TenantId,
    now: DateTime<Utc>,
) -> Result<String, TenantError> {
    let token = herald_core::token::generate(name);
    tx.execute(sql::CREATE_TOKEN, &[&name, &herald_core::token::hash(&token), &now]).await?;
    Ok(token)
}
