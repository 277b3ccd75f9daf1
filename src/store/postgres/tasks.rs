//! Tasks in PostgreSQL. Every statement is keyed by the owner's id (the table's key leads with it), so no
//! function here can reach another user's task, and nothing joins across users. Each function refuses an owner
//! that no longer exists ([`StoreError::NoSuchUser`]), in its one round trip where the statement allows.

use chrono::{DateTime, SubsecRound, Utc};
use tokio_postgres::Row;

use super::users::require_owner;
use super::{Postgres, Retry};
use crate::domain::{
    NewTask, Task, TaskChanges, TaskId, TaskPage, TaskQuery, TaskStatus, Timestamp, UserId,
};
use crate::store::StoreError;

/// The columns [`read_task`] reads, from its first index on.
macro_rules! columns {
    () => {
        "id, user_id, title, description, status, created_at, updated_at"
    };
}

/// Creates a task for `owner`; both timestamps are now. An owner that is gone fails the foreign key.
pub(in crate::store) async fn insert(
    db: &Postgres,
    owner: UserId,
    task: NewTask,
) -> Result<Task, StoreError> {
    let task = &task;
    db.run(Retry::Write, || async move {
        let (client, stmt) = db
            .prepared(concat!(
                "INSERT INTO tasks (user_id, title, description, status, created_at, updated_at) ",
                "VALUES ($1, $2, $3, $4, $5, $5) RETURNING ",
                columns!()
            ))
            .await?;
        let now = Utc::now().trunc_subsecs(0);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
            &owner.0,
            &task.title.as_str(),
            &task.description.as_str(),
            &task.status.as_str(),
            &now,
        ];
        let row = client.query_one(&stmt, &params).await?;
        Ok(read_task(&row, 0)?)
    })
    .await
}

// The statements of `list`: whether the owner exists and how many tasks match come in the same single round
// trip as the page, as constants beside it; a page past the end still yields one row (the LEFT JOIN's), whose
// task columns are NULL. The total comes from `task_counts`, kept by triggers, so listing costs the same for
// 100 tasks or 100 000.
const LIST_ALL: &str = concat!(
    "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1), ",
    "(SELECT coalesce(sum(n), 0)::bigint FROM task_counts WHERE user_id = $1), t.* ",
    "FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT ",
    columns!(),
    " FROM tasks WHERE user_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3) AS t ON true"
);
const LIST_BY_STATUS: &str = concat!(
    "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1), ",
    "(SELECT coalesce(sum(n), 0)::bigint FROM task_counts WHERE user_id = $1 AND status = $4), t.* ",
    "FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT ",
    columns!(),
    " FROM tasks WHERE user_id = $1 AND status = $4 ORDER BY id DESC LIMIT $2 OFFSET $3) AS t ON true"
);

/// One page of `owner`'s tasks, newest first, with the number that matched before paging.
pub(in crate::store) async fn list(
    db: &Postgres,
    owner: UserId,
    query: TaskQuery,
) -> Result<TaskPage, StoreError> {
    db.run(Retry::Read, || async move {
        let limit = i64::from(query.limit.get());
        let offset = query.offset.get();
        let sql = if query.status.is_some() {
            LIST_BY_STATUS
        } else {
            LIST_ALL
        };
        let (client, stmt) = db.prepared(sql).await?;
        let rows = match query.status {
            None => client.query(&stmt, &[&owner.0, &limit, &offset]).await,
            Some(status) => {
                client
                    .query(&stmt, &[&owner.0, &limit, &offset, &status.as_str()])
                    .await
            }
        }?;
        let first = rows
            .first()
            .ok_or_else(|| StoreError::Internal("a list answered no row".into()))?;
        if !first.get::<_, bool>(0) {
            return Err(StoreError::NoSuchUser.into());
        }
        let total: i64 = first.get(1);
        let mut tasks = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.get::<_, Option<i64>>(2).is_some() {
                tasks.push(read_task(row, 2)?);
            }
        }
        Ok(TaskPage {
            tasks,
            total: u64::try_from(total).unwrap_or_default(),
        })
    })
    .await
}

