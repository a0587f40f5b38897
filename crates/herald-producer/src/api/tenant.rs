//! `GET /v1/tenant`: the calling tenant's settings, which its operator sets with
//! `herald tenant set`. `PATCH /v1/tenant`: the tenant sets its own notice channels (where
//! failing-endpoint notices go: an email address, a Slack-compatible incoming-webhook URL);
//! the URL policy and unsigned callbacks stay the operator's.

use axum::extract::State;
use axum::Json;
use herald_core::policy::{self, SettingsChange, TenantSettings};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{ApiJson, Tenant};
use super::AppState;

pub async fn get(State(state): State<AppState>, Tenant(tenant): Tenant) -> Result<Json<Value>, ApiError> {
    let client = state.pool.get().await?;
    let settings = TenantSettings::load(&client, &tenant).await?.unwrap_or_default();
    Ok(Json(answer(tenant.as_str(), &settings)))
}

/// Distinguishes a field that is absent (`None`: left as it is) from one set to null
/// (`Some(None)`: that channel off).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    #[serde(default, deserialize_with = "nullable")]
    notify_email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    notify_slack_url: Option<Option<String>>,
}

/// `PATCH /v1/tenant {notify_email?, notify_slack_url?}`: each given field is set (null turns
/// that channel off), each absent one left as it is; answers the settings as `GET` does (the
/// Slack URL masked, even to the caller who just sent it). A
/// Slack URL is a target like an endpoint's: `https://`, and not a literal non-public address,
/// unless `HERALD_ALLOW_PRIVATE_TARGETS` allows one.
pub async fn patch(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Json<Value>, ApiError> {
    let notify_email = body.notify_email.map(|e| e.as_deref().map(policy::notify_email).transpose()).transpose()?;
    let notify_slack_url = body
        .notify_slack_url
        .map(|u| u.as_deref().map(|u| policy::notify_slack_url(u, &state.allow).map(String::from)).transpose())
        .transpose()?;
    let change = SettingsChange { notify_email, notify_slack_url, ..SettingsChange::default() };
    let client = state.pool.get().await?;
    let settings = TenantSettings::update(&**client, &tenant, &change).await?.unwrap_or_default();
    Ok(Json(answer(tenant.as_str(), &settings)))
}

/// A tenant's settings as the API and `herald tenant set` show them. The Slack URL is masked
/// (see [`masked_url`]): whoever holds it can post to the channel, and a token of any scope may
/// read this.
pub fn answer(tenant: &str, s: &TenantSettings) -> Value {
    json!({
        "id": tenant,
        "require_https": s.require_https,
        "allowed_domains": s.allowed_domains,
        "unsigned_callbacks": s.unsigned_callbacks,
        "notify_email": s.notify_email,
        "notify_slack_url": s.notify_slack_url.as_deref().map(masked_url),
    })
}

/// A URL that is its own secret (an incoming webhook's), as it is shown: its scheme, host and
/// port, then `/…` for the rest (`https://hooks.slack.com/…`). Enough to tell which service it
/// is, nothing to post with.
pub fn masked_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}/…", u.scheme(), u.host_str().unwrap_or(""))
        }
        Err(_) => "…".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slack_url_is_shown_without_its_secret() {
        assert_eq!(masked_url("https://hooks.slack.com/services/T0/B0/s3cret"), "https://hooks.slack.com/…");
        assert_eq!(masked_url("http://127.0.0.1:9000/slack?token=s3cret"), "http://127.0.0.1:9000/…");
        assert_eq!(masked_url("https://[::1]:8443/x#s3cret"), "https://[::1]:8443/…");
        assert_eq!(masked_url("not a url s3cret"), "…");
        let s = TenantSettings {
            notify_slack_url: Some("https://hooks.slack.com/services/T0/B0/s3cret".into()),
            ..TenantSettings::default()
        };
        let shown = answer("acme", &s).to_string();
        assert!(shown.contains("https://hooks.slack.com/…") && !shown.contains("s3cret"), "{shown}");
        assert_eq!(answer("acme", &TenantSettings::default())["notify_slack_url"], Value::Null);
    }
}
