//! Tasks: the values a client may set, the changes it may ask for, and the task it reads back.

use std::borrow::Cow;

use chrono::{DateTime, SubsecRound, Utc};
use compact_str::CompactString;
use serde::{Serialize, Serializer};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::{Invalid, UserId, check_length, check_range};

/// A task's id, handed out by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(transparent)]
pub struct TaskId(pub i64);

impl TaskId {
    /// Accepts an id a client sent: ids start at 1, so a lower number cannot name a task.
    pub fn parse(raw: i64) -> Result<Self, Invalid> {
        check_range(raw, 1, i64::MAX).map(Self)
    }
}

/// Whether a task is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    #[default]
    Pending,
    Completed,
}

impl TaskStatus {
    /// Every value, as written on the wire and in the store.
    pub const ALL: &'static [&'static str] = &["pending", "completed"];

    /// Accepts exactly `pending` or `completed` (case matters, as in API.md).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "pending" => Ok(Self::Pending),
            "completed" => Ok(Self::Completed),
            _ => Err(Invalid::NotOneOf(Self::ALL)),
        }
    }

    /// The wire and store spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
        }
    }
}

/// The rule for text a task holds: no U+0000, which PostgreSQL's text cannot store. Refused on every backend,
/// so the API answers the same whatever holds the data.
pub const NO_NUL: &str = r"^[^\x00]*$";

fn check_no_nul(text: &str) -> Result<(), Invalid> {
    if text.contains('\0') {
        Err(Invalid::Pattern(NO_NUL))
    } else {
        Ok(())
    }
}

/// A task title: 1 to 200 characters once surrounding whitespace is trimmed (the trimmed text is kept), without
/// U+0000.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTitle(String);

impl TaskTitle {
    /// Fewest characters after trimming.
    pub const MIN: usize = 1;
    /// Most characters after trimming.
    pub const MAX: usize = 200;

    /// Trims `raw` and accepts it when the rest is 1 to 200 characters long.
    pub fn parse(raw: String) -> Result<Self, Invalid> {
        let trimmed = raw.trim();
        check_length(trimmed, Self::MIN, Self::MAX)?;
        check_no_nul(trimmed)?;
        Ok(Self(if trimmed.len() == raw.len() {
            raw
        } else {
            trimmed.to_owned()
        }))
    }

    /// The trimmed title.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A task description: up to 10 000 characters without U+0000, kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskDescription(String);

impl TaskDescription {
    /// Most characters.
    pub const MAX: usize = 10_000;

    /// Accepts `raw` when it has at most 10 000 characters.
    pub fn parse(raw: String) -> Result<Self, Invalid> {
        check_length(&raw, 0, Self::MAX)?;
        check_no_nul(&raw)?;
        Ok(Self(raw))
    }

    /// The description.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A task to create: a title, and a description and status that default to `""` and `pending`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    pub title: TaskTitle,
    pub description: TaskDescription,
    pub status: TaskStatus,
}

/// The fields a `PUT` replaces: at least one of them, by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskChanges {
    title: Option<TaskTitle>,
    description: Option<TaskDescription>,
    status: Option<TaskStatus>,
}

impl TaskChanges {
    /// The changes, or `None` when they would change nothing.
    pub fn new(
        title: Option<TaskTitle>,
        description: Option<TaskDescription>,
        status: Option<TaskStatus>,
    ) -> Option<Self> {
        if title.is_none() && description.is_none() && status.is_none() {
            None
        } else {
            Some(Self {
                title,
                description,
                status,
            })
        }
    }

    /// The new title, if it changes.
    pub fn title(&self) -> Option<&TaskTitle> {
        self.title.as_ref()
    }

    /// The new description, if it changes.
    pub fn description(&self) -> Option<&TaskDescription> {
        self.description.as_ref()
    }

    /// The new status, if it changes.
    pub fn status(&self) -> Option<TaskStatus> {
        self.status
    }
}

/// How many tasks one page of `GET /tasks` holds: 1 to 1000, 100 unless asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    /// Most tasks in one page.
    pub const MAX: i64 = 1000;

    /// Accepts 1 to 1000.
    pub fn parse(raw: i64) -> Result<Self, Invalid> {
        // The range check makes the narrowing lossless.
        check_range(raw, 1, Self::MAX).map(|n| Self(n as u32))
    }

    /// The number of tasks.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Limit {
    fn default() -> Self {
        Self(100)
    }
}

/// How many matching tasks `GET /tasks` skips: 0 or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offset(i64);

