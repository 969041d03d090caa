//! OAuth clients as the operator and administrators manage them.

use diesel::Connection;
use serde_json::json;

use super::Actor;
use crate::audit::{self, Event, Record};
use crate::clients::{self, ClientError, ClientPatch, ClientSpec};
use crate::db::{DbConnection, repo};
use crate::domain::Client;

/// Every client (never a secret: only its hash is stored).
pub fn list(conn: &mut DbConnection) -> Result<Vec<Client>, ClientError> {
    Ok(repo::clients::list(conn)?)
}

/// One client, if there is one.
pub fn show(conn: &mut DbConnection, client_id: &str) -> Result<Option<Client>, ClientError> {
    Ok(repo::clients::find(conn, client_id)?)
}

/// Registers a client; a confidential client's secret is returned this once.
pub fn add(
    conn: &mut DbConnection,
    actor: &Actor,
    spec: &ClientSpec,
    now: i64,
) -> Result<(Client, Option<String>), ClientError> {
    conn.transaction(|conn| {
        let (client, secret) = clients::create(conn, spec)?;
        let detail = json!({
            "by": actor.by(),
            "require_mfa": client.require_mfa,
            "signing_alg": client.signing_alg.as_str(),
        });
        record(conn, Event::ClientCreated, &client.id, detail, now)?;
        Ok((client, secret))
    })
}

/// Changes a client's registration in place (`ClientPatch` says what may change); `None` if
/// there is no such client. Audited with the names of the fields that changed.
pub fn update(
    conn: &mut DbConnection,
    actor: &Actor,
    client_id: &str,
    patch: &ClientPatch,
    now: i64,
) -> Result<Option<Client>, ClientError> {
    conn.transaction(|conn| {
        let Some(updated) = clients::update(conn, client_id, patch, now)? else {
            return Ok(None);
        };
        let detail = json!({
            "by": actor.by(),
            "changed": updated.changed,
            "require_mfa": updated.client.require_mfa,
        });
        record(conn, Event::ClientUpdated, client_id, detail, now)?;
        Ok(Some(updated.client))
    })
}

/// Deletes a client with its refresh tokens and codes; `false` if there was none.
pub fn delete(
    conn: &mut DbConnection,
    actor: &Actor,
    client_id: &str,
    now: i64,
) -> Result<bool, ClientError> {
    conn.transaction(|conn| {
        let deleted = clients::delete(conn, client_id)?;
        if deleted {
            let detail = json!({ "by": actor.by() });
            record(conn, Event::ClientDeleted, client_id, detail, now)?;
        }
        Ok(deleted)
    })
}

fn record(
    conn: &mut DbConnection,
    event: Event,
    client_id: &str,
    detail: serde_json::Value,
    now: i64,
) -> Result<(), ClientError> {
    audit::record(
        conn,
        event,
        Record {
            client_id: Some(client_id),
            detail: Some(detail),
            ..Record::default()
        },
        now,
    )?;
    Ok(())
}
