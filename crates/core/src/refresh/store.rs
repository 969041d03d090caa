use diesel::prelude::*;

use crate::db::models::{ClientRow, RefreshFamily, RefreshToken, UserRow};
use crate::db::schema::{clients, refresh_token_families, refresh_tokens, users};
use crate::db::{DbConnection, dialect};
use crate::domain::{Client, User};

/// Marks the live (unrevoked) families `filter` picks as revoked at `now` for `reason`: the one
/// way every "end these sessions" below writes it.
macro_rules! revoke_live {
    ($conn:expr, $filter:expr, $now:expr, $reason:expr) => {
        diesel::update(
            refresh_token_families::table
                .filter($filter)
                .filter(refresh_token_families::revoked_at.is_null()),
        )
        .set((
            refresh_token_families::revoked_at.eq($now),
            refresh_token_families::revoked_reason.eq($reason),
        ))
        .execute($conn)
    };
}

pub fn insert_family(conn: &mut DbConnection, family: &RefreshFamily) -> QueryResult<()> {
    diesel::insert_into(refresh_token_families::table)
        .values(family)
        .execute(conn)
        .map(drop)
}

pub fn insert_token(conn: &mut DbConnection, token: &RefreshToken) -> QueryResult<()> {
    crate::db::dialect::native!(conn, |c| diesel::insert_into(refresh_tokens::table)
        .values(token)
        .execute(c))
    .map(drop)
}

pub fn find_token(conn: &mut DbConnection, token_hash: &str) -> QueryResult<Option<RefreshToken>> {
    refresh_tokens::table
        .find(token_hash)
        .select(RefreshToken::as_select())
        .get_result(conn)
        .optional()
}

/// Marks an unused token used (at `now_ms`, epoch milliseconds) and replaced by `successor`;
/// 1 if this call consumed it, 0 if it was used (or unknown) already. Always the first
/// statement of a rotation: it takes the write lock at once, so concurrent rotations of one
/// token queue here instead of racing (SQLite's WAL would refuse a transaction that read first
/// and wrote later).
pub fn consume(
    conn: &mut DbConnection,
    token_hash: &str,
    successor: &str,
    now_ms: i64,
) -> QueryResult<usize> {
    crate::db::dialect::native!(conn, |c| diesel::update(
        refresh_tokens::table
            .find(token_hash)
            .filter(refresh_tokens::used_at.is_null()),
    )
    .set((
        refresh_tokens::used_at.eq(now_ms.div_euclid(1000)),
        refresh_tokens::used_at_ms.eq(now_ms),
        refresh_tokens::replaced_by.eq(successor),
    ))
    .execute(c))
}

/// Retires an unused token without a successor (the one a grace-window re-presentation
/// replaces): presenting it later is reuse. 1 if this call retired it, 0 if it was used already.
pub fn retire_unused(conn: &mut DbConnection, token_hash: &str, now_ms: i64) -> QueryResult<usize> {
    diesel::update(
        refresh_tokens::table
            .find(token_hash)
            .filter(refresh_tokens::used_at.is_null()),
    )
    .set((
        refresh_tokens::used_at.eq(now_ms.div_euclid(1000)),
        refresh_tokens::used_at_ms.eq(now_ms),
        refresh_tokens::replaced_by.eq(None::<String>),
    ))
    .execute(conn)
}

/// Consumes the unused token `child` names as its parent and inserts `child`, atomically:
/// false, with nothing written, if the token was used already (or is unknown). Concurrent
/// calls for one token queue on its row (SQLite: on the write lock) and exactly one wins.
/// Where the backend has it, this is one statement (see `dialect::rotate_in_one_statement`);
/// otherwise the same two steps run in a transaction.
pub fn rotate(conn: &mut DbConnection, child: &RefreshToken, now_ms: i64) -> QueryResult<bool> {
    let Some(parent_hash) = child.parent_hash.as_deref() else {
        return Err(diesel::result::Error::QueryBuilderError(
            "a rotation's new token names the token it replaces".into(),
        ));
    };
    if let Some(rotated) = dialect::rotate_in_one_statement(conn, child, parent_hash, now_ms)? {
        return Ok(rotated);
    }
    conn.transaction(|conn| {
        if consume(conn, parent_hash, &child.token_hash, now_ms)? == 0 {
            return Ok(false);
        }
        insert_token(conn, child)?;
        Ok(true)
    })
}

