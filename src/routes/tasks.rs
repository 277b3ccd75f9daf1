//! `/tasks` and `/tasks/{id}`: a user's own tasks, and nobody else's.

use serde::Deserialize;
use warp::Filter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use super::doc::{
    MalformedBody, NewTaskRequest, SlowBody, StorageUnavailable, TaskChangesRequest, TaskNotFound,
    TooLarge, Unauthorized, Unprocessable,
};
use super::{Field, checked, collect, integer};
use crate::domain::{
    Limit, NewTask, Offset, Principal, Task, TaskChanges, TaskId, TaskQuery, TaskStatus,
};
use crate::error::{Error, FieldError, Problem, respond};
use crate::filters::{Fields, api_key, json_body, jwt_user, query_fields, with_db};
use crate::state::{AppState, Route};
use crate::store::{self, Store};

/// Every endpoint of this module.
pub fn routes(state: &AppState) -> Route {
    tasks_list(state)
        .or(tasks_get(state))
        .unify()
        .or(tasks_create(state))
        .unify()
        .or(tasks_update(state))
        .unify()
        .or(tasks_delete(state))
        .unify()
        .boxed()
}

/// POST /tasks
#[utoipa::path(
    post, path = "/tasks", operation_id = "create_task", tag = "tasks",
    summary = "Create a task",
    description = "Only `title` is required; `description` defaults to `\"\"` and `status` to `pending`.",
    request_body(content = NewTaskRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The new task", body = Task,
            headers(("Location" = String, description = "`/tasks/{id}` of the new task"))),
        MalformedBody, SlowBody, Unauthorized, TooLarge, Unprocessable, StorageUnavailable,
    ),
    security(("OAuth2PasswordBearer" = [], "APIKeyHeader" = [])),
)]
pub(crate) fn tasks_create(state: &AppState) -> Route {
    warp::path!("tasks")
        .and(warp::post())
        .and(api_key(&state.api_key))
        .and(jwt_user(&state.tokens))
        .and(json_body::<TaskBody>())
        .and(with_db(&state.store))
        .then(create_task)
        .map(respond)
        .boxed()
}

/// GET /tasks
#[utoipa::path(
    get, path = "/tasks", operation_id = "list_tasks", tag = "tasks",
    summary = "List your tasks",
    description = "Your tasks only, newest first (by id). `X-Total-Count` is the number that match before paging.",
    params(
        ("status" = Option<TaskStatus>, Query, description = "Only tasks with this status"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Tasks per page (default 100)",
            example = 20),
        ("offset" = Option<i64>, Query, minimum = 0, description = "Matching tasks to skip (default 0)", example = 0),
    ),
    responses(
        (status = 200, description = "One page of tasks", body = [Task],
            headers(("X-Total-Count" = i64, description = "How many tasks match, before paging"))),
        Unauthorized, Unprocessable, StorageUnavailable,
    ),
    security(("OAuth2PasswordBearer" = [], "APIKeyHeader" = [])),
)]
pub(crate) fn tasks_list(state: &AppState) -> Route {
    warp::path!("tasks")
        .and(warp::get())
        .and(api_key(&state.api_key))
        .and(jwt_user(&state.tokens))
        .and(query_fields())
        .and(with_db(&state.store))
        .then(list_tasks)
        .map(respond)
        .boxed()
}

/// GET /tasks/{id}
#[utoipa::path(
    get, path = "/tasks/{id}", operation_id = "read_task", tag = "tasks",
    summary = "Read a task",
    params(("id" = i64, Path, minimum = 1, description = "The task's id", example = 7)),
    responses((status = 200, description = "The task", body = Task), Unauthorized, TaskNotFound, Unprocessable, StorageUnavailable),
    security(("OAuth2PasswordBearer" = [], "APIKeyHeader" = [])),
)]
pub(crate) fn tasks_get(state: &AppState) -> Route {
    warp::path!("tasks" / String)
        .and(warp::get())
        .and(api_key(&state.api_key))
        .and(jwt_user(&state.tokens))
        .and(with_db(&state.store))
        .then(get_task)
        .map(respond)
        .boxed()
}