impl Offset {
    /// Accepts any number from 0 up.
    pub fn parse(raw: i64) -> Result<Self, Invalid> {
        check_range(raw, 0, i64::MAX).map(Self)
    }

    /// The number of tasks skipped.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Which of a user's tasks `GET /tasks` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskQuery {
    pub status: Option<TaskStatus>,
    pub limit: Limit,
    pub offset: Offset,
}

/// An instant, to the second, in UTC, kept in its one written form: RFC 3339 with a `Z`
/// (`2026-11-24T09:30:00Z`). That form sorts like the instants it names, and serving a task read from the store
/// neither parses nor formats a date. Its twenty ASCII bytes are held inline: a task read from the store
/// allocates nothing for its timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp([u8; 20]);

impl Timestamp {
    /// RFC 3339 in UTC, to the second, with `Z`: the one form used on the wire and in the store.
    const FORMAT: &'static str = "%Y-%m-%dT%H:%M:%SZ";

    /// Now.
    pub fn now() -> Self {
        // A clock between the years 0000 and 9999 always fits the written form.
        Self::written(Utc::now()).unwrap_or(Self(*b"9999-12-31T23:59:59Z"))
    }

    /// Any RFC 3339 instant, brought to the written form (UTC, whole seconds); `None` for an instant whose year
    /// in UTC falls outside 0000–9999, which that form cannot hold.
    pub fn parse_rfc3339(raw: &str) -> Option<Self> {
        Self::written(DateTime::parse_from_rfc3339(raw).ok()?.with_timezone(&Utc))
    }

    fn written(instant: DateTime<Utc>) -> Option<Self> {
        Self::from_stored(instant.trunc_subsecs(0).format(Self::FORMAT).to_string())
    }

    /// An instant read back from a store that keeps real timestamps, to the second; `None` outside the years
    /// 0000–9999. Written digit by digit: no formatter, no allocation.
    pub fn from_utc(instant: DateTime<Utc>) -> Option<Self> {
        use chrono::{Datelike, Timelike};
        let year = u32::try_from(instant.year()).ok().filter(|y| *y <= 9999)?;
        let mut bytes = *b"0000-00-00T00:00:00Z";
        let mut put = |at: usize, width: u32, value: u32| {
            for i in 0..width {
                let digit = (value / 10u32.pow(width - 1 - i)) % 10;
                bytes[at + i as usize] = b'0' + digit as u8;
            }
        };
        put(0, 4, year);
        put(5, 2, instant.month());
        put(8, 2, instant.day());
        put(11, 2, instant.hour());
        put(14, 2, instant.minute());
        put(17, 2, instant.second().min(59));
        Some(Self(bytes))
    }

    /// A timestamp read back from the store, which holds only the written form; anything not shaped like it is
    /// refused. Takes bytes, so the store's text needs no UTF-8 check of its own: the shape allows only ASCII.
    pub fn from_stored(stored: impl AsRef<[u8]>) -> Option<Self> {
        const SHAPE: &[u8; 20] = b"0000-00-00T00:00:00Z";
        let bytes: [u8; 20] = stored.as_ref().try_into().ok()?;
        let shaped = bytes.iter().zip(SHAPE).all(|(&byte, &shape)| {
            if shape == b'0' {
                byte.is_ascii_digit()
            } else {
                byte == shape
            }
        });
        shaped.then_some(Self(bytes))
    }

    /// `2026-11-24T09:30:00Z`.
    pub fn as_str(&self) -> &str {
        // Always ASCII: every constructor goes through `from_stored`'s shape check.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339, UTC, to the second"))
            .examples(["2026-11-24T09:30:00Z"])
            .into()
    }
}

