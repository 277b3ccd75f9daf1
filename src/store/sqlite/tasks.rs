//! Tasks in the store. Every statement is scoped by the owner's id, so no function here can reach another
//! user's task: a task that exists but is not the caller's looks exactly like one that does not exist. Every
//! function refuses a caller whose session is no longer live ([`DbError::NoSuchUser`]).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::users::require_session;
use super::{DbError, Sqlite, returning};
use crate::domain::{
    NewTask, Principal, Task, TaskChanges, TaskId, TaskPage, TaskQuery, TaskStatus, Timestamp,
    UserId,
};
use crate::store::StoreError;

/// The columns `read_task` reads, in order; a macro so statements are built at compile time with `concat!`.
macro_rules! columns {
    () => {
        "id, user_id, title, description, status, created_at, updated_at"
    };
}

// Reads fold the session check (`session_live!`) into their own statement; only when nothing is found does
// [`require_session`] tell an ended session (401) from an empty result.

/// Creates a task for `owner`; both timestamps are now.
pub(in crate::store) async fn insert(
    db: &Sqlite,
    owner: Principal,
    task: NewTask,
) -> Result<Task, StoreError> {
    db.write(move |conn| {
        require_session(conn, owner)?;
        let now = Timestamp::now();
        let mut stmt = conn.prepare_cached(concat!(
            "INSERT INTO tasks (user_id, title, description, status, created_at, updated_at) ",
            "VALUES (?1, ?2, ?3, ?4, ?5, ?5) RETURNING ",
            columns!()
        ))?;
        let params = params![
            owner.user.0,
            task.title.as_str(),
            task.description.as_str(),
            task.status.as_str(),
            now.as_str()
        ];
        let created = returning(&mut stmt, params, read_task)?;
        created.ok_or_else(|| DbError::Internal("INSERT ... RETURNING returned no row".into()))
    })
    .await
    .map_err(Into::into)
}

// The statements of `list`. No LIMIT or OFFSET in them: SQLite re-prepares a statement whose LIMIT or OFFSET is
// a bound parameter every time it runs (their values feed its query planner), which cost a full parse per list.
// The index already yields rows newest first, so the page is cut below instead, stepping no further than SQLite
// would. The session check is a constant term that SQLite evaluates once, at the first row found, so an empty
// result says nothing about the session (see `session_live!`).
const LIST_ALL: &str = concat!(
    "SELECT ",
    columns!(),
    ", (SELECT coalesce(sum(n), 0) FROM task_counts WHERE user_id = ?1) ",
    "FROM tasks WHERE user_id = ?1 AND ",
    session_live!("?1", "?2"),
    " ORDER BY id DESC"
);
const LIST_BY_STATUS: &str = concat!(
    "SELECT ",
    columns!(),
    ", (SELECT coalesce(sum(n), 0) FROM task_counts WHERE user_id = ?1 AND status = ?2) ",
    "FROM tasks WHERE user_id = ?1 AND status = ?2 AND ",
    session_live!("?1", "?3"),
    " ORDER BY id DESC"
);

/// One page of `owner`'s tasks, newest first, with the number that matched before paging.
///
/// The total comes from `task_counts` (kept by triggers) in the same statement as the page, so the two always
/// agree, even while writes land, and listing costs the same for 100 tasks or 100 000.
pub(in crate::store) async fn list(
    db: &Sqlite,
    owner: Principal,
    query: TaskQuery,
) -> Result<TaskPage, StoreError> {
    db.read(move |conn| page(conn, owner, query))
        .await
        .map_err(Into::into)
}

fn page(conn: &Connection, owner: Principal, query: TaskQuery) -> Result<TaskPage, DbError> {
    let mut stmt = match query.status {
        None => conn.prepare_cached(LIST_ALL)?,
        Some(_) => conn.prepare_cached(LIST_BY_STATUS)?,
    };
    let mut rows = match query.status {
        None => stmt.query(params![owner.user.0, owner.session.0])?,
        Some(status) => stmt.query(params![owner.user.0, status.as_str(), owner.session.0])?,
    };
    let (limit, offset) = (query.limit.get() as usize, query.offset.get());
    let (mut tasks, mut total, mut skipped) = (Vec::with_capacity(limit), None, 0);
    while tasks.len() < limit {
        let Some(row) = rows.next()? else { break };
        if skipped < offset {
            skipped += 1;
            continue;
        }
        if total.is_none() {
            total = Some(row.get::<_, i64>(7)?);
        }
        tasks.push(read_task(row)?);
    }
    drop(rows);
    let total = match total {
        Some(total) => total,
        // No row of the page carried the total: past the last page, no tasks at all, or no live session.
        None => {
            require_session(conn, owner)?;
            count(conn, owner.user, query.status)?
        }
    };
    Ok(TaskPage {
        tasks,
        total: u64::try_from(total).unwrap_or_default(),
    })
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
pub(in crate::store) async fn get(
    db: &Sqlite,
    owner: Principal,
    id: TaskId,
) -> Result<Option<Task>, StoreError> {
    db.read(move |conn| {
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT ",
            columns!(),
            " FROM tasks WHERE id = ?1 AND user_id = ?2 AND ",
            session_live!("?2", "?3")
        ))?;
        let found = stmt
            .query_row(params![id.0, owner.user.0, owner.session.0], read_task)
            .optional()?;
        if found.is_none() {
            require_session(conn, owner)?;
        }
        Ok(found)
    })
    .await
    .map_err(Into::into)
}