/// A refresh token with its family, the family's user and its client, in one query.
pub fn find_session(
    conn: &mut DbConnection,
    token_hash: &str,
) -> QueryResult<Option<(RefreshToken, RefreshFamily, User, Client)>> {
    crate::db::dialect::native!(conn, |c| refresh_tokens::table
        .inner_join(
            refresh_token_families::table
                .inner_join(users::table)
                .inner_join(clients::table),
        )
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((
            RefreshToken::as_select(),
            RefreshFamily::as_select(),
            UserRow::as_select(),
            ClientRow::as_select(),
        ))
        .get_result::<(RefreshToken, RefreshFamily, UserRow, ClientRow)>(c)
        .optional())
    .map(|found| {
        found.map(|(token, family, user, client)| (token, family, user.into(), client.into()))
    })
}

pub fn revoke_family(
    conn: &mut DbConnection,
    family_id: &str,
    now: i64,
    reason: &str,
) -> QueryResult<usize> {
    revoke_live!(conn, refresh_token_families::id.eq(family_id), now, reason)
}

pub fn revoke_families_of_user(
    conn: &mut DbConnection,
    user_id: &str,
    now: i64,
    reason: &str,
) -> QueryResult<usize> {
    revoke_live!(
        conn,
        refresh_token_families::user_id.eq(user_id),
        now,
        reason
    )
}

/// Ends a user's live families at one client (their consent to it was withdrawn).
pub fn revoke_families_of_user_at_client(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
    now: i64,
    reason: &str,
) -> QueryResult<usize> {
    revoke_live!(
        conn,
        refresh_token_families::user_id
            .eq(user_id)
            .and(refresh_token_families::client_id.eq(client_id)),
        now,
        reason
    )
}

/// Deletes up to `batch` families revoked or past their absolute expiry before `cutoff`, or
/// whose every token went idle before it (their tokens go with them).
pub fn purge_families(conn: &mut DbConnection, cutoff: i64, batch: i64) -> QueryResult<usize> {
    use diesel::dsl::{exists, not};
    let live_token = refresh_tokens::table
        .filter(refresh_tokens::family_id.eq(refresh_token_families::id))
        .filter(refresh_tokens::idle_expires_at.ge(cutoff));
    let doomed = refresh_token_families::table
        .filter(
            refresh_token_families::revoked_at
                .lt(cutoff)
                .or(refresh_token_families::absolute_expires_at.lt(cutoff))
                .or(not(exists(live_token))),
        )
        .select(refresh_token_families::id)
        .limit(batch);
    let ids: Vec<String> = doomed.load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(refresh_token_families::table.filter(refresh_token_families::id.eq_any(&ids)))
        .execute(conn)
}

/// Deletes up to `batch` used tokens of live families that went idle before `cutoff`: too old
/// to be presented again within any grace window, and past their own expiry.
pub fn purge_used_tokens(conn: &mut DbConnection, cutoff: i64, batch: i64) -> QueryResult<usize> {
    let hashes: Vec<String> = refresh_tokens::table
        .filter(refresh_tokens::used_at.is_not_null())
        .filter(refresh_tokens::idle_expires_at.lt(cutoff))
        .select(refresh_tokens::token_hash)
        .limit(batch)
        .load(conn)?;
    if hashes.is_empty() {
        return Ok(0);
    }
    diesel::delete(refresh_tokens::table.filter(refresh_tokens::token_hash.eq_any(&hashes)))
        .execute(conn)
}

/// (families, tokens) in the tables: for tests and operators.
pub fn counts(conn: &mut DbConnection) -> QueryResult<(i64, i64)> {
    let families = refresh_token_families::table.count().get_result(conn)?;
    let tokens = refresh_tokens::table.count().get_result(conn)?;
    Ok((families, tokens))
}