/// `owner`'s task `id`, if it exists; the owner's existence comes in the same row.
pub(in crate::store) async fn get(
    db: &Postgres,
    owner: UserId,
    id: TaskId,
) -> Result<Option<Task>, StoreError> {
    db.run(Retry::Read, || async move {
        let (client, stmt) = db
            .prepared(concat!(
                "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1), t.* FROM (SELECT 1) AS one ",
                "LEFT JOIN LATERAL (SELECT ",
                columns!(),
                " FROM tasks WHERE user_id = $1 AND id = $2) AS t ON true"
            ))
            .await?;
        let row = client.query_one(&stmt, &[&owner.0, &id.0]).await?;
        if !row.get::<_, bool>(0) {
            return Err(StoreError::NoSuchUser.into());
        }
        match row.get::<_, Option<i64>>(1) {
            Some(_) => Ok(Some(read_task(&row, 1)?)),
            None => Ok(None),
        }
    })
    .await
}

/// Applies `changes` and stamps `updated_at` in one statement: concurrent updates each land whole. `None` when
/// there is no such task (and then the owner is checked, in a second round trip only then).
pub(in crate::store) async fn update(
    db: &Postgres,
    owner: UserId,
    id: TaskId,
    changes: TaskChanges,
) -> Result<Option<Task>, StoreError> {
    let changes = &changes;
    db.run(Retry::Write, || async move {
        let (client, stmt) = db.prepared(concat!(
                "UPDATE tasks SET title = coalesce($1, title), description = coalesce($2, description), ",
                "status = coalesce($3, status), updated_at = $4 ",
                "WHERE user_id = $5 AND id = $6 RETURNING ",
                columns!()
            )).await?;
        let now = Utc::now().trunc_subsecs(0);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &changes.title().map(|t| t.as_str()),
            &changes.description().map(|d| d.as_str()),
            &changes.status().map(TaskStatus::as_str),
            &now,
            &owner.0,
            &id.0,
        ];
        match client.query_opt(&stmt, &params).await? {
            Some(row) => Ok(Some(read_task(&row, 0)?)),
            None => {
                require_owner(&client, owner).await?;
                Ok(None)
            }
        }
    })
    .await
}

/// Deletes `owner`'s task `id`; `true` only when this call removed it.
pub(in crate::store) async fn delete(
    db: &Postgres,
    owner: UserId,
    id: TaskId,
) -> Result<bool, StoreError> {
    db.run(Retry::Write, || async move {
        let (client, stmt) = db
            .prepared("DELETE FROM tasks WHERE user_id = $1 AND id = $2")
            .await?;
        if client.execute(&stmt, &[&owner.0, &id.0]).await? == 1 {
            return Ok(true);
        }
        require_owner(&client, owner).await?;
        Ok(false)
    })
    .await
}

/// A task from the row's columns `first..first + 7`.
fn read_task(row: &Row, first: usize) -> Result<Task, StoreError> {
    let status: &str = row.get(first + 4);
    Ok(Task {
        id: TaskId(row.get(first)),
        user_id: UserId(row.get(first + 1)),
        title: row.get::<_, &str>(first + 2).into(),
        description: row.get::<_, &str>(first + 3).into(),
        status: TaskStatus::parse(status)
            .map_err(|_| StoreError::Internal("stored status outside the contract".into()))?,
        created_at: timestamp(row.get(first + 5))?,
        updated_at: timestamp(row.get(first + 6))?,
    })
}

fn timestamp(instant: DateTime<Utc>) -> Result<Timestamp, StoreError> {
    Timestamp::from_utc(instant)
        .ok_or_else(|| StoreError::Internal("stored timestamp outside years 0-9999".into()))
}