impl ToSchema for Timestamp {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Timestamp")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A task as its owner reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 7, "user_id": 1, "title": "Write report", "description": "Quarterly numbers", "status": "pending",
    "created_at": "2026-11-24T09:30:00Z", "updated_at": "2026-11-24T09:30:00Z"
}))]
pub struct Task {
    pub id: TaskId,
    pub user_id: UserId,
    // Title and description hold text of up to 24 bytes inline. Most are that short, so a page of tasks read
    // from the store is not two heap allocations per task.
    #[schema(value_type = String)]
    pub title: CompactString,
    #[schema(value_type = String)]
    pub description: CompactString,
    pub status: TaskStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One page of a user's tasks, newest first, and how many matched before paging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_is_trimmed_then_measured() {
        assert_eq!(
            TaskTitle::parse("  Write report \n".into())
                .unwrap()
                .as_str(),
            "Write report"
        );
        assert_eq!(
            TaskTitle::parse(" \t ".into()),
            Err(Invalid::TooShort { min: 1 })
        );
        assert_eq!(
            TaskTitle::parse("".into()),
            Err(Invalid::TooShort { min: 1 })
        );
        assert_eq!(
            TaskTitle::parse("a\0b".into()),
            Err(Invalid::Pattern(NO_NUL))
        );
        assert_eq!(
            TaskDescription::parse("\0".into()),
            Err(Invalid::Pattern(NO_NUL))
        );
        assert_eq!(
            TaskTitle::parse("".into()),
            Err(Invalid::TooShort { min: 1 })
        );
        let long = format!("  {}  ", "t".repeat(200));
        assert_eq!(TaskTitle::parse(long).unwrap().as_str().len(), 200);
        assert_eq!(
            TaskTitle::parse("t".repeat(201)),
            Err(Invalid::TooLong { max: 200 })
        );
    }

    #[test]
    fn title_keeps_characters_that_are_not_whitespace() {
        for raw in ["日本語のタスク", "'; DROP TABLE tasks; --", "🦀"] {
            assert_eq!(TaskTitle::parse(raw.into()).unwrap().as_str(), raw);
        }
    }

    #[test]
    fn description_allows_empty_and_up_to_ten_thousand_characters() {
        assert_eq!(TaskDescription::parse(String::new()).unwrap().as_str(), "");
        assert!(TaskDescription::parse("é".repeat(10_000)).is_ok());
        assert_eq!(
            TaskDescription::parse("é".repeat(10_001)),
            Err(Invalid::TooLong { max: 10_000 })
        );
    }

    #[test]
    fn status_accepts_only_the_two_lowercase_values() {
        assert_eq!(TaskStatus::parse("pending"), Ok(TaskStatus::Pending));
        assert_eq!(TaskStatus::parse("completed"), Ok(TaskStatus::Completed));
        for bad in ["done", "Pending", "COMPLETED", "", " pending"] {
            assert_eq!(
                TaskStatus::parse(bad),
                Err(Invalid::NotOneOf(TaskStatus::ALL)),
                "{bad:?}"
            );
        }
        assert_eq!(
            serde_json::to_string(&TaskStatus::Completed).unwrap(),
            "\"completed\""
        );
    }

    #[test]
    fn changes_need_at_least_one_field() {
        assert_eq!(TaskChanges::new(None, None, None), None);
        let changes = TaskChanges::new(None, None, Some(TaskStatus::Completed)).unwrap();
        assert_eq!(changes.status(), Some(TaskStatus::Completed));
        assert!(changes.title().is_none());
    }

    #[test]
    fn paging_bounds_follow_the_contract() {
        assert_eq!(Limit::default().get(), 100);
        assert_eq!(Limit::parse(1).unwrap().get(), 1);
        assert_eq!(Limit::parse(1000).unwrap().get(), 1000);
        assert_eq!(Limit::parse(0), Err(Invalid::TooSmall { min: 1 }));
        assert_eq!(Limit::parse(1001), Err(Invalid::TooLarge { max: 1000 }));
        assert_eq!(Offset::parse(0).unwrap().get(), 0);
        assert_eq!(Offset::parse(-1), Err(Invalid::TooSmall { min: 0 }));
        assert_eq!(TaskId::parse(0), Err(Invalid::TooSmall { min: 1 }));
        assert_eq!(TaskId::parse(i64::MAX).unwrap(), TaskId(i64::MAX));
    }

    #[test]
    fn timestamps_are_rfc3339_utc_to_the_second() {
        let now = Timestamp::now();
        let wire = serde_json::to_value(now).unwrap();
        let text = wire.as_str().unwrap();
        assert_eq!(text.len(), "2026-11-24T09:30:00Z".len());
        assert!(text.ends_with('Z'));
        assert_eq!(text, now.as_str());
        assert_eq!(Timestamp::parse_rfc3339(text), Some(now));
        assert_eq!(Timestamp::from_stored(text), Some(now));
        let other_zone = Timestamp::parse_rfc3339("2026-11-24T10:30:00.75+01:00").unwrap();
        assert_eq!(other_zone.as_str(), "2026-11-24T09:30:00Z");
        for bad in [
            "2026-11-24 09:30:00Z",
            "2026-11-24T09:30:00",
            "2026-11-24T09:30:00+00:00",
            "garbage",
            "+12026-11-24T09:30:00Z",
        ] {
            assert_eq!(Timestamp::from_stored(bad), None, "{bad}");
        }
    }
}