/// Revokes every live family of the user but `keep` (the session asking), which is moved to
/// the user's new security stamp so it survives the change.
pub fn revoke_families_of_user_except(
    conn: &mut DbConnection,
    user_id: &str,
    keep: &str,
    new_stamp: &str,
    now: i64,
    reason: &str,
) -> QueryResult<usize> {
    diesel::update(
        refresh_token_families::table
            .find(keep)
            .filter(refresh_token_families::user_id.eq(user_id))
            .filter(refresh_token_families::revoked_at.is_null()),
    )
    .set(refresh_token_families::security_stamp.eq(new_stamp))
    .execute(conn)?;
    revoke_live!(
        conn,
        refresh_token_families::user_id
            .eq(user_id)
            .and(refresh_token_families::id.ne(keep)),
        now,
        reason
    )
}

/// Revokes the user's live families at the client beyond the `keep` newest; how many.
pub fn revoke_oldest_live(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
    keep: i64,
    now: i64,
    reason: &str,
) -> QueryResult<usize> {
    let live = || {
        refresh_token_families::table
            .filter(refresh_token_families::user_id.eq(user_id))
            .filter(refresh_token_families::client_id.eq(client_id))
            .filter(refresh_token_families::revoked_at.is_null())
            .filter(refresh_token_families::absolute_expires_at.gt(now))
    };
    // No cap at all (the benchmark's seed): nothing to look at, and looking would sort every
    // family of the user for each one added.
    if keep == i64::MAX {
        return Ok(0);
    }
    // Beyond the cap there is usually one (this login's predecessor); a lowered cap is caught
    // up a bounded batch per login.
    let beyond: Vec<String> = live()
        .order((
            refresh_token_families::created_at.desc(),
            refresh_token_families::id.desc(),
        ))
        .select(refresh_token_families::id)
        .limit(1000)
        .offset(keep)
        .load(conn)?;
    if beyond.is_empty() {
        return Ok(0);
    }
    diesel::update(live().filter(refresh_token_families::id.eq_any(&beyond)))
        .set((
            refresh_token_families::revoked_at.eq(now),
            refresh_token_families::revoked_reason.eq(reason),
        ))
        .execute(conn)
}

/// Ends the live families a browser session started (those granted `offline_access` name no
/// session and live on).
pub fn revoke_families_of_session(
    conn: &mut DbConnection,
    session_id: &str,
    now: i64,
    reason: &str,
) -> QueryResult<usize> {
    revoke_live!(
        conn,
        refresh_token_families::session_id.eq(session_id),
        now,
        reason
    )
}

/// A user's live families (unrevoked, before their absolute expiry), newest first, each with
/// its client's name: the person's session list.
pub fn live_families_of_user(
    conn: &mut DbConnection,
    user_id: &str,
    now: i64,
) -> QueryResult<Vec<(RefreshFamily, String)>> {
    refresh_token_families::table
        .inner_join(clients::table)
        .filter(refresh_token_families::user_id.eq(user_id))
        .filter(refresh_token_families::revoked_at.is_null())
        .filter(refresh_token_families::absolute_expires_at.gt(now))
        .order((
            refresh_token_families::created_at.desc(),
            refresh_token_families::id.desc(),
        ))
        .select((RefreshFamily::as_select(), clients::name))
        .load(conn)
}

/// A family's id, when its newest token was issued, and when its newest idle expiry falls.
pub type LastUse = (String, Option<i64>, Option<i64>);

/// For each of `family_ids`: when its newest token was issued (the family's last use: a
/// rotation) and when its newest idle expiry falls.
pub fn last_use_of_families(
    conn: &mut DbConnection,
    family_ids: &[String],
) -> QueryResult<Vec<LastUse>> {
    use diesel::dsl::max;
    if family_ids.is_empty() {
        return Ok(Vec::new());
    }
    refresh_tokens::table
        .filter(refresh_tokens::family_id.eq_any(family_ids))
        .group_by(refresh_tokens::family_id)
        .select((
            refresh_tokens::family_id,
            max(refresh_tokens::issued_at),
            max(refresh_tokens::idle_expires_at),
        ))
        .load(conn)
}

/// The family with this id, if it is live (unrevoked).
pub fn find_live_family(
    conn: &mut DbConnection,
    family_id: &str,
) -> QueryResult<Option<RefreshFamily>> {
    refresh_token_families::table
        .find(family_id)
        .filter(refresh_token_families::revoked_at.is_null())
        .select(RefreshFamily::as_select())
        .get_result(conn)
        .optional()
}
