//! OpenID Connect Back-Channel Logout 1.0: when a browser session ends, every app that received
//! tokens in it and registered a `backchannel_logout_uri` is sent a logout token. The message is
//! a row of the outbox, written in the transaction that ended the session; the token itself is
//! signed only when it is sent, so the database never holds one.

use crate::db::repo::{self, outbox::OutboxRow};
use crate::db::{DbConnection, DbError};

/// The outbox kind of a back-channel logout: its recipient is the client id, its detail a
/// `Detail`. The row names no user (`user_id` stays empty), so deleting the account, which
/// deletes that account's mail, does not take the message with it.
pub const KIND: &str = "backchannel_logout";

/// What a logout token will say.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Detail {
    pub sub: String,
    pub sid: String,
}

/// Queues a logout token for `client_id` if it listens for one.
pub fn enqueue(
    conn: &mut DbConnection,
    client_id: &str,
    user_id: &str,
    session_id: &str,
    now: i64,
) -> Result<(), DbError> {
    let Some(client) = repo::clients::find(conn, client_id)? else {
        return Ok(());
    };
    if client.backchannel_logout.is_none() {
        return Ok(());
    }
    let mut row = OutboxRow::new(KIND, client_id, None, now);
    let detail = Detail {
        sub: user_id.to_string(),
        sid: session_id.to_string(),
    };
    row.detail = Some(serde_json::to_string(&detail).map_err(|e| DbError::Task(e.to_string()))?);
    repo::outbox::insert(conn, &row)?;
    Ok(())
}
