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

-- Takes, in key order, a transaction-scoped advisory lock for each of `keys`. Every function here that changes
-- buckets takes those of the keys it touches first: calls that share a bucket then run one after the other
-- whatever each finds or creates on the way, and, all taking them in one order, can never wait for each other
-- in a circle. (Row locks alone cannot promise that: a bucket another call creates or removes meanwhile is not
-- there to be locked in order.) The pruning below only takes rows no one has locked, and never waits.
CREATE FUNCTION login_attempts_lock(keys BYTEA[]) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    k BYTEA;
BEGIN
    FOR k IN SELECT DISTINCT u FROM unnest(keys) AS u ORDER BY u LOOP
        PERFORM pg_advisory_xact_lock(('x' || encode(substring(k FROM 1 FOR 8), 'hex'))::bit(64)::bigint);
    END LOOP;
END
$$;

-- Counts one login attempt against every bucket in `keys` (each with its capacity), all or none: the answer is
-- 0 when it was counted, else the seconds to wait until every bucket has room. One call, one round trip.
--
-- Calls on one bucket run one after another (login_attempts_lock), so none slips past a full bucket. A refused
-- attempt writes nothing: rows appear only for counted attempts.
CREATE FUNCTION login_attempt(keys BYTEA[], capacities DOUBLE PRECISION[]) RETURNS DOUBLE PRECISION
    LANGUAGE plpgsql AS $$
DECLARE
    now  TIMESTAMPTZ;
    wait DOUBLE PRECISION;
BEGIN
    PERFORM login_attempts_lock(keys);
    -- After the wait for the lock, so that an attempt is counted at the time it is counted.
    now := clock_timestamp();
    SELECT max((login_attempts_level(a.level, a.capacity, a.at, now) - (a.capacity - 1)) * 60 / a.capacity)
        INTO wait
        FROM login_attempts AS a WHERE key = ANY (keys);
    IF wait > 0 THEN
        RETURN wait;
    END IF;

    INSERT INTO login_attempts AS a (key, level, capacity, at)
            SELECT k.key, 1, k.capacity, now FROM unnest(keys, capacities) AS k (key, capacity)
        ON CONFLICT (key) DO UPDATE
            SET level = login_attempts_level(a.level, a.capacity, a.at, now) + 1,
                capacity = excluded.capacity,
                at = now;

    DELETE FROM login_attempts WHERE key IN (
        SELECT key FROM login_attempts WHERE at < now - INTERVAL '1 minute'
            ORDER BY at LIMIT 16 FOR UPDATE SKIP LOCKED);

    RETURN 0;
END
$$;

-- A login that succeeded: its attempt does not count. The bucket of `pair` (this username from this address)
-- empties; the one of `address` gives one attempt back.
CREATE FUNCTION login_succeeded(pair BYTEA, address BYTEA) RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    PERFORM login_attempts_lock(ARRAY[pair, address]);
    DELETE FROM login_attempts WHERE key = pair;
    UPDATE login_attempts SET level = GREATEST(level - 1, 0) WHERE key = address;
END
$$;
