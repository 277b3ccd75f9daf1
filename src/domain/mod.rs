//! The domain: identifiers, validated values and read models.
//!
//! Everything a client sends is parsed into one of these types at the edge (the route modules) and trusted
//! afterwards: a [`Username`] or [`TaskTitle`] cannot exist unless it met the rules of API.md. Nothing here
//! knows about HTTP or SQL; the read models derive their OpenAPI schemas beside their `Serialize`, so the
//! document describes exactly what is sent.

mod session;
mod task;
mod user;

pub use session::{PresentedRefresh, Principal, RefreshHash, Rotation, SessionId};
pub use task::{
    Limit, NO_NUL, NewTask, Offset, Task, TaskChanges, TaskDescription, TaskId, TaskPage,
    TaskQuery, TaskStatus, TaskTitle, Timestamp,
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

/// Every parser of the domain against arbitrary input: none panics, each accepts exactly what its rule says, and
/// what it accepts comes back unchanged (trimmed, for titles).
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn chars(s: &str) -> usize {
        s.chars().count()
    }

    proptest! {
        #[test]
        fn usernames(raw in prop_oneof![any::<String>(), "[A-Za-z0-9_.-]{0,40}", "[a-z0-9 _.!é-]{0,40}"]) {
            let rule = (3..=32).contains(&chars(&raw))
                && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            match Username::parse(raw.clone()) {
                Ok(username) => {
                    prop_assert!(rule);
                    prop_assert_eq!(username.as_str(), raw.as_str());
                }
                Err(_) => prop_assert!(!rule),
            }
        }

        #[test]
        fn passwords(raw in prop_oneof![any::<String>(), "\\PC{0,140}"]) {
            match Password::parse(raw.clone()) {
                Ok(password) => {
                    prop_assert!((8..=128).contains(&chars(&raw)));
                    prop_assert_eq!(password.expose(), raw.as_str());
                }
                Err(_) => prop_assert!(!(8..=128).contains(&chars(&raw))),
            }
        }

        #[test]
        fn titles(raw in prop_oneof![any::<String>(), "\\s{0,3}\\PC{0,210}\\s{0,3}", "[ \\t\\n\\u{a0}\\u{3000}x]{0,8}"]) {
            let trimmed = raw.trim();
            match TaskTitle::parse(raw.clone()) {
                Ok(title) => {
                    prop_assert!((1..=200).contains(&chars(trimmed)));
                    prop_assert_eq!(title.as_str(), trimmed);
                    prop_assert_eq!(TaskTitle::parse(title.as_str().to_owned()), Ok(title));
                }
                Err(_) => prop_assert!(!(1..=200).contains(&chars(trimmed))),
            }
        }

        #[test]
        fn descriptions(raw in prop_oneof![any::<String>(), "\\PC{9990,10010}"]) {
            match TaskDescription::parse(raw.clone()) {
                Ok(description) => {
                    prop_assert!(chars(&raw) <= 10_000);
                    prop_assert_eq!(description.as_str(), raw.as_str());
                }
                Err(_) => prop_assert!(chars(&raw) > 10_000),
            }
        }

        #[test]
        fn statuses(raw in prop_oneof![any::<String>(), "(pending|completed|Pending|done| pending)"]) {
            match TaskStatus::parse(&raw) {
                Ok(status) => prop_assert_eq!(status.as_str(), raw.as_str()),
                Err(_) => prop_assert!(raw != "pending" && raw != "completed"),
            }
        }

        #[test]
        fn numbers(raw in any::<i64>()) {
            prop_assert_eq!(TaskId::parse(raw).ok().map(|id| id.0), (raw >= 1).then_some(raw));
            prop_assert_eq!(Limit::parse(raw).ok().map(|l| i64::from(l.get())), (1..=1000).contains(&raw).then_some(raw));
            prop_assert_eq!(Offset::parse(raw).ok().map(Offset::get), (raw >= 0).then_some(raw));
        }

        #[test]
        fn timestamps(seconds in 0i64..253_402_300_799, raw in any::<String>()) {
            let _ = Timestamp::parse_rfc3339(&raw);
            let Some(instant) = chrono::DateTime::from_timestamp(seconds, 0) else { return Ok(()) };
            let timestamp = Timestamp::parse_rfc3339(&instant.to_rfc3339()).expect("chrono writes RFC 3339");
            prop_assert_eq!(Timestamp::parse_rfc3339(timestamp.as_str()), Some(timestamp));
            prop_assert_eq!(Timestamp::from_stored(timestamp.as_str()), Some(timestamp));
        }
    }
}
