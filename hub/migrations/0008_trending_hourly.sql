-- Trending's hourly roll-up (hub/src/trending.rs, store in
-- hub/src/store/trending.rs). For every UTC hour (hours since the epoch,
-- `timestamp_ms / 3600000`), agent, probe and outcome: the calls, how many
-- had a duration (`timed`), their total and largest duration, and how many
-- fell in each latency bucket (`b00` … `b30`: bucket i holds durations up to
-- `BUCKETS_MS[i]` and above the bucket before, `b30` the longer ones; calls
-- without a duration are in no bucket). A trend over a window then reads
-- its whole hours here — a few rows per agent, probe and hour instead of
-- one per call — and only the part-hours at its edges from `probe_calls`;
-- the result is the same (property test
-- `store::trending::rollup::the_roll_up_answers_exactly_as_the_raw_rows`).
--
-- Derived data, like `probe_calls`: the chain stays the record and these
-- rows are never the evidence. The trigger below keeps them in the
-- transaction that inserts the `probe_calls` row (itself in the transaction
-- that appends the audit entry), whoever appends it; nothing else writes
-- them, and the chain is append-only, so nothing ever takes a call back.
-- They are back-filled from `probe_calls` here.
--
-- Only calls with an agent and a probe (trending leaves the others out:
-- they belong to no target) and a timestamp at or after the epoch (so an
-- hour is exactly `[hour × 3600000, (hour + 1) × 3600000)`) are rolled up;
-- a window before 1970 is read from `probe_calls` alone.
--
-- The bucket bounds are `BUCKETS_MS` in hub/src/store/trending.rs, spelled
-- out here twice (trigger and back-fill); changing them needs a migration
-- that rebuilds this table (test `store::trending::rollup::the_migration_uses_the_bucket_bounds`).
CREATE TABLE probe_calls_hourly (
    hour    INTEGER NOT NULL,
    agent   TEXT NOT NULL,
    probe   TEXT NOT NULL,
    outcome TEXT NOT NULL,
    calls   INTEGER NOT NULL,
    timed   INTEGER NOT NULL,
    sum_ms  INTEGER NOT NULL,
    max_ms  INTEGER,
    b00 INTEGER NOT NULL DEFAULT 0,
    b01 INTEGER NOT NULL DEFAULT 0,
    b02 INTEGER NOT NULL DEFAULT 0,
    b03 INTEGER NOT NULL DEFAULT 0,
    b04 INTEGER NOT NULL DEFAULT 0,
    b05 INTEGER NOT NULL DEFAULT 0,
    b06 INTEGER NOT NULL DEFAULT 0,
    b07 INTEGER NOT NULL DEFAULT 0,
    b08 INTEGER NOT NULL DEFAULT 0,
    b09 INTEGER NOT NULL DEFAULT 0,
    b10 INTEGER NOT NULL DEFAULT 0,
    b11 INTEGER NOT NULL DEFAULT 0,
    b12 INTEGER NOT NULL DEFAULT 0,
    b13 INTEGER NOT NULL DEFAULT 0,
    b14 INTEGER NOT NULL DEFAULT 0,
    b15 INTEGER NOT NULL DEFAULT 0,
    b16 INTEGER NOT NULL DEFAULT 0,
    b17 INTEGER NOT NULL DEFAULT 0,
    b18 INTEGER NOT NULL DEFAULT 0,
    b19 INTEGER NOT NULL DEFAULT 0,
    b20 INTEGER NOT NULL DEFAULT 0,
    b21 INTEGER NOT NULL DEFAULT 0,
    b22 INTEGER NOT NULL DEFAULT 0,
    b23 INTEGER NOT NULL DEFAULT 0,
    b24 INTEGER NOT NULL DEFAULT 0,
    b25 INTEGER NOT NULL DEFAULT 0,
    b26 INTEGER NOT NULL DEFAULT 0,
    b27 INTEGER NOT NULL DEFAULT 0,
    b28 INTEGER NOT NULL DEFAULT 0,
    b29 INTEGER NOT NULL DEFAULT 0,
    b30 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, agent, probe, outcome)
) WITHOUT ROWID;

INSERT INTO probe_calls_hourly (
    hour, agent, probe, outcome, calls, timed, sum_ms, max_ms, b00, b01,
    b02, b03, b04, b05, b06, b07, b08, b09, b10, b11, b12, b13, b14, b15,
    b16, b17, b18, b19, b20, b21, b22, b23, b24, b25, b26, b27, b28, b29,
    b30)
SELECT timestamp_ms / 3600000, agent, probe, outcome, count(*), count(d),
       coalesce(sum(d), 0), max(d),
       sum(b = 0), sum(b = 1), sum(b = 2), sum(b = 3),
       sum(b = 4), sum(b = 5), sum(b = 6), sum(b = 7),
       sum(b = 8), sum(b = 9), sum(b = 10), sum(b = 11),
       sum(b = 12), sum(b = 13), sum(b = 14), sum(b = 15),
       sum(b = 16), sum(b = 17), sum(b = 18), sum(b = 19),
       sum(b = 20), sum(b = 21), sum(b = 22), sum(b = 23),
       sum(b = 24), sum(b = 25), sum(b = 26), sum(b = 27),
       sum(b = 28), sum(b = 29), sum(b = 30)
