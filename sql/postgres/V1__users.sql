-- Accounts. Passwords are stored only as Argon2id PHC strings.
--
-- IDENTITY: ids come from a sequence and are never handed out twice, so a token issued to a user who is later
-- removed can never authenticate whoever would otherwise have inherited the id. BIGINT: every id the API
-- accepts (up to 2^63 - 1) can be stored.
-- Usernames are unique ignoring case: the unique index on lower(username) decides, so signup relies on the
-- constraint alone (no SELECT first, no race), and every lookup by name goes through the same expression.
-- Usernames are ASCII by rule, where lower() folds exactly what SQLite's NOCASE folds.
CREATE TABLE users (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT        NOT NULL,
    password_hash TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX users_username_lower ON users (lower(username));
