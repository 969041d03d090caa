//! OAuth clients as the operator and administrators manage them.

use diesel::Connection;
use serde_json::json;

use super::Actor;
use crate::audit::{self, Event, Record};
use crate::clients::{self, ClientError, ClientSpec};
use crate::db::{DbConnection, repo};
use crate::domain::Client;

/// Every client (never a secret: only its hash is stored).
pub fn list(conn: &mut DbConnection) -> Result<Vec<Client>, ClientError> {
    Ok(repo::clients::list(conn)?)
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
        record(conn, Event::ClientCreated, actor, &client.id, now)?;
        Ok((client, secret))
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
            record(conn, Event::ClientDeleted, actor, client_id, now)?;
        }
        Ok(deleted)
    })
}

fn record(
    conn: &mut DbConnection,
    event: Event,
    actor: &Actor,
    client_id: &str,
    now: i64,
) -> Result<(), ClientError> {
    audit::record(
        conn,
        event,
        Record {
            client_id: Some(client_id),
            detail: Some(json!({ "by": actor.by() })),
            ..Record::default()
        },
        now,
    )?;
    Ok(())
}