FROM (
    SELECT timestamp_ms, agent, probe, outcome, duration_ms AS d,
           CASE WHEN duration_ms IS NULL THEN -1 WHEN duration_ms <= 1 THEN 0
            WHEN duration_ms <= 2 THEN 1 WHEN duration_ms <= 3 THEN 2
            WHEN duration_ms <= 5 THEN 3 WHEN duration_ms <= 7 THEN 4
            WHEN duration_ms <= 10 THEN 5 WHEN duration_ms <= 15 THEN 6
            WHEN duration_ms <= 20 THEN 7 WHEN duration_ms <= 30 THEN 8
            WHEN duration_ms <= 50 THEN 9 WHEN duration_ms <= 70 THEN 10
            WHEN duration_ms <= 100 THEN 11 WHEN duration_ms <= 150 THEN 12
            WHEN duration_ms <= 200 THEN 13 WHEN duration_ms <= 300 THEN 14
            WHEN duration_ms <= 500 THEN 15 WHEN duration_ms <= 700 THEN 16
            WHEN duration_ms <= 1000 THEN 17 WHEN duration_ms <= 1500 THEN 18
            WHEN duration_ms <= 2000 THEN 19 WHEN duration_ms <= 3000 THEN 20
            WHEN duration_ms <= 5000 THEN 21 WHEN duration_ms <= 7000 THEN 22
            WHEN duration_ms <= 10000 THEN 23 WHEN duration_ms <= 15000 THEN 24
            WHEN duration_ms <= 20000 THEN 25 WHEN duration_ms <= 30000 THEN 26
            WHEN duration_ms <= 60000 THEN 27 WHEN duration_ms <= 120000 THEN 28
            WHEN duration_ms <= 300000 THEN 29 ELSE 30 END AS b
    FROM probe_calls
    WHERE agent IS NOT NULL AND probe IS NOT NULL AND timestamp_ms >= 0
)
GROUP BY timestamp_ms / 3600000, agent, probe, outcome;

CREATE TRIGGER probe_calls_hourly_from_probe_calls AFTER INSERT ON probe_calls
WHEN NEW.agent IS NOT NULL AND NEW.probe IS NOT NULL AND NEW.timestamp_ms >= 0
BEGIN
    INSERT INTO probe_calls_hourly (
    hour, agent, probe, outcome, calls, timed, sum_ms, max_ms, b00, b01,
    b02, b03, b04, b05, b06, b07, b08, b09, b10, b11, b12, b13, b14, b15,
    b16, b17, b18, b19, b20, b21, b22, b23, b24, b25, b26, b27, b28, b29,
    b30)
    SELECT NEW.timestamp_ms / 3600000, NEW.agent, NEW.probe, NEW.outcome, 1,
           d IS NOT NULL, coalesce(d, 0), d,
           b = 0, b = 1, b = 2, b = 3, b = 4, b = 5, b = 6, b = 7, b = 8,
           b = 9, b = 10, b = 11, b = 12, b = 13, b = 14, b = 15, b = 16,
           b = 17, b = 18, b = 19, b = 20, b = 21, b = 22, b = 23, b = 24,
           b = 25, b = 26, b = 27, b = 28, b = 29, b = 30
    FROM (SELECT d, CASE WHEN d IS NULL THEN -1 WHEN d <= 1 THEN 0 WHEN d <= 2 THEN 1
            WHEN d <= 3 THEN 2 WHEN d <= 5 THEN 3 WHEN d <= 7 THEN 4
            WHEN d <= 10 THEN 5 WHEN d <= 15 THEN 6 WHEN d <= 20 THEN 7
            WHEN d <= 30 THEN 8 WHEN d <= 50 THEN 9 WHEN d <= 70 THEN 10
            WHEN d <= 100 THEN 11 WHEN d <= 150 THEN 12 WHEN d <= 200 THEN 13
            WHEN d <= 300 THEN 14 WHEN d <= 500 THEN 15 WHEN d <= 700 THEN 16
            WHEN d <= 1000 THEN 17 WHEN d <= 1500 THEN 18 WHEN d <= 2000 THEN 19
            WHEN d <= 3000 THEN 20 WHEN d <= 5000 THEN 21 WHEN d <= 7000 THEN 22
            WHEN d <= 10000 THEN 23 WHEN d <= 15000 THEN 24
            WHEN d <= 20000 THEN 25 WHEN d <= 30000 THEN 26
            WHEN d <= 60000 THEN 27 WHEN d <= 120000 THEN 28
            WHEN d <= 300000 THEN 29 ELSE 30 END AS b
          FROM (SELECT NEW.duration_ms AS d))
    WHERE true
    ON CONFLICT (hour, agent, probe, outcome) DO UPDATE SET
        calls = calls + 1,
        timed = timed + excluded.timed,
        sum_ms = sum_ms + excluded.sum_ms,
        max_ms = coalesce(max(max_ms, excluded.max_ms), max_ms, excluded.max_ms),
        b00 = b00 + excluded.b00, b01 = b01 + excluded.b01,
        b02 = b02 + excluded.b02, b03 = b03 + excluded.b03,
        b04 = b04 + excluded.b04, b05 = b05 + excluded.b05,
        b06 = b06 + excluded.b06, b07 = b07 + excluded.b07,
        b08 = b08 + excluded.b08, b09 = b09 + excluded.b09,
        b10 = b10 + excluded.b10, b11 = b11 + excluded.b11,
        b12 = b12 + excluded.b12, b13 = b13 + excluded.b13,
        b14 = b14 + excluded.b14, b15 = b15 + excluded.b15,
        b16 = b16 + excluded.b16, b17 = b17 + excluded.b17,
        b18 = b18 + excluded.b18, b19 = b19 + excluded.b19,
        b20 = b20 + excluded.b20, b21 = b21 + excluded.b21,
        b22 = b22 + excluded.b22, b23 = b23 + excluded.b23,
        b24 = b24 + excluded.b24, b25 = b25 + excluded.b25,
        b26 = b26 + excluded.b26, b27 = b27 + excluded.b27,
        b28 = b28 + excluded.b28, b29 = b29 + excluded.b29,
        b30 = b30 + excluded.b30;
END;
