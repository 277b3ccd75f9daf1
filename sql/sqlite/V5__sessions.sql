-- Sessions (API.md, "Sessions"): each password login starts one; its access tokens carry its id (`sid`), and
-- every protected request checks that the session is live in the statement that serves it. Ending a session
-- deletes its row, so the check is whether the row exists and has not expired.
--
-- Keyed by the user, like tasks: every statement names the user, and a user's sessions go with them.
-- `refresh_hash` is the hash of the one refresh token that can be used now (the token itself is never stored);
-- `generation` counts its rotations, so a token spent earlier is recognised when it comes back (a replay ends
-- the session). `expires_at` (Unix seconds) is when the refresh token expires, and with it the session; each
-- refresh moves it. (V4 is PostgreSQL's shared login buckets; SQLite keeps those in memory.)
CREATE TABLE sessions (
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id           INTEGER NOT NULL,
    generation   INTEGER NOT NULL,
    refresh_hash BLOB    NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (user_id, id)
) WITHOUT ROWID;

-- Finds expired sessions to prune, oldest first.
CREATE INDEX sessions_expires_at ON sessions (expires_at);