/// PUT /tasks/{id}
#[utoipa::path(
    put, path = "/tasks/{id}", operation_id = "update_task", tag = "tasks",
    summary = "Change a task",
    description = "Changes the fields sent (at least one of `title`, `description`, `status`) and `updated_at`, \
        in one atomic write.",
    params(("id" = i64, Path, minimum = 1, description = "The task's id", example = 7)),
    request_body(content = TaskChangesRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The task as changed", body = Task),
        MalformedBody, SlowBody, Unauthorized, TaskNotFound, TooLarge, Unprocessable, StorageUnavailable,
    ),
    security(("OAuth2PasswordBearer" = [], "APIKeyHeader" = [])),
)]
pub(crate) fn tasks_update(state: &AppState) -> Route {
    warp::path!("tasks" / String)
        .and(warp::put())
        .and(api_key(&state.api_key))
        .and(jwt_user(&state.tokens))
        .and(json_body::<TaskBody>())
        .and(with_db(&state.store))
        .then(update_task)
        .map(respond)
        .boxed()
}

/// DELETE /tasks/{id}
#[utoipa::path(
    delete, path = "/tasks/{id}", operation_id = "delete_task", tag = "tasks",
    summary = "Delete a task",
    params(("id" = i64, Path, minimum = 1, description = "The task's id", example = 7)),
    responses((status = 204, description = "Deleted"), Unauthorized, TaskNotFound, Unprocessable, StorageUnavailable),
    security(("OAuth2PasswordBearer" = [], "APIKeyHeader" = [])),
)]
pub(crate) fn tasks_delete(state: &AppState) -> Route {
    warp::path!("tasks" / String)
        .and(warp::delete())
        .and(api_key(&state.api_key))
        .and(jwt_user(&state.tokens))
        .and(with_db(&state.store))
        .then(delete_task)
        .map(respond)
        .boxed()
}

/// The body of `POST /tasks` and of `PUT /tasks/{id}`, as sent.
#[derive(Debug, Deserialize)]
struct TaskBody {
    #[serde(default)]
    title: Field,
    #[serde(default)]
    description: Field,
    #[serde(default)]
    status: Field,
}

impl TryFrom<TaskBody> for NewTask {
    type Error = Vec<FieldError>;

    /// A title is required; description and status take their defaults.
    fn try_from(body: TaskBody) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let title = body.title.required("title", &mut errors);
        let description = body.description.optional("description", &mut errors);
        let status = body.status.optional("status", &mut errors);
        let task = title.map(|title| NewTask {
            title,
            description: description.unwrap_or_default(),
            status: status.unwrap_or_default(),
        });
        collect(task, errors)
    }
}

impl TryFrom<TaskBody> for TaskChanges {
    type Error = Vec<FieldError>;

    /// Any of the fields, at least one.
    fn try_from(body: TaskBody) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let title = body.title.optional("title", &mut errors);
        let description = body.description.optional("description", &mut errors);
        let status = body.status.optional("status", &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        TaskChanges::new(title, description, status)
            .ok_or_else(|| vec![FieldError::body(None, Problem::NoChanges)])
    }
}

/// Parses the query of `GET /tasks`: `status`, `limit` and `offset`, all optional; other parameters are
/// ignored, and of a repeated one the last value counts.
fn task_query(fields: &Fields) -> Result<TaskQuery, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut query = TaskQuery::default();
    if let Some(raw) = fields.last("status") {
        match TaskStatus::parse(raw) {
            Ok(status) => query.status = Some(status),
            Err(invalid) => errors.push(FieldError::query("status", invalid)),
        }
    }
    if let Some(raw) = fields.last("limit") {
        match integer(raw, Limit::parse) {
            Ok(limit) => query.limit = limit,
            Err(problem) => errors.push(FieldError::query("limit", problem)),
        }
    }
    if let Some(raw) = fields.last("offset") {
        match integer(raw, Offset::parse) {
            Ok(offset) => query.offset = offset,
            Err(problem) => errors.push(FieldError::query("offset", problem)),
        }
    }
    collect(Some(query), errors)
}

/// Parses the `{id}` of `/tasks/{id}`.
fn task_id(raw: &str) -> Result<TaskId, FieldError> {
    integer(raw, TaskId::parse).map_err(|problem| FieldError::path("id", problem))
}

