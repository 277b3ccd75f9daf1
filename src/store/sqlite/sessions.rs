//! Sessions in SQLite: one row per live session, keyed by its user. Writes run one at a time on the writer
//! connection, so each function's statements see no other write between them.

use std::time::Duration;

use rusqlite::params;

use super::{DbError, Sqlite};
use crate::domain::{PasswordHash, PresentedRefresh, Principal, RefreshHash, Rotation};
use crate::store::StoreError;

/// Expired sessions removed by each login, at most.
const PRUNED_PER_LOGIN: i64 = 16;

/// Starts a session if the user's password is still `verified`, removing up to [`PRUNED_PER_LOGIN`] expired
/// sessions (of anyone: a user who never logs in again leaves them behind), in one transaction. Writes run one at
/// a time, so a password change either came first (and nothing starts) or comes after (and ends this one).
pub(in crate::store) async fn start(
    db: &Sqlite,
    session: Principal,
    verified: &PasswordHash,
    refresh: RefreshHash,
    ttl: Duration,
) -> Result<(), StoreError> {
    let seconds = ttl_seconds(ttl);
    let verified = verified.clone();
    db.write(move |conn| {
        let tx = conn.transaction()?;
        tx.prepare_cached(
            "DELETE FROM sessions WHERE (user_id, id) IN (SELECT user_id, id FROM sessions \
             WHERE expires_at <= unixepoch() ORDER BY expires_at LIMIT ?1)",
        )?
        .execute([PRUNED_PER_LOGIN])?;
        let started = tx
            .prepare_cached(
                "INSERT INTO sessions (user_id, id, generation, refresh_hash, expires_at) \
                 SELECT id, ?2, 0, ?3, unixepoch() + ?4 FROM users WHERE id = ?1 AND password_hash = ?5",
            )?
            .execute(params![
                session.user.0,
                session.session.0,
                &refresh.0[..],
                seconds,
                verified.as_str()
            ])?;
        if started != 1 {
            return Err(DbError::NoSuchUser);
        }
        tx.commit()?;
        Ok(())
    })
    .await
    .map_err(Into::into)
}

/// Rotates the session's refresh token when `presented` is its current one; otherwise, if `presented` is
/// authentic and the session has moved past its generation, it was spent before: the session ends.
pub(in crate::store) async fn refresh(
    db: &Sqlite,
    presented: PresentedRefresh,
    next: RefreshHash,
    ttl: Duration,
) -> Result<Rotation, StoreError> {
    let seconds = ttl_seconds(ttl);
    let (user, session) = (presented.session.user.0, presented.session.session.0);
    db.write(move |conn| {
        let rotated = conn
            .prepare_cached(
                "UPDATE sessions SET generation = generation + 1, refresh_hash = ?5, \
                 expires_at = unixepoch() + ?6 \
                 WHERE user_id = ?1 AND id = ?2 AND generation = ?3 AND refresh_hash = ?4 \
                 AND expires_at > unixepoch()",
            )?
            .execute(params![
                user,
                session,
                presented.generation,
                &presented.hash.0[..],
                &next.0[..],
                seconds
            ])?;
        if rotated == 1 {
            return Ok(Rotation::Rotated);
        }
        if !presented.authentic {
            return Ok(Rotation::Refused);
        }
        let ended = conn
            .prepare_cached(
                "DELETE FROM sessions WHERE user_id = ?1 AND id = ?2 AND generation > ?3",
            )?
            .execute(params![user, session, presented.generation])?;
        Ok(if ended == 1 {
            Rotation::Replayed
        } else {
            Rotation::Refused
        })
    })
    .await
    .map_err(Into::into)
}

/// Ends the session, or all of the user's, if the session is live.
pub(in crate::store) async fn end(
    db: &Sqlite,
    principal: Principal,
    everywhere: bool,
) -> Result<(), StoreError> {
    db.write(move |conn| {
        let tx = conn.transaction()?;
        super::users::require_session(&tx, principal)?;
        tx.prepare_cached("DELETE FROM sessions WHERE user_id = ?1 AND (id = ?2 OR ?3)")?
            .execute(params![principal.user.0, principal.session.0, everywhere])?;
        tx.commit()?;
        Ok(())
    })
    .await
    .map_err(Into::into)
}

fn ttl_seconds(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)
}
