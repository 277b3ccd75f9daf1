-- How many tasks each user has, per status, kept by triggers, so that GET /tasks answers X-Total-Count with a
-- lookup instead of a count (counting a user's tasks takes time in proportion to them, and the contract counts
-- before paging on every list). Triggers rather than application code, so the counts follow every write to
-- tasks, whoever makes it.
--
-- Each (user, status) count is kept in up to 16 stripes, summed when read. A single row per count would be
-- locked by every write of that user until its commit, so one user's writes would run one at a time, each
-- waiting for the previous one's WAL flush (measured: creates for one user stalled at about 3 000 a second on
-- this machine, whatever the pool size). A transaction writes the stripe of its own backend, so concurrent
-- writers from different connections take different rows. A stripe may go below zero; the sum cannot.
CREATE TABLE task_counts (
    user_id BIGINT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status  TEXT     NOT NULL,
    stripe  SMALLINT NOT NULL,
    n       BIGINT   NOT NULL,
    PRIMARY KEY (user_id, status, stripe)
);

-- The stripe this backend writes.
CREATE FUNCTION task_counts_stripe() RETURNS smallint LANGUAGE sql STABLE AS $$
    SELECT (pg_backend_pid() % 16)::smallint
$$;

-- Counting in and out are upserts: two first tasks of one stripe written at once cannot both find the row
-- missing and both insert it, as "update, else insert" would let them.
CREATE FUNCTION task_counts_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_counts (user_id, status, stripe, n)
        VALUES (NEW.user_id, NEW.status, task_counts_stripe(), 1)
        ON CONFLICT (user_id, status, stripe) DO UPDATE SET n = task_counts.n + 1;
    RETURN NULL;
END
$$;

-- When the task goes with its user (ON DELETE CASCADE), the user's counts are already gone, and a row counted
-- out for a user that no longer exists would break the foreign key: nothing is counted then.
CREATE FUNCTION task_counts_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_counts (user_id, status, stripe, n)
        SELECT OLD.user_id, OLD.status, task_counts_stripe(), -1
        WHERE EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)
        ON CONFLICT (user_id, status, stripe) DO UPDATE SET n = task_counts.n - 1;
    RETURN NULL;
END
$$;

-- A task that changes status moves between two rows of the backend's stripe, both changed by one statement
-- that takes them in key order whichever way the task moves: two moves in opposite directions on one stripe
-- wait for each other instead of deadlocking.
CREATE FUNCTION task_counts_after_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_counts (user_id, status, stripe, n)
        SELECT * FROM (VALUES (OLD.user_id, OLD.status, task_counts_stripe(), -1::bigint),
                              (NEW.user_id, NEW.status, task_counts_stripe(), 1::bigint))
            AS moved (user_id, status, stripe, n)
        ORDER BY user_id, status
        ON CONFLICT (user_id, status, stripe) DO UPDATE SET n = task_counts.n + excluded.n;
    RETURN NULL;
END
$$;

CREATE TRIGGER task_counts_after_insert AFTER INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION task_counts_after_insert();
CREATE TRIGGER task_counts_after_delete AFTER DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION task_counts_after_delete();
CREATE TRIGGER task_counts_after_move AFTER UPDATE OF user_id, status ON tasks
    FOR EACH ROW WHEN (OLD.user_id <> NEW.user_id OR OLD.status <> NEW.status)
    EXECUTE FUNCTION task_counts_after_move();

-- Serves GET /tasks?status=... newest first straight from the index, however the user's tasks split between
-- the two statuses.
CREATE INDEX tasks_user_status_newest ON tasks (user_id, status, id DESC);
