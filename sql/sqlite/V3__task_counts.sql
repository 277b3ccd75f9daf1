-- How many tasks each user has, per status, kept by triggers, so that GET /tasks answers X-Total-Count with a
-- lookup instead of a count: counting a user's index entries takes time in proportion to the user's tasks
-- (milliseconds at 100 000), and the contract counts before paging on every list. Triggers rather than
-- application code, so the counts follow every write to tasks, whoever makes it.
CREATE TABLE task_counts (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status  TEXT    NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (user_id, status)
) WITHOUT ROWID;

INSERT INTO task_counts (user_id, status, n)
    SELECT user_id, status, count(*) FROM tasks GROUP BY user_id, status;

CREATE TRIGGER task_counts_after_insert AFTER INSERT ON tasks
BEGIN
    INSERT INTO task_counts (user_id, status, n) VALUES (NEW.user_id, NEW.status, 1)
        ON CONFLICT (user_id, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER task_counts_after_delete AFTER DELETE ON tasks
BEGIN
    UPDATE task_counts SET n = n - 1 WHERE user_id = OLD.user_id AND status = OLD.status;
END;

CREATE TRIGGER task_counts_after_move AFTER UPDATE OF user_id, status ON tasks
    WHEN OLD.user_id <> NEW.user_id OR OLD.status <> NEW.status
BEGIN
    UPDATE task_counts SET n = n - 1 WHERE user_id = OLD.user_id AND status = OLD.status;
    INSERT INTO task_counts (user_id, status, n) VALUES (NEW.user_id, NEW.status, 1)
        ON CONFLICT (user_id, status) DO UPDATE SET n = n + 1;
END;

-- Serves GET /tasks?status=... newest first straight from the index, however the user's tasks split between
-- the two statuses (tasks_user_newest would have to skip every task of the other status).
CREATE INDEX tasks_user_status_newest ON tasks (user_id, status, id DESC);
