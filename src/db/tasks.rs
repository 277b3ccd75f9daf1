//! Tasks in the store. Every statement is scoped by the owner's id, so no function here can reach another
//! user's task: a task that exists but is not the caller's looks exactly like one that does not exist. Every
//! function first refuses an owner that no longer exists ([`DbError::NoSuchUser`]).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::users::require;
use super::{Db, DbError, returning};
use crate::domain::{
    NewTask, Task, TaskChanges, TaskId, TaskPage, TaskQuery, TaskStatus, Timestamp, UserId,
};

/// The columns `read_task` reads, in order; a macro so statements are built at compile time with `concat!`.
macro_rules! columns {
    () => {
        "id, user_id, title, description, status, created_at, updated_at"
    };
}

/// Creates a task for `owner`; both timestamps are now.
pub async fn insert(db: &Db, owner: UserId, task: NewTask) -> Result<Task, DbError> {
    db.write(move |conn| {
        require(conn, owner)?;
        let now = Timestamp::now();
        let mut stmt = conn.prepare_cached(concat!(
            "INSERT INTO tasks (user_id, title, description, status, created_at, updated_at) ",
            "VALUES (?1, ?2, ?3, ?4, ?5, ?5) RETURNING ",
            columns!()
        ))?;
        let params = params![
            owner.0,
            task.title.as_str(),
            task.description.as_str(),
            task.status.as_str(),
            now.as_str()
        ];
        let created = returning(&mut stmt, params, read_task)?;
        created.ok_or_else(|| DbError::Internal("INSERT ... RETURNING returned no row".into()))
    })
    .await
}

/// One page of `owner`'s tasks, newest first, with the number that matched before paging.
///
/// The total comes from `task_counts` (kept by triggers) in the same statement as the page, so the two always
/// agree, even while writes land, and listing costs the same for 100 tasks or 100 000.
pub async fn list(db: &Db, owner: UserId, query: TaskQuery) -> Result<TaskPage, DbError> {
    const ALL: &str = concat!(
        "SELECT ",
        columns!(),
        ", (SELECT coalesce(sum(n), 0) FROM task_counts WHERE user_id = ?1) ",
        "FROM tasks WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3"
    );
    const BY_STATUS: &str = concat!(
        "SELECT ",
        columns!(),
        ", (SELECT coalesce(sum(n), 0) FROM task_counts WHERE user_id = ?1 AND status = ?4) ",
        "FROM tasks WHERE user_id = ?1 AND status = ?4 ORDER BY id DESC LIMIT ?2 OFFSET ?3"
    );
    db.read(move |conn| {
        require(conn, owner)?;
        let (limit, offset) = (query.limit.get(), query.offset.get());
        let mut total = 0;
        let mut read = |row: &Row<'_>| {
            total = row.get(7)?;
            read_task(row)
        };
        let tasks: rusqlite::Result<Vec<Task>> = match query.status {
            None => conn
                .prepare_cached(ALL)?
                .query_map(params![owner.0, limit, offset], &mut read)?
                .collect(),
            Some(status) => conn
                .prepare_cached(BY_STATUS)?
                .query_map(params![owner.0, limit, offset, status.as_str()], &mut read)?
                .collect(),
        };
        let tasks = tasks?;
        if tasks.is_empty() && offset > 0 {
            // Past the last page: no row carried the total.
            total = count(conn, owner, query.status)?;
        }
        Ok(TaskPage {
            tasks,
            total: u64::try_from(total).unwrap_or_default(),
        })
    })
    .await
}

/// How many of `owner`'s tasks have `status` (or any status).
fn count(conn: &Connection, owner: UserId, status: Option<TaskStatus>) -> Result<i64, DbError> {
    let total = conn
        .prepare_cached(
            "SELECT coalesce(sum(n), 0) FROM task_counts WHERE user_id = ?1 AND (?2 IS NULL OR status = ?2)",
        )?
        .query_row(params![owner.0, status.map(TaskStatus::as_str)], |row| row.get(0))?;
    Ok(total)
}

/// `owner`'s task `id`, if it exists.
pub async fn get(db: &Db, owner: UserId, id: TaskId) -> Result<Option<Task>, DbError> {
    db.read(move |conn| {
        require(conn, owner)?;
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT ",
            columns!(),
            " FROM tasks WHERE id = ?1 AND user_id = ?2"
        ))?;
        Ok(stmt
            .query_row(params![id.0, owner.0], read_task)
            .optional()?)
    })
    .await
}

/// Applies `changes` to `owner`'s task `id` and stamps `updated_at`, in one statement: concurrent updates
/// each land whole, one after the other, never a mix of two. `None` when there is no such task.
pub async fn update(
    db: &Db,
    owner: UserId,
    id: TaskId,
    changes: TaskChanges,
) -> Result<Option<Task>, DbError> {
    db.write(move |conn| {
        require(conn, owner)?;
        let mut stmt = conn.prepare_cached(concat!(
            "UPDATE tasks SET title = coalesce(?1, title), description = coalesce(?2, description), ",
            "status = coalesce(?3, status), updated_at = ?4 ",
            "WHERE id = ?5 AND user_id = ?6 RETURNING ",
            columns!()
        ))?;
        let now = Timestamp::now();
        let params = params![
            changes.title().map(|t| t.as_str()),
            changes.description().map(|d| d.as_str()),
            changes.status().map(TaskStatus::as_str),
            now.as_str(),
            id.0,
            owner.0,
        ];
        Ok(returning(&mut stmt, params, read_task)?)
    })
    .await
}

/// Deletes `owner`'s task `id`; `true` only when this call removed it.
pub async fn delete(db: &Db, owner: UserId, id: TaskId) -> Result<bool, DbError> {
    db.write(move |conn| {
        require(conn, owner)?;
        let mut stmt = conn.prepare_cached("DELETE FROM tasks WHERE id = ?1 AND user_id = ?2")?;
        Ok(stmt.execute(params![id.0, owner.0])? == 1)
    })
    .await
}

fn read_task(row: &Row<'_>) -> rusqlite::Result<Task> {
    let status: String = row.get(4)?;
    Ok(Task {
        id: TaskId(row.get(0)?),
        user_id: UserId(row.get(1)?),
        title: row.get(2)?,
        description: row.get(3)?,
        status: TaskStatus::parse(&status).map_err(|_| invalid_column(4, "status"))?,
        created_at: timestamp(row, 5)?,
        updated_at: timestamp(row, 6)?,
    })
}

fn timestamp(row: &Row<'_>, index: usize) -> rusqlite::Result<Timestamp> {
    let raw: String = row.get(index)?;
    Timestamp::from_stored(raw).ok_or_else(|| invalid_column(index, "timestamp"))
}

fn invalid_column(index: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("stored {what} is not in the expected form").into(),
    )
}
