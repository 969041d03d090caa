use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::models::{Client, NewClient};
use crate::db::schema::clients;

pub fn insert(conn: &mut DbConnection, client: &NewClient<'_>) -> QueryResult<()> {
    diesel::insert_into(clients::table)
        .values(client)
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Client>> {
    clients::table
        .find(id)
        .select(Client::as_select())
        .get_result(conn)
        .optional()
}

pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<Client>> {
    clients::table
        .order(clients::created_at.asc())
        .then_order_by(clients::id.asc())
        .select(Client::as_select())
        .load(conn)
}

pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(clients::table.find(id)).execute(conn)
}
