//! Sessions in PostgreSQL: one row per live session, keyed by its user.

use std::time::Duration;

use super::{Postgres, Retry};
use crate::domain::{PasswordHash, PresentedRefresh, Principal, RefreshHash, Rotation};
use crate::store::StoreError;

/// Expired sessions removed by each login, at most.
const PRUNED_PER_LOGIN: i64 = 16;

/// Starts a session, in one statement that also removes up to [`PRUNED_PER_LOGIN`] expired sessions (of anyone:
/// a user who never logs in again leaves them behind). The pruning skips rows another login has locked, so
/// logins never wait for each other here.
///
/// The user's row is read with `FOR SHARE` and must still hold `verified`: a password change locks that row
/// before it ends the other sessions ([`super::users::set_password`]), so either it sees this session and ends
/// it, or this login sees the new password and starts nothing.
pub(in crate::store) async fn start(
    db: &Postgres,
    session: Principal,
    verified: &PasswordHash,
    refresh: RefreshHash,
    ttl: Duration,
) -> Result<(), StoreError> {
    let seconds = ttl_seconds(ttl);
    db.run(Retry::Write, || async move {
        let (client, stmt) = db
            .prepared(
                "WITH verified AS (SELECT id FROM users WHERE id = $1 AND password_hash = $6 FOR SHARE), \
                 pruned AS (DELETE FROM sessions WHERE (user_id, id) IN (SELECT user_id, id FROM sessions \
                 WHERE expires_at <= now() ORDER BY expires_at LIMIT $5 FOR UPDATE SKIP LOCKED)) \
                 INSERT INTO sessions (user_id, id, generation, refresh_hash, expires_at) \
                 SELECT id, $2, 0, $3, now() + $4 * interval '1 second' FROM verified",
            )
            .await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &session.user.0,
            &session.session.0,
            &&refresh.0[..],
            &seconds,
            &PRUNED_PER_LOGIN,
            &verified.as_str(),
        ];
        if client.execute(&stmt, &params).await? == 1 {
            Ok(())
        } else {
            Err(StoreError::NoSuchUser.into())
        }
    })
    .await
}

/// Rotates the session's refresh token when `presented` is its current one (one statement, so of concurrent
/// refreshes with one token exactly one matches); otherwise, if `presented` is authentic and the session has
/// moved past its generation, it was spent before: the session ends.
pub(in crate::store) async fn refresh(
    db: &Postgres,
    presented: PresentedRefresh,
    next: RefreshHash,
    ttl: Duration,
) -> Result<Rotation, StoreError> {
    let seconds = ttl_seconds(ttl);
    let (user, session) = (presented.session.user.0, presented.session.session.0);
    let rotated = db
        .run(Retry::Write, || async move {
            let (client, stmt) = db
                .prepared(
                    "UPDATE sessions SET generation = generation + 1, refresh_hash = $5, \
                     expires_at = now() + $6 * interval '1 second' \
                     WHERE user_id = $1 AND id = $2 AND generation = $3 AND refresh_hash = $4 \
                     AND expires_at > now()",
                )
                .await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
                &user,
                &session,
                &presented.generation,
                &&presented.hash.0[..],
                &&next.0[..],
                &seconds,
            ];
            Ok(client.execute(&stmt, &params).await? == 1)
        })
        .await?;
    if rotated {
        return Ok(Rotation::Rotated);
    }
    if !presented.authentic {
        return Ok(Rotation::Refused);
    }
    let ended = db
        .run(Retry::Write, || async move {
            let (client, stmt) = db
                .prepared("DELETE FROM sessions WHERE user_id = $1 AND id = $2 AND generation > $3")
                .await?;
            Ok(client
                .execute(&stmt, &[&user, &session, &presented.generation])
                .await?
                == 1)
        })
        .await?;
    Ok(if ended {
        Rotation::Replayed
    } else {
        Rotation::Refused
    })
}

/// Ends the session, or all of the user's, if the session is live. The user's row is locked first, as every call
/// that ends several sessions does (see [`super::users::set_password`]), so they take turns instead of
/// deadlocking.
pub(in crate::store) async fn end(
    db: &Postgres,
    principal: Principal,
    everywhere: bool,
) -> Result<(), StoreError> {
    db.run(Retry::Write, || async move {
        let (client, stmt) = db
            .prepared(
                "WITH me AS (SELECT 1 FROM sessions WHERE user_id = $1 AND id = $2 AND expires_at > now()), \
                 owner AS (SELECT 1 FROM users WHERE id = $1 AND EXISTS (SELECT 1 FROM me) FOR NO KEY UPDATE), \
                 ended AS (DELETE FROM sessions WHERE user_id = $1 AND (id = $2 OR $3) \
                 AND EXISTS (SELECT 1 FROM owner) RETURNING 1) SELECT count(*) FROM me",
            )
            .await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&principal.user.0, &principal.session.0, &everywhere];
        let live: i64 = client.query_one(&stmt, &params).await?.get(0);
        if live == 1 {
            Ok(())
        } else {
            Err(StoreError::NoSuchUser.into())
        }
    })
    .await
}

fn ttl_seconds(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}
