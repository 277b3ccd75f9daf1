//! Sessions: what a login starts, what an access token names, and what a refresh presents.

use super::UserId;

/// A session's id, made at login. Access tokens carry it as `sid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub i64);

impl SessionId {
    /// A fresh random id (63 bits, never 0), unique among the user's sessions for all practical purposes.
    pub fn random() -> Self {
        Self(
            i64::try_from(rand::random::<u64>() >> 1)
                .unwrap_or(i64::MAX)
                .max(1),
        )
    }
}

/// Who a valid access token speaks for: a user, in one of their sessions. Every store call made with it checks,
/// in the statement that does the work, that the session is still live, so an ended session is refused on the
/// very next request, on every process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user: UserId,
    /// The session of the token.
    pub session: SessionId,
}

/// The hash of a refresh token: what the store keeps instead of the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RefreshHash(pub [u8; 32]);

impl std::fmt::Debug for RefreshHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshHash(..)")
    }
}

/// A refresh token as presented, read but not yet checked against the store.
#[derive(Debug, Clone, Copy)]
pub struct PresentedRefresh {
    /// The session it names.
    pub session: Principal,
    /// How many times the session's refresh token had been rotated when this one was issued.
    pub generation: i32,
    /// Its hash, compared with the one the store keeps.
    pub hash: RefreshHash,
    /// Whether this service issued it (its tag checks out under the current or the previous secret). Only an
    /// authentic token that was already spent is a replay: anything else could be forged by whoever knows the
    /// session's id, and must not end the session.
    pub authentic: bool,
}

/// What a refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was the session's current one: it is spent now, and the new one is current.
    Rotated,
    /// The token was one the session had already spent: someone else has a copy, and the session has ended.
    Replayed,
    /// No live session has this token: unknown, forged, expired, or its session already ended.
    Refused,
}
