-- Tasks, each owned by one user.
--
-- ON DELETE CASCADE: a removed user leaves no orphaned tasks behind (foreign_keys is switched on for every
-- pooled connection, see src/db/mod.rs).
-- Lengths are enforced by the domain types before any write; they are not repeated here because SQLite's
-- length() stops counting at the first NUL, which a title may legitimately contain.
-- CHECK on status: the store itself refuses a value outside the contract's two.
CREATE TABLE tasks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    status      TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed')),
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);

-- Serves GET /tasks (one user's tasks, newest first) straight from the index, and every lookup by
-- (id, user_id) through the primary key. It also serves the foreign key's ON DELETE CASCADE.
CREATE INDEX tasks_user_newest ON tasks (user_id, id DESC);
