//! Consent for third-party apps: what a person allowed an app, per user and client, as the
//! union of the scopes granted so far. A later request for more asks only for what is new.
//! First-party apps (`Consent::FirstParty`) are never asked and nothing is recorded for them,
//! not even after `prompt=consent` showed the page: a consent that changes nothing would only
//! mislead the person's list.

use diesel::Connection;
use serde_json::json;

use super::store::{self, ConsentRow};
use crate::audit::{self, Actor, Event, Record};
use crate::db::{DbConnection, DbError};
use crate::domain::{Client, ScopeSet};

/// What the consent page must ask, if anything: `None` when the app may go ahead (a
/// first-party app, or an earlier consent covers every requested scope), else the scopes to
/// list. The list may be empty: a third-party app the person never allowed is asked about even
/// when it requests no scope at all, since its tokens still say who the person is (`sub`).
/// `forced` (`prompt=consent`) asks for everything requested, first-party apps included.
pub fn missing(
    conn: &mut DbConnection,
    user_id: &str,
    client: &Client,
    requested: &ScopeSet,
    forced: bool,
) -> Result<Option<ScopeSet>, DbError> {
    if forced {
        return Ok(Some(requested.clone()));
    }
    if !client.needs_consent() {
        return Ok(None);
    }
    let Some(row) = store::find_consent(conn, user_id, &client.id)? else {
        return Ok(Some(requested.clone()));
    };
    let granted = ScopeSet::from_stored(&row.scope);
    let new = requested.filter(|scope| !granted.contains(scope));
    Ok((!new.is_empty()).then_some(new))
}

/// Records that the person allowed `client` the scopes of `scope` (added to what they allowed
/// before), audited; nothing for a first-party app. Inside the caller's transaction.
pub fn grant(
    conn: &mut DbConnection,
    user_id: &str,
    client: &Client,
    scope: &ScopeSet,
    now: i64,
) -> Result<(), DbError> {
    if !client.needs_consent() {
        return Ok(());
    }
    let client_id = client.id.as_str();
    let before = store::find_consent(conn, user_id, client_id)?;
    let added = match &before {
        Some(row) => {
            let granted = ScopeSet::from_stored(&row.scope);
            let added = scope.filter(|s| !granted.contains(s));
            let scope = granted.union(scope);
            store::update_consent(conn, user_id, client_id, &scope.to_string(), now)?;
            added
        }
        None => {
            store::insert_consent(
                conn,
                &ConsentRow {
                    user_id: user_id.to_string(),
                    client_id: client_id.to_string(),
                    scope: scope.to_string(),
                    granted_at: now,
                    updated_at: now,
                },
            )?;
            scope.clone()
        }
    };
    audit::record(
        conn,
        Event::ConsentGranted,
        Record {
            user_id: Some(user_id),
            client_id: Some(client_id),
            detail: Some(json!({ "scopes": added.to_vec(), "first": before.is_none() })),
            ..Record::default()
        },
        now,
    )
}

/// One consent, as the person's own list shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConsentView {
    pub client_id: String,
    pub client_name: String,
    pub scopes: Vec<String>,
    pub granted_at: i64,
    pub updated_at: i64,
}

/// The apps a person has allowed, the most recently changed first.
pub fn list(conn: &mut DbConnection, user_id: &str) -> Result<Vec<ConsentView>, DbError> {
    Ok(store::consents_of_user(conn, user_id)?
        .into_iter()
        .map(|(row, client_name)| ConsentView {
            client_id: row.client_id,
            client_name,
            scopes: ScopeSet::from_stored(&row.scope).to_vec(),
            granted_at: row.granted_at,
            updated_at: row.updated_at,
        })
        .collect())
}

/// What withdrawing a consent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Revoked {
    /// The app's refresh token families of this person that were live.
    pub families: usize,
}

/// Withdraws the person's consent to `client_id`, in one transaction: the consent goes, the
/// app's live refresh token families of this person end (`offline_access` ones too: the
/// consent was what they rested on), its unredeemed codes for them go, and the event is
/// audited. The next `/authorize` of the app shows the consent page again. `None` if the
/// person had no consent for that client (someone else's is never touched: the key is
/// theirs).
pub fn revoke(
    conn: &mut DbConnection,
    actor: &Actor,
    user_id: &str,
    client_id: &str,
    now: i64,
) -> Result<Option<Revoked>, DbError> {
    conn.transaction(|conn| {
        if store::delete_consent(conn, user_id, client_id)? == 0 {
            return Ok(None);
        }
        // Codes first: an exchange that commits meanwhile leaves a family the next statement
        // sees and ends.
        crate::authorize::store::delete_unused_of(conn, user_id, client_id)?;
        let families = crate::refresh::store::revoke_families_of_user_at_client(
            conn,
            user_id,
            client_id,
            now,
            "consent_revoked",
        )?;
        audit::record(
            conn,
            Event::ConsentRevoked,
            Record {
                user_id: Some(user_id),
                client_id: Some(client_id),
                detail: Some(json!({ "by": actor.by(), "families": families })),
                ..Record::default()
            },
            now,
        )?;
        Ok(Some(Revoked { families }))
    })
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
        // What these two allow is too much to hide behind a scope's name.
        "account" => "Manage your account here: change your password, end your sessions and delete the account".into(),
        crate::grants::ADMIN_SCOPE => "Act as an administrator of this sign-in service".into(),
        crate::grants::OFFLINE_ACCESS => {
            "Stay connected to your account when you are not using it".into()
        }
        other => format!("Use “{other}”"),
    }
}