/// Applies `changes` to `owner`'s task `id` and stamps `updated_at`, in one statement: concurrent updates
/// each land whole, one after the other, never a mix of two. `None` when there is no such task.
pub(in crate::store) async fn update(
    db: &Sqlite,
    owner: Principal,
    id: TaskId,
    changes: TaskChanges,
) -> Result<Option<Task>, StoreError> {
    db.write(move |conn| {
        require_session(conn, owner)?;
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
            owner.user.0,
        ];
        Ok(returning(&mut stmt, params, read_task)?)
    })
    .await
    .map_err(Into::into)
}

/// Deletes `owner`'s task `id`; `true` only when this call removed it.
pub(in crate::store) async fn delete(
    db: &Sqlite,
    owner: Principal,
    id: TaskId,
) -> Result<bool, StoreError> {
    db.write(move |conn| {
        require_session(conn, owner)?;
        let mut stmt = conn.prepare_cached("DELETE FROM tasks WHERE id = ?1 AND user_id = ?2")?;
        Ok(stmt.execute(params![id.0, owner.user.0])? == 1)
    })
    .await
    .map_err(Into::into)
}

fn read_task(row: &Row<'_>) -> rusqlite::Result<Task> {
    // Borrowed from SQLite's buffer: a status needs no string of its own.
    let status = row.get_ref(4)?.as_str()?;
    Ok(Task {
        id: TaskId(row.get(0)?),
        user_id: UserId(row.get(1)?),
        title: row.get_ref(2)?.as_str()?.into(),
        description: row.get_ref(3)?.as_str()?.into(),
        status: TaskStatus::parse(status).map_err(|_| invalid_column(4, "status"))?,
        created_at: timestamp(row, 5)?,
        updated_at: timestamp(row, 6)?,
    })
}

fn timestamp(row: &Row<'_>, index: usize) -> rusqlite::Result<Timestamp> {
    Timestamp::from_stored(row.get_ref(index)?.as_bytes()?)
        .ok_or_else(|| invalid_column(index, "timestamp"))
}

fn invalid_column(index: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("stored {what} is not in the expected form").into(),
    )
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;
    use crate::domain::{Limit, Offset};

    #[test]
    fn listing_pages_never_recompiles_the_statement() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("tasky.db")).unwrap();
        crate::store::sqlite::embedded::migrations::runner()
            .run(&mut conn)
            .unwrap();
        conn.execute(
            "INSERT INTO users (id, username, password_hash, created_at) VALUES (1, 'a', 'x', 't')",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO sessions (user_id, id, generation, refresh_hash, expires_at) \
             VALUES (1, 1, 0, x'00', unixepoch() + 60)",
            [],
        )
        .unwrap();
        for i in 0..30 {
            let status = if i % 3 == 0 { "completed" } else { "pending" };
            conn.execute(
                "INSERT INTO tasks (user_id, title, status, created_at, updated_at) \
                 VALUES (1, 't', ?1, '2026-11-24T09:30:00Z', '2026-11-24T09:30:00Z')",
                [status],
            )
            .unwrap();
        }
        let owner = Principal {
            user: UserId(1),
            session: crate::domain::SessionId(1),
        };
        for (limit, offset, status) in [
            (20, 0, None),
            (5, 3, None),
            (1000, 25, None),
            (7, 2, Some(TaskStatus::Pending)),
            (3, 0, Some(TaskStatus::Pending)),
        ] {
            let query = TaskQuery {
                status,
                limit: Limit::parse(limit).unwrap(),
                offset: Offset::parse(offset).unwrap(),
            };
            let listed = page(&conn, owner, query).unwrap();
            let matching = if status.is_some() { 20 } else { 30 };
            assert_eq!(listed.total, matching);
            assert_eq!(
                listed.tasks.len() as i64,
                limit.min(matching as i64 - offset)
            );
            assert!(
                listed
                    .tasks
                    .windows(2)
                    .all(|pair| pair[0].id.0 > pair[1].id.0),
                "newest first"
            );
        }
        let all = conn
            .prepare_cached(LIST_ALL)
            .unwrap()
            .get_status(StatementStatus::RePrepare);
        let by_status = conn
            .prepare_cached(LIST_BY_STATUS)
            .unwrap()
            .get_status(StatementStatus::RePrepare);
        assert_eq!(
            (all, by_status),
            (0, 0),
            "a re-prepare is a full parse on every list"
        );
    }
}