async fn create_task(
    user: Principal,
    body: Result<TaskBody, Vec<FieldError>>,
    store: Store,
) -> Result<Response, Error> {
    let new_task = checked(&store, user, body.and_then(NewTask::try_from)).await?;
    let task = store::tasks::insert(&store, user, new_task).await?;
    let location = HeaderValue::from_str(&format!("/tasks/{}", task.id.0))
        .map_err(|e| Error::Internal(format!("location header: {e}")))?;
    let mut response =
        warp::reply::with_status(warp::reply::json(&task), StatusCode::CREATED).into_response();
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

async fn list_tasks(user: Principal, query: Fields, store: Store) -> Result<Response, Error> {
    let query = checked(&store, user, task_query(&query)).await?;
    let page = store::tasks::list(&store, user, query).await?;
    let mut response = tasks_json(&page.tasks)?;
    response
        .headers_mut()
        .insert("x-total-count", HeaderValue::from(page.total));
    Ok(response)
}

/// The JSON array of `tasks`, written into a buffer sized for it up front rather than grown by doubling.
fn tasks_json(tasks: &[Task]) -> Result<Response, Error> {
    let estimate: usize = tasks
        .iter()
        .map(|task| task.title.len() + task.description.len() + 160)
        .sum();
    let mut body = Vec::with_capacity(estimate + 2);
    serde_json::to_writer(&mut body, tasks)
        .map_err(|e| Error::Internal(format!("serializing tasks: {e}")))?;
    let mut response = Response::new(body.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

async fn get_task(raw_id: String, user: Principal, store: Store) -> Result<Response, Error> {
    let id = checked(&store, user, task_id(&raw_id).map_err(|e| vec![e])).await?;
    let task = store::tasks::get(&store, user, id)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(warp::reply::json(&task).into_response())
}

async fn update_task(
    raw_id: String,
    user: Principal,
    body: Result<TaskBody, Vec<FieldError>>,
    store: Store,
) -> Result<Response, Error> {
    // FastAPI reports the path and the body together; so do we.
    let parsed = match (task_id(&raw_id), body.and_then(TaskChanges::try_from)) {
        (Ok(id), Ok(changes)) => Ok((id, changes)),
        (id, changes) => {
            let mut errors: Vec<FieldError> = id.err().into_iter().collect();
            errors.extend(changes.err().unwrap_or_default());
            Err(errors)
        }
    };
    let (id, changes) = checked(&store, user, parsed).await?;
    let task = store::tasks::update(&store, user, id, changes)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(warp::reply::json(&task).into_response())
}

async fn delete_task(raw_id: String, user: Principal, store: Store) -> Result<Response, Error> {
    let id = checked(&store, user, task_id(&raw_id).map_err(|e| vec![e])).await?;
    if store::tasks::delete(&store, user, id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Error::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Invalid;

    fn pairs(query: &[(&str, &str)]) -> Fields {
        Fields::from(
            query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn query_defaults_and_last_value_wins() {
        assert_eq!(task_query(&pairs(&[])).unwrap(), TaskQuery::default());
        let query = task_query(&pairs(&[
            ("limit", "5"),
            ("limit", "7"),
            ("status", "completed"),
            ("x", "y"),
        ]))
        .unwrap();
        assert_eq!(query.limit.get(), 7);
        assert_eq!(query.status, Some(TaskStatus::Completed));
    }

    #[test]
    fn query_lists_every_problem() {
        let errors = task_query(&pairs(&[
            ("limit", "0"),
            ("offset", "x"),
            ("status", "done"),
        ]))
        .unwrap_err();
        assert_eq!(errors.len(), 3);
    }

    #[test]
    fn ids_are_positive_integers() {
        assert_eq!(task_id("7").unwrap(), TaskId(7));
        assert_eq!(task_id("+7").unwrap(), TaskId(7));
        assert!(task_id("0").is_err());
        assert!(task_id("-3").is_err());
        assert!(task_id("abc").is_err());
        assert!(task_id("1.5").is_err());
        assert_eq!(
            task_id("99999999999999999999"),
            Err(FieldError::path("id", Invalid::TooLarge { max: i64::MAX }))
        );
    }
}
