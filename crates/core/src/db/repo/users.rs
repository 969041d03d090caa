use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::models::{NewUser, UserRow};
use crate::db::schema::{federated_identities, self_registrations, users};
use crate::domain::User;

pub fn insert(conn: &mut DbConnection, user: &NewUser<'_>) -> QueryResult<()> {
    diesel::insert_into(users::table)
        .values(user)
        .execute(conn)
        .map(drop)
}

pub fn find_by_id(conn: &mut DbConnection, id: &str) -> QueryResult<Option<User>> {
    crate::db::dialect::native!(conn, |c| users::table
        .find(id)
        .select(UserRow::as_select())
        .get_result(c)
        .optional())
    .map(|row| row.map(User::from))
}

pub fn find_by_email(conn: &mut DbConnection, email_lower: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email_lower.eq(email_lower))
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()
        .map(|row| row.map(User::from))
}

/// Every user, oldest first: for tests and small tools (the API and the CLI page through
/// `list_after`).
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<User>> {
    list_after(conn, None, i64::MAX)
}

/// Up to `limit` users in creation order (then id), after the (created_at, id) given.
pub fn list_after(
    conn: &mut DbConnection,
    after: Option<(i64, &str)>,
    limit: i64,
) -> QueryResult<Vec<User>> {
    let mut query = users::table
        .order(users::created_at.asc())
        .then_order_by(users::id.asc())
        .select(UserRow::as_select())
        .limit(limit)
        .into_boxed();
    if let Some((created_at, id)) = after {
        query = query.filter(
            users::created_at
                .gt(created_at)
                .or(users::created_at.eq(created_at).and(users::id.gt(id))),
        );
    }
    query
        .load::<UserRow>(conn)
        .map(|rows| rows.into_iter().map(User::from).collect())
}

pub fn set_password_hash(
    conn: &mut DbConnection,
    id: &str,
    hash: &str,
    now: i64,
) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set((users::password_hash.eq(hash), users::updated_at.eq(now)))
        .execute(conn)
        .map(drop)
}

/// Disables (with `Some(time)`) or enables (`None`) an account, with a new security stamp.
pub fn set_disabled(
    conn: &mut DbConnection,
    id: &str,
    disabled_at: Option<i64>,
    stamp: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::disabled_at.eq(disabled_at),
            users::security_stamp.eq(stamp),
            users::updated_at.eq(now),
        ))
        .execute(conn)
}

pub fn set_roles(conn: &mut DbConnection, id: &str, roles: &str, now: i64) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::roles.eq(roles), users::updated_at.eq(now)))
        .execute(conn)
}

/// Marks the email verified, keeping the first time it was; 1 if it was not verified before.
pub fn mark_email_verified(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<usize> {
    diesel::update(
        users::table
            .find(id)
            .filter(users::email_verified_at.is_null()),
    )
    .set((users::email_verified_at.eq(now), users::updated_at.eq(now)))
    .execute(conn)
}

/// A new security stamp alone: sessions and tokens issued before end.
pub fn set_security_stamp(
    conn: &mut DbConnection,
    id: &str,
    stamp: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::security_stamp.eq(stamp), users::updated_at.eq(now)))
        .execute(conn)
}

/// A new password hash with a new security stamp: sessions started before end.
pub fn set_password(
    conn: &mut DbConnection,
    id: &str,
    hash: &str,
    stamp: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(hash),
            users::security_stamp.eq(stamp),
            users::updated_at.eq(now),
        ))
        .execute(conn)
}

pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(users::table.find(id)).execute(conn)
}

/// Takes an account's address away: its sign-in key becomes `key` (never an address), its
/// password goes (so the key, which names the account's id, cannot be typed as a username with
/// the old password) and its security stamp changes, so it signs in no more and its sessions
/// end. The address stays on show in `email` for the operator; tokens release an address only
/// to the account whose sign-in key it is.
pub fn release_address(
    conn: &mut DbConnection,
    id: &str,
    key: &str,
    stamp: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::email_lower.eq(key),
            users::password_hash.eq(None::<String>),
            users::security_stamp.eq(stamp),
            users::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Up to `batch` accounts made before `cutoff` by self-registration that never verified their
/// address, hold no role and have no upstream identity (those sign in without an address of
/// their own). Accounts an operator made are never among them.
pub fn unverified_before(
    conn: &mut DbConnection,
    cutoff: i64,
    batch: i64,
) -> QueryResult<Vec<String>> {
    users::table
        .filter(users::email_verified_at.is_null())
        .filter(users::created_at.lt(cutoff))
        .filter(users::roles.eq(""))
        .filter(diesel::dsl::exists(
            self_registrations::table.filter(self_registrations::user_id.eq(users::id)),
        ))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            federated_identities::table.filter(federated_identities::user_id.eq(users::id)),
        )))
        .order(users::created_at.asc())
        .select(users::id)
        .limit(batch)
        .load(conn)
}

/// Records that the person made this account themselves (see `unverified_before`).
pub fn mark_self_registered(
    conn: &mut DbConnection,
    user_id: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::insert_into(self_registrations::table)
        .values((
            self_registrations::user_id.eq(user_id),
            self_registrations::created_at.eq(now),
        ))
        .execute(conn)
}
