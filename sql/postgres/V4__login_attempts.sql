-- The login rate limit (API.md's LOGIN_RATE_LIMIT), shared by every process on this database: a client gains
-- nothing by spreading its guesses over replicas, or by waiting for one to restart.
--
-- One row per leaky bucket: `level` attempts counted as of `at`, draining `capacity` per minute. Keys are
-- fixed-size keyed hashes (of a client address, or of an address and a lowercased username) made by the
-- service, so no name or address sent reaches this table. SQLite keeps the same buckets in the process's memory.
--
-- Storage stays bounded whatever is sent: a row is written only for an attempt that was counted, and every
-- counted attempt costs the service a password hash, so rows appear no faster than the service can hash; a row
-- idle for a minute is empty (it drains its capacity per minute and never holds more), and each counted attempt
-- removes up to 16 such rows, eight times as many as it can add.
CREATE TABLE login_attempts (
    key      BYTEA            PRIMARY KEY,
    level    DOUBLE PRECISION NOT NULL,
    capacity DOUBLE PRECISION NOT NULL,
    at       TIMESTAMPTZ      NOT NULL
);

-- Finds the idle rows to prune oldest first.
CREATE INDEX login_attempts_at ON login_attempts (at);

-- The level of a bucket at `now`, drained since its last attempt.
CREATE FUNCTION login_attempts_level(level DOUBLE PRECISION, capacity DOUBLE PRECISION, at TIMESTAMPTZ,
                                     now TIMESTAMPTZ)
    RETURNS DOUBLE PRECISION LANGUAGE sql IMMUTABLE AS $$
    SELECT GREATEST(level - EXTRACT(EPOCH FROM (now - at))::DOUBLE PRECISION * capacity / 60, 0)
$$;

-- Counts one login attempt against every bucket in `keys` (each with its capacity), all or none: the answer is
-- 0 when it was counted, else the seconds to wait until every bucket has room. One call, one round trip.
--
-- The buckets that exist are locked in key order first, so concurrent attempts on one bucket are counted one
-- after another and none slips past a full bucket; deadlocks cannot arise, since every caller locks in the same
-- order and the pruning at the end never waits for a lock. A bucket that did not exist is created by an upsert
-- that checks the level again, in case a concurrent attempt created it meanwhile; refused there, the attempt
-- still counted in the other buckets, which errs towards refusing.
CREATE FUNCTION login_attempt(keys BYTEA[], capacities DOUBLE PRECISION[]) RETURNS DOUBLE PRECISION
    LANGUAGE plpgsql AS $$
DECLARE
    now     TIMESTAMPTZ := clock_timestamp();
    wait    DOUBLE PRECISION;
    counted INTEGER;
BEGIN
    SELECT max((login_attempts_level(a.level, a.capacity, a.at, now) - (a.capacity - 1)) * 60 / a.capacity)
        INTO wait
        FROM (SELECT * FROM login_attempts WHERE key = ANY (keys) ORDER BY key FOR UPDATE) AS a;
    IF wait > 0 THEN
        RETURN wait;
    END IF;

    WITH counting AS (
        INSERT INTO login_attempts AS a (key, level, capacity, at)
            SELECT k.key, 1, k.capacity, now FROM unnest(keys, capacities) AS k (key, capacity) ORDER BY k.key
            ON CONFLICT (key) DO UPDATE
                SET level = login_attempts_level(a.level, a.capacity, a.at, now) + 1,
                    capacity = excluded.capacity,
                    at = now
                WHERE login_attempts_level(a.level, a.capacity, a.at, now) <= a.capacity - 1
            RETURNING 1
    )
    SELECT count(*) INTO counted FROM counting;

    DELETE FROM login_attempts WHERE key IN (
        SELECT key FROM login_attempts WHERE at < now - INTERVAL '1 minute'
            ORDER BY at LIMIT 16 FOR UPDATE SKIP LOCKED);

    IF counted < cardinality(keys) THEN
        RETURN (SELECT 60 / min(c) FROM unnest(capacities) AS c);
    END IF;
    RETURN 0;
END
$$;

-- A login that succeeded: its attempt does not count. The bucket of `pair` (this username from this address)
-- empties; the one of `address` gives one attempt back.
CREATE FUNCTION login_succeeded(pair BYTEA, address BYTEA) RETURNS VOID LANGUAGE sql AS $$
    DELETE FROM login_attempts WHERE key = pair;
    UPDATE login_attempts SET level = GREATEST(level - 1, 0) WHERE key = address;
$$;
