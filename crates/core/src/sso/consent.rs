//! Consent for third-party apps: what a person allowed an app, per user and client, as the
//! union of the scopes granted so far. A later request for more asks only for what is new.

use super::store::{self, ConsentRow};
use crate::db::{DbConnection, DbError};
use crate::domain::{Client, ScopeSet};

/// The scopes of `requested` the person must still allow `client`: none for a first-party app
/// (unless `forced`, `prompt=consent`), everything when `forced`, otherwise what no earlier
/// consent covers.
pub fn missing(
    conn: &mut DbConnection,
    user_id: &str,
    client: &Client,
    requested: &ScopeSet,
    forced: bool,
) -> Result<ScopeSet, DbError> {
    if forced {
        return Ok(requested.clone());
    }
    if !client.needs_consent() {
        return Ok(ScopeSet::default());
    }
    let granted = store::find_consent(conn, user_id, &client.id)?
        .map(|row| ScopeSet::from_stored(&row.scope))
        .unwrap_or_default();
    Ok(requested.filter(|scope| !granted.contains(scope)))
}

/// Records that the person allowed `scope` (added to what they allowed before).
pub fn grant(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
    scope: &ScopeSet,
    now: i64,
) -> Result<(), DbError> {
    match store::find_consent(conn, user_id, client_id)? {
        Some(row) => {
            let scope = ScopeSet::from_stored(&row.scope).union(scope);
            store::update_consent(conn, user_id, client_id, &scope.to_string(), now)?;
        }
        None => store::insert_consent(
            conn,
            &ConsentRow {
                user_id: user_id.to_string(),
                client_id: client_id.to_string(),
                scope: scope.to_string(),
                granted_at: now,
                updated_at: now,
            },
        )?,
    }
    Ok(())
}

/// What the consent page says of `scope`: the operator's `[scopes.<name>] description`, else
/// a built-in one, else the scope's name.
pub fn description(settings: &crate::config::Settings, scope: &str) -> String {
    if let Some(text) = settings
        .scopes
        .get(scope)
        .and_then(|s| s.description.as_deref())
    {
        return text.to_string();
    }
    match scope {
        "openid" => "Know who you are on this site (your account identifier)".into(),
        "email" => "See your email address".into(),
        "profile" => "See your name".into(),
        crate::grants::OFFLINE_ACCESS => {
            "Stay connected to your account when you are not using it".into()
        }
        other => format!("Use “{other}”"),
    }
}
