use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::models::{ClientChanges, ClientRow, NewClient};
use crate::db::schema::clients;
use crate::domain::Client;

pub fn insert(conn: &mut DbConnection, client: &NewClient<'_>) -> QueryResult<()> {
    diesel::insert_into(clients::table)
        .values(client)
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Client>> {
    crate::db::dialect::native!(conn, |c| clients::table
        .find(id)
        .select(ClientRow::as_select())
        .get_result(c)
        .optional())
    .map(|row| row.map(Client::from))
}

pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<Client>> {
    clients::table
        .order(clients::created_at.asc())
        .then_order_by(clients::id.asc())
        .select(ClientRow::as_select())
        .load::<ClientRow>(conn)
        .map(|rows| rows.into_iter().map(Client::from).collect())
}

pub fn update(
    conn: &mut DbConnection,
    id: &str,
    changes: &ClientChanges<'_>,
) -> QueryResult<usize> {
    diesel::update(clients::table.find(id))
        .set(changes)
        .execute(conn)
}

pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(clients::table.find(id)).execute(conn)
}

/// The longest access-token lifetime any client has of its own (None: all use the default).
pub fn longest_access_token_ttl(conn: &mut DbConnection) -> QueryResult<Option<i64>> {
    clients::table
        .select(diesel::dsl::max(clients::access_token_ttl_secs))
        .get_result(conn)
}
