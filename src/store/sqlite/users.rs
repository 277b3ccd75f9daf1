//! Users in the store.

use rusqlite::{Connection, OptionalExtension, params};

use super::{DbError, Sqlite, returning};
use crate::domain::{Credentials, PasswordHash, Principal, Timestamp, User, UserId, Username};
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

/// The user `principal` speaks for, in a live session.
pub(in crate::store) async fn get(db: &Sqlite, principal: Principal) -> Result<User, StoreError> {
    db.read(move |conn| {
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT id, username FROM users WHERE id = ?1 AND ",
            session_live!("?1", "?2")
        ))?;
        let found = stmt
            .query_row(params![principal.user.0, principal.session.0], |row| {
                Ok(User {
                    id: UserId(row.get(0)?),
                    username: row.get(1)?,
                })
            })
            .optional()?;
        found.ok_or(DbError::NoSuchUser)
    })
    .await
    .map_err(Into::into)
}

/// Refuses a caller whose session is not live. Run by every query made on a user's behalf that cannot fold
/// the check into its own statement, in the same round trip, so a token of an ended session is refused
/// wherever it is used.
pub(super) fn require_session(conn: &Connection, principal: Principal) -> Result<(), DbError> {
    let live = conn
        .prepare_cached(concat!("SELECT 1 WHERE ", session_live!("?1", "?2")))?
        .exists(params![principal.user.0, principal.session.0])?;
    if live {
        Ok(())
    } else {
        Err(DbError::NoSuchUser)
    }
}

/// Refuses a caller whose session is not live: for a request refused on its input, whose credentials come
/// first.
pub(in crate::store) async fn require(db: &Sqlite, principal: Principal) -> Result<(), StoreError> {
    db.read(move |conn| require_session(conn, principal))
        .await
        .map_err(Into::into)
}

/// The username and password hash of `principal`'s user, in a live session.
pub(in crate::store) async fn credentials(
    db: &Sqlite,
    principal: Principal,
) -> Result<(String, PasswordHash), StoreError> {
    db.read(move |conn| {
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT username, password_hash FROM users WHERE id = ?1 AND ",
            session_live!("?1", "?2")
        ))?;
        let found = stmt
            .query_row(params![principal.user.0, principal.session.0], |row| {
                Ok((row.get(0)?, PasswordHash::from_phc(row.get(1)?)))
            })
            .optional()?;
        found.ok_or(DbError::NoSuchUser)
    })
    .await
    .map_err(Into::into)
}

/// Sets the password and ends every other session of the user, in one transaction, if this session is live.
pub(in crate::store) async fn set_password(
    db: &Sqlite,
    principal: Principal,
    password_hash: PasswordHash,
) -> Result<(), StoreError> {
    db.write(move |conn| {
        let tx = conn.transaction()?;
        let changed = tx
            .prepare_cached(concat!(
                "UPDATE users SET password_hash = ?3 WHERE id = ?1 AND ",
                session_live!("?1", "?2")
            ))?
            .execute(params![
                principal.user.0,
                principal.session.0,
                password_hash.as_str()
            ])?;
        if changed != 1 {
            return Err(DbError::NoSuchUser);
        }
        tx.prepare_cached("DELETE FROM sessions WHERE user_id = ?1 AND id <> ?2")?
            .execute(params![principal.user.0, principal.session.0])?;
        tx.commit()?;
        Ok(())
    })
    .await
    .map_err(Into::into)
}

/// Removes the user, if this session is live; their tasks, counts and sessions go with them (ON DELETE
/// CASCADE, with foreign keys on for every connection).
pub(in crate::store) async fn delete(db: &Sqlite, principal: Principal) -> Result<(), StoreError> {
    db.write(move |conn| {
        let removed = conn
            .prepare_cached(concat!(
                "DELETE FROM users WHERE id = ?1 AND ",
                session_live!("?1", "?2")
            ))?
            .execute(params![principal.user.0, principal.session.0])?;
        if removed == 1 {
            Ok(())
        } else {
            Err(DbError::NoSuchUser)
        }
    })
    .await
    .map_err(Into::into)
}
