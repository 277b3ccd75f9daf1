//! Users in PostgreSQL.

use chrono::{SubsecRound, Utc};

use super::{Failure, Postgres, Retry};
use crate::domain::{Credentials, PasswordHash, User, UserId, Username};
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

/// The user with this id, if it still exists.
pub(in crate::store) async fn get(db: &Postgres, id: UserId) -> Result<Option<User>, StoreError> {
    db.run(Retry::Read, || async move {
        let (client, stmt) = db
            .prepared("SELECT id, username FROM users WHERE id = $1")
            .await?;
        let row = client.query_opt(&stmt, &[&id.0]).await?;
        Ok(row.map(|row| User {
            id: UserId(row.get(0)),
            username: row.get(1),
        }))
    })
    .await
}

/// [`StoreError::NoSuchUser`] unless the user `id` exists.
pub(in crate::store) async fn require(db: &Postgres, id: UserId) -> Result<(), StoreError> {
    db.run(Retry::Read, || async move {
        let client = db.client().await?;
        require_owner(&client, id).await
    })
    .await
}

/// [`StoreError::NoSuchUser`] unless the user `id` exists, on a connection already checked out.
pub(super) async fn require_owner(
    client: &deadpool_postgres::Object,
    id: UserId,
) -> Result<(), Failure> {
    let stmt = client
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
        .await?;
    let exists: bool = client.query_one(&stmt, &[&id.0]).await?.get(0);
    if exists {
        Ok(())
    } else {
        Err(StoreError::NoSuchUser.into())
    }
}
