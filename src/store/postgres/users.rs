//! Users in PostgreSQL.

use chrono::{SubsecRound, Utc};

use super::{Failure, Postgres, Retry};

use crate::domain::{Credentials, PasswordHash, Principal, User, UserId, Username};
use crate::store::StoreError;

/// Creates a user; the unique index on `lower(username)` decides a race between two signups of one name.
pub(in crate::store) async fn insert(
    db: &Postgres,
    username: Username,
    password_hash: PasswordHash,
) -> Result<User, StoreError> {
    let (username, password_hash) = (&username, &password_hash);
    db.run(Retry::Write, || async move {
        let (client, stmt) = db
            .prepared(
                "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3) \
                 RETURNING id, username",
            )
            .await?;
        let now = Utc::now().trunc_subsecs(0);
        let row = client
            .query_one(&stmt, &[&username.as_str(), &password_hash.as_str(), &now])
            .await?;
        Ok(User {
            id: UserId(row.get(0)),
            username: row.get(1),
        })
    })
    .await
}

/// The id and password hash of the user called `username` (ignoring case), if there is one.
pub(in crate::store) async fn find_credentials(
    db: &Postgres,
    username: &str,
) -> Result<Option<Credentials>, StoreError> {
    // A name with a NUL cannot be stored, so no user has it; PostgreSQL would refuse the parameter itself.
    if username.contains('\0') {
        return Ok(None);
    }
    db.run(Retry::Read, || async move {
        let (client, stmt) = db
            .prepared("SELECT id, password_hash FROM users WHERE lower(username) = lower($1)")
            .await?;
        let row = client.query_opt(&stmt, &[&username]).await?;
        Ok(row.map(|row| Credentials {
            id: UserId(row.get(0)),
            password_hash: PasswordHash::from_phc(row.get(1)),
        }))
    })
    .await
}

/// The user `principal` speaks for, in a live session.
pub(in crate::store) async fn get(db: &Postgres, principal: Principal) -> Result<User, StoreError> {
    let row = live_user(
        db,
        principal,
        concat!(
            "SELECT id, username FROM users WHERE id = $1 AND ",
            session_live!("$1", "$2")
        ),
    )
    .await?;
    Ok(User {
        id: UserId(row.get(0)),
        username: row.get(1),
    })
}

/// The row `sql` selects for `principal`'s user (`$1`) in its session (`$2`); [`StoreError::NoSuchUser`] when
/// there is none, the session not being live.
async fn live_user(
    db: &Postgres,
    principal: Principal,
    sql: &'static str,
) -> Result<tokio_postgres::Row, StoreError> {
    db.run(Retry::Read, || async move {
        let (client, stmt) = db.prepared(sql).await?;
        let row = client
            .query_opt(&stmt, &[&principal.user.0, &principal.session.0])
            .await?;
        row.ok_or_else(|| StoreError::NoSuchUser.into())
    })
    .await
}

/// [`StoreError::NoSuchUser`] unless `principal`'s session is live.
pub(in crate::store) async fn require(
    db: &Postgres,
    principal: Principal,
) -> Result<(), StoreError> {
    db.run(Retry::Read, || async move {
        let client = db.client().await?;
        require_session(&client, principal).await
    })
    .await
}

/// [`StoreError::NoSuchUser`] unless `principal`'s session is live, on a connection already checked out.
pub(super) async fn require_session(
    client: &deadpool_postgres::Object,
    principal: Principal,
) -> Result<(), Failure> {
    let stmt = client
        .prepare_cached(concat!("SELECT ", session_live!("$1", "$2")))
        .await?;
    let live: bool = client
        .query_one(&stmt, &[&principal.user.0, &principal.session.0])
        .await?
        .get(0);
    if live {
        Ok(())
    } else {
        Err(StoreError::NoSuchUser.into())
    }
}

/// The username and password hash of `principal`'s user, in a live session.
pub(in crate::store) async fn credentials(
    db: &Postgres,
    principal: Principal,
) -> Result<(String, PasswordHash), StoreError> {
    let row = live_user(
        db,
        principal,
        concat!(
            "SELECT username, password_hash FROM users WHERE id = $1 AND ",
            session_live!("$1", "$2")
        ),
    )
    .await?;
    Ok((row.get(0), PasswordHash::from_phc(row.get(1))))
}

/// Sets the password and ends every other session of the user, in one transaction, if this session is live.
///
/// The user's row is locked first. A login that verified the old password holds it `FOR SHARE` while it starts
/// its session ([`super::sessions::start`]): this waits for that login to commit, and the statements after the
/// lock, each with a snapshot of its own, see its session and end it. Every other call that ends several
/// sessions locks that row first too, so they take turns instead of deadlocking.
pub(in crate::store) async fn set_password(
    db: &Postgres,
    principal: Principal,
    password_hash: PasswordHash,
) -> Result<(), StoreError> {
    let password_hash = &password_hash;
    db.run(Retry::Write, || async move {
        let mut client = db.client().await?;
        let tx = client.transaction().await?;
        let lock = tx
            .prepare_cached(concat!(
                "SELECT 1 FROM users WHERE id = $1 AND ",
                session_live!("$1", "$2"),
                " FOR UPDATE"
            ))
            .await?;
        if tx
            .query_opt(&lock, &[&principal.user.0, &principal.session.0])
            .await?
            .is_none()
        {
            return Err(StoreError::NoSuchUser.into());
        }
        let change = tx
            .prepare_cached("UPDATE users SET password_hash = $2 WHERE id = $1")
            .await?;
        tx.execute(&change, &[&principal.user.0, &password_hash.as_str()])
            .await?;
        let others = tx
            .prepare_cached("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
            .await?;
        tx.execute(&others, &[&principal.user.0, &principal.session.0])
            .await?;
        tx.commit().await?;
        Ok(())
    })
    .await
}

/// Removes the user, if this session is live; their tasks, counts and sessions go with them (ON DELETE
/// CASCADE).
pub(in crate::store) async fn delete(
    db: &Postgres,
    principal: Principal,
) -> Result<(), StoreError> {
    db.run(Retry::Write, || async move {
        let (client, stmt) = db
            .prepared(concat!(
                "DELETE FROM users WHERE id = $1 AND ",
                session_live!("$1", "$2")
            ))
            .await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
            [&principal.user.0, &principal.session.0];
        if client.execute(&stmt, &params).await? == 1 {
            Ok(())
        } else {
            Err(StoreError::NoSuchUser.into())
        }
    })
    .await
}
