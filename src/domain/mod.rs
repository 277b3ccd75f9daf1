//! The domain: identifiers, validated values and read models.
//!
//! Everything a client sends is parsed into one of these types at the edge (the route modules) and trusted
//! afterwards: a [`Username`] or [`TaskTitle`] cannot exist unless it met the rules of API.md. Nothing here
//! knows about HTTP or SQL; the read models derive their OpenAPI schemas beside their `Serialize`, so the
//! document describes exactly what is sent.

mod task;
mod user;

pub use task::{
    Limit, NewTask, Offset, Task, TaskChanges, TaskDescription, TaskId, TaskPage, TaskQuery,
    TaskStatus, TaskTitle, Timestamp,
};
pub use user::{Credentials, Password, PasswordHash, User, UserId, Username};

/// Why a domain parser refused a raw value. The HTTP layer turns it into a 422 entry; the text lives there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Fewer characters than allowed.
    TooShort { min: usize },
    /// More characters than allowed.
    TooLong { max: usize },
    /// Characters outside the allowed set, described by a regular expression.
    Pattern(&'static str),
    /// Not one of a fixed set of values.
    NotOneOf(&'static [&'static str]),
    /// A number below the allowed range.
    TooSmall { min: i64 },
    /// A number above the allowed range.
    TooLarge { max: i64 },
}

/// Checks that `value` has between `min` and `max` characters (Unicode scalar values, as API.md counts them).
fn check_length(value: &str, min: usize, max: usize) -> Result<(), Invalid> {
    // Counting stops early so an oversized input costs no more than `max + 1` steps.
    let count = value.chars().take(max + 1).count();
    if count < min {
        Err(Invalid::TooShort { min })
    } else if count > max {
        Err(Invalid::TooLong { max })
    } else {
        Ok(())
    }
}

/// Checks that `value` lies in `min..=max`.
fn check_range(value: i64, min: i64, max: i64) -> Result<i64, Invalid> {
    if value < min {
        Err(Invalid::TooSmall { min })
    } else if value > max {
        Err(Invalid::TooLarge { max })
    } else {
        Ok(value)
    }
}
