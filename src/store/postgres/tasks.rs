//! Tasks in PostgreSQL. Every statement is keyed by the owner's id (the table's key leads with it), so no
//! function here can reach another user's task, and nothing joins across users. Each statement checks that the
//! caller's session is live (the session's row, keyed by the same user), and refuses the call otherwise
//! ([`StoreError::NoSuchUser`]); only a write that found no task asks again, to tell 401 from 404.

use chrono::{DateTime, SubsecRound, Utc};
use tokio_postgres::Row;

use super::users::require_session;
use super::{Postgres, Retry};
use crate::domain::{
    NewTask, Principal, Task, TaskChanges, TaskId, TaskPage, TaskQuery, TaskStatus, Timestamp,
    UserId,
};
use crate::store::StoreError;

/// The columns [`read_task`] reads, from its first index on.
macro_rules! columns {
    () => {
        "id, user_id, title, description, status, created_at, updated_at"
    };
}

/// Creates a task for `owner`; both timestamps are now. Nothing is written unless the session is live.
pub(in crate::store) async fn insert(
    db: &Postgres,
    owner: Principal,
    task: NewTask,
) -> Result<Task, StoreError> {
    let task = &task;
    db.run(Retry::Write, || async move {
        let (client, stmt) = db
            .prepared(concat!(
                "INSERT INTO tasks (user_id, title, description, status, created_at, updated_at) ",
                "SELECT $1, $2, $3, $4, $5, $5 WHERE ",
                session_live!("$1", "$6"),
                " RETURNING ",
                columns!()
            ))
            .await?;
        let now = Utc::now().trunc_subsecs(0);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &owner.user.0,
            &task.title.as_str(),
            &task.description.as_str(),
            &task.status.as_str(),
            &now,
            &owner.session.0,
        ];
        match client.query_opt(&stmt, &params).await? {
            Some(row) => Ok(read_task(&row, 0)?),
            None => Err(StoreError::NoSuchUser.into()),
        }
    })
    .await
}

// The statements of `list`: whether the session is live and how many tasks match come in the same single round
// trip as the page, as constants beside it; a page past the end still yields one row (the LEFT JOIN's), whose
// task columns are NULL. The total comes from `task_counts`, kept by triggers, so listing costs the same for
// 100 tasks or 100 000.
const LIST_ALL: &str = concat!(
    "SELECT ",
    session_live!("$1", "$4"),
    ", (SELECT coalesce(sum(n), 0)::bigint FROM task_counts WHERE user_id = $1), t.* ",
    "FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT ",
    columns!(),
    " FROM tasks WHERE user_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3) AS t ON true"
);
const LIST_BY_STATUS: &str = concat!(
    "SELECT ",
    session_live!("$1", "$5"),
    ", (SELECT coalesce(sum(n), 0)::bigint FROM task_counts WHERE user_id = $1 AND status = $4), t.* ",
    "FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT ",
    columns!(),
    " FROM tasks WHERE user_id = $1 AND status = $4 ORDER BY id DESC LIMIT $2 OFFSET $3) AS t ON true"
);

/// One page of `owner`'s tasks, newest first, with the number that matched before paging.
pub(in crate::store) async fn list(
    db: &Postgres,
    owner: Principal,
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
            None => {
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                    [&owner.user.0, &limit, &offset, &owner.session.0];
                client.query(&stmt, &params).await
            }
            Some(status) => {
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
                    &owner.user.0,
                    &limit,
                    &offset,
                    &status.as_str(),
                    &owner.session.0,
                ];
                client.query(&stmt, &params).await
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

/// `owner`'s task `id`, if it exists; whether the session is live comes in the same row.
pub(in crate::store) async fn get(
    db: &Postgres,
    owner: Principal,
    id: TaskId,
) -> Result<Option<Task>, StoreError> {
    db.run(Retry::Read, || async move {
        let (client, stmt) = db
            .prepared(concat!(
                "SELECT ",
                session_live!("$1", "$3"),
                ", t.* FROM (SELECT 1) AS one ",
                "LEFT JOIN LATERAL (SELECT ",
                columns!(),
                " FROM tasks WHERE user_id = $1 AND id = $2) AS t ON true"
            ))
            .await?;
        let row = client
            .query_one(&stmt, &[&owner.user.0, &id.0, &owner.session.0])
            .await?;
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
/// there is no such task for a live session (and then the session is checked, in a second round trip only
/// then).
pub(in crate::store) async fn update(
    db: &Postgres,
    owner: Principal,
    id: TaskId,
    changes: TaskChanges,
) -> Result<Option<Task>, StoreError> {
    let changes = &changes;
    db.run(Retry::Write, || async move {
        let (client, stmt) = db.prepared(concat!(
                "UPDATE tasks SET title = coalesce($1, title), description = coalesce($2, description), ",
                "status = coalesce($3, status), updated_at = $4 ",
                "WHERE user_id = $5 AND id = $6 AND ",
                session_live!("$5", "$7"),
                " RETURNING ",
                columns!()
            )).await?;
        let now = Utc::now().trunc_subsecs(0);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &changes.title().map(|t| t.as_str()),
            &changes.description().map(|d| d.as_str()),
            &changes.status().map(TaskStatus::as_str),
            &now,
            &owner.user.0,
            &id.0,
            &owner.session.0,
        ];
        match client.query_opt(&stmt, &params).await? {
            Some(row) => Ok(Some(read_task(&row, 0)?)),
            None => {
                require_session(&client, owner).await?;
                Ok(None)
            }
        }
    })
    .await
}

/// Deletes `owner`'s task `id`; `true` only when this call removed it.
pub(in crate::store) async fn delete(
    db: &Postgres,
    owner: Principal,
    id: TaskId,
) -> Result<bool, StoreError> {
    db.run(Retry::Write, || async move {
        let (client, stmt) = db
            .prepared(concat!(
                "DELETE FROM tasks WHERE user_id = $1 AND id = $2 AND ",
                session_live!("$1", "$3")
            ))
            .await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&owner.user.0, &id.0, &owner.session.0];
        if client.execute(&stmt, &params).await? == 1 {
            return Ok(true);
        }
        require_session(&client, owner).await?;
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
