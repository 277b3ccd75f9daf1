-- Accounts. Passwords are stored only as Argon2id PHC strings.
--
-- AUTOINCREMENT: an id is never handed out twice, so a token issued to a user who is later removed can never
-- authenticate whoever would otherwise have inherited the id.
-- COLLATE NOCASE: usernames are unique ignoring case (API.md). The UNIQUE index and every lookup by username use
-- the column's collation, so signup relies on the constraint alone (no SELECT first, no race) and "Alice" logs
-- in as "alice". Usernames are ASCII by rule, and NOCASE folds exactly ASCII.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT    NOT NULL,
    created_at    TEXT    NOT NULL
);
