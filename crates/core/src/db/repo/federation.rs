use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::models::{FederatedIdentity, FederationState, PendingLink};
use crate::db::schema::{federated_identities, federation_states, pending_links};

pub fn insert_state(conn: &mut DbConnection, state: &FederationState) -> QueryResult<()> {
    diesel::insert_into(federation_states::table)
        .values(state)
        .execute(conn)
        .map(drop)
}

/// Marks a pending sign-in used and returns it, if it was unused and unexpired: a state works
/// once, however many callbacks race with it.
pub fn consume_state(
    conn: &mut DbConnection,
    state_hash: &str,
    now: i64,
) -> QueryResult<Option<FederationState>> {
    let consumed = diesel::update(
        federation_states::table
            .find(state_hash)
            .filter(federation_states::used_at.is_null())
            .filter(federation_states::expires_at.gt(now)),
    )
    .set(federation_states::used_at.eq(now))
    .execute(conn)?;
    if consumed == 0 {
        return Ok(None);
    }
    federation_states::table
        .find(state_hash)
        .select(FederationState::as_select())
        .get_result(conn)
        .optional()
}

/// Deletes up to `batch` pending sign-ins that expired before `cutoff`.
pub fn purge_states(conn: &mut DbConnection, cutoff: i64, batch: i64) -> QueryResult<usize> {
    let hashes: Vec<String> = federation_states::table
        .filter(federation_states::expires_at.lt(cutoff))
        .select(federation_states::state_hash)
        .limit(batch)
        .load(conn)?;
    if hashes.is_empty() {
        return Ok(0);
    }
    diesel::delete(federation_states::table.filter(federation_states::state_hash.eq_any(&hashes)))
        .execute(conn)
}

pub fn find_identity(
    conn: &mut DbConnection,
    provider: &str,
    subject: &str,
) -> QueryResult<Option<FederatedIdentity>> {
    federated_identities::table
        .filter(federated_identities::provider.eq(provider))
        .filter(federated_identities::subject.eq(subject))
        .select(FederatedIdentity::as_select())
        .get_result(conn)
        .optional()
}

pub fn insert_identity(conn: &mut DbConnection, identity: &FederatedIdentity) -> QueryResult<()> {
    diesel::insert_into(federated_identities::table)
        .values(identity)
        .execute(conn)
        .map(drop)
}

pub fn touch_identity(
    conn: &mut DbConnection,
    id: &str,
    email: Option<&str>,
    now: i64,
) -> QueryResult<()> {
    diesel::update(federated_identities::table.find(id))
        .set((
            federated_identities::email.eq(email),
            federated_identities::last_login_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

pub fn identities_of(
    conn: &mut DbConnection,
    user_id: &str,
) -> QueryResult<Vec<FederatedIdentity>> {
    federated_identities::table
        .filter(federated_identities::user_id.eq(user_id))
        .order(federated_identities::created_at.asc())
        .select(FederatedIdentity::as_select())
        .load(conn)
}

pub fn insert_pending_link(conn: &mut DbConnection, link: &PendingLink) -> QueryResult<()> {
    diesel::insert_into(pending_links::table)
        .values(link)
        .execute(conn)
        .map(drop)
}

/// A pending link that is unused and unexpired.
pub fn find_pending_link(
    conn: &mut DbConnection,
    secret_hash: &str,
    now: i64,
) -> QueryResult<Option<PendingLink>> {
    pending_links::table
        .find(secret_hash)
        .filter(pending_links::used_at.is_null())
        .filter(pending_links::expires_at.gt(now))
        .select(PendingLink::as_select())
        .get_result(conn)
        .optional()
}

/// Marks a pending link used; 1 if it was live, 0 if another request used it first.
pub fn consume_pending_link(
    conn: &mut DbConnection,
    secret_hash: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(
        pending_links::table
            .find(secret_hash)
            .filter(pending_links::used_at.is_null())
            .filter(pending_links::expires_at.gt(now)),
    )
    .set(pending_links::used_at.eq(now))
    .execute(conn)
}

/// Deletes up to `batch` pending links that expired before `cutoff`.
pub fn purge_pending_links(conn: &mut DbConnection, cutoff: i64, batch: i64) -> QueryResult<usize> {
    let hashes: Vec<String> = pending_links::table
        .filter(pending_links::expires_at.lt(cutoff))
        .select(pending_links::secret_hash)
        .limit(batch)
        .load(conn)?;
    if hashes.is_empty() {
        return Ok(0);
    }
    diesel::delete(pending_links::table.filter(pending_links::secret_hash.eq_any(&hashes)))
        .execute(conn)
}
