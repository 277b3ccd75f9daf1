-- Sessions (API.md, "Sessions"): each password login starts one; its access tokens carry its id (`sid`), and
-- every protected request checks that the session is live in the statement that serves it. Ending a session
-- deletes its row, so the check is whether the row exists and has not expired.
--
-- Keyed by the user, like tasks: every statement names the user, and a user's sessions go with them.
-- `refresh_hash` is the hash of the one refresh token that can be used now (the token itself is never stored);
-- `generation` counts its rotations, so a token spent earlier is recognised when it comes back (a replay ends
-- the session). `expires_at` is when the refresh token expires, and with it the session; each refresh moves it.
CREATE TABLE sessions (
    user_id      BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id           BIGINT      NOT NULL,
    generation   INTEGER     NOT NULL,
    refresh_hash BYTEA       NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, id)
);

-- Finds expired sessions to prune, oldest first.
CREATE INDEX sessions_expires_at ON sessions (expires_at);
