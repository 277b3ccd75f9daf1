-- Tasks, each owned by one user.
--
-- The primary key leads with the owner: every statement on tasks names its owner, and a table distributed by
-- user later (Citus and the like) needs the distribution column in every unique constraint. The same index,
-- read backwards, serves GET /tasks (one user's tasks, newest first).
-- ON DELETE CASCADE: a removed user leaves no orphaned tasks behind.
-- Lengths and the absence of NUL (which PostgreSQL text cannot hold) are enforced by the domain types before
-- any write, identically for both backends.
CREATE TABLE tasks (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id     BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       TEXT        NOT NULL,
    description TEXT        NOT NULL DEFAULT '',
    status      TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed')),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, id)
);
