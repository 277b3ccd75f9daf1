-- How many tasks each user has, per status, kept by triggers, so that GET /tasks answers X-Total-Count with a
-- lookup instead of a count (counting a user's tasks takes time in proportion to them, and the contract counts
-- before paging on every list). Triggers rather than application code, so the counts follow every write to
-- tasks, whoever makes it.
CREATE TABLE task_counts (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status  TEXT   NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (user_id, status)
);

-- A new task counts in with an upsert: two first tasks of one status inserted at once cannot both find the row
-- missing and both insert it, as "update, else insert" would let them.
CREATE FUNCTION task_counts_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_counts (user_id, status, n) VALUES (NEW.user_id, NEW.status, 1)
        ON CONFLICT (user_id, status) DO UPDATE SET n = task_counts.n + 1;
    RETURN NULL;
END
$$;

CREATE FUNCTION task_counts_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE task_counts SET n = n - 1 WHERE user_id = OLD.user_id AND status = OLD.status;
    RETURN NULL;
END
$$;

-- A task that changes status moves between two rows. Both are changed by one UPDATE, which locks them in index
-- order whichever way the task moves: two tasks of one user moving in opposite directions at once then wait
-- for each other instead of deadlocking. The row moved into is made to exist first (DO NOTHING takes no lock).
CREATE FUNCTION task_counts_after_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.user_id = NEW.user_id THEN
        INSERT INTO task_counts (user_id, status, n) VALUES (NEW.user_id, NEW.status, 0)
            ON CONFLICT (user_id, status) DO NOTHING;
        UPDATE task_counts SET n = n + CASE WHEN status = NEW.status THEN 1 ELSE -1 END
            WHERE user_id = NEW.user_id AND status IN (OLD.status, NEW.status);
    ELSE
        UPDATE task_counts SET n = n - 1 WHERE user_id = OLD.user_id AND status = OLD.status;
        INSERT INTO task_counts (user_id, status, n) VALUES (NEW.user_id, NEW.status, 1)
            ON CONFLICT (user_id, status) DO UPDATE SET n = task_counts.n + 1;
    END IF;
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
