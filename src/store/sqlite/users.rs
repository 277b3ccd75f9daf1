//! Users in the store.

use rusqlite::{Connection, OptionalExtension, params};

use super::{DbError, Sqlite, returning};
use crate::domain::{Credentials, PasswordHash, Timestamp, User, UserId, Username};
use crate::store::StoreError;

/// Creates a user. A username already taken (ignoring case) is [`DbError::Conflict`]: the UNIQUE constraint
/// decides, so of two concurrent signups for one name exactly one wins.
pub(in crate::store) async fn insert(
    db: &Sqlite,
    username: Username,
    password_hash: PasswordHash,
) -> Result<User, StoreError> {
    db.write(move |conn| {
        let mut stmt = conn.prepare_cached(
            "INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3) RETURNING id, username",
        )?;
        let now = Timestamp::now();
        let params = params![username.as_str(), password_hash.as_str(), now.as_str()];
        let user = returning(&mut stmt, params, |row| Ok(User { id: UserId(row.get(0)?), username: row.get(1)? }))?;
        user.ok_or_else(|| DbError::Internal("INSERT ... RETURNING returned no row".into()))
    })
    .await
    .map_err(Into::into)
}

/// The id and password hash of the user called `username` (ignoring case), if there is one.
pub(in crate::store) async fn find_credentials(
    db: &Sqlite,
    username: &str,
) -> Result<Option<Credentials>, StoreError> {
    let username = username.to_owned();
    db.read(move |conn| {
        let mut stmt =
            conn.prepare_cached("SELECT id, password_hash FROM users WHERE username = ?1")?;
        let found = stmt
            .query_row([username], |row| {
                Ok(Credentials {
                    id: UserId(row.get(0)?),
                    password_hash: PasswordHash::from_phc(row.get(1)?),
                })
            })
            .optional()?;
        Ok(found)
    })
    .await
    .map_err(Into::into)
}

/// The user with this id, if it still exists.
pub(in crate::store) async fn get(db: &Sqlite, id: UserId) -> Result<Option<User>, StoreError> {
    db.read(move |conn| {
        let mut stmt = conn.prepare_cached("SELECT id, username FROM users WHERE id = ?1")?;
        let found = stmt
            .query_row([id.0], |row| {
                Ok(User {
                    id: UserId(row.get(0)?),
                    username: row.get(1)?,
                })
            })
            .optional()?;
        Ok(found)
    })
    .await
    .map_err(Into::into)
}

/// Refuses an owner that no longer exists. Run first by every query made on a user's behalf, in the same round
/// trip, so a token whose user is gone is refused wherever it is used.
pub(super) fn require_owner(conn: &Connection, id: UserId) -> Result<(), DbError> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM users WHERE id = ?1")?
        .exists([id.0])?;
    if exists {
        Ok(())
    } else {
        Err(DbError::NoSuchUser)
    }
}

/// Refuses the user `id` if it no longer exists: for a request refused on its input, whose credentials come
/// first.
pub(in crate::store) async fn require(db: &Sqlite, id: UserId) -> Result<(), StoreError> {
    db.read(move |conn| require_owner(conn, id))
        .await
        .map_err(Into::into)
}
