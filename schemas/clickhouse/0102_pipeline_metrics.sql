-- Pipeline health written by the workers (one row per metric sample): the Live screening dashboard reads it.
-- Metric names: see moviemotion/analytics/pipeline_metrics.py. Samples expire after 14 days where TTL exists
-- (18.16: `ALTER TABLE pipeline_metrics DELETE WHERE ts < ...`, or drop old partitions by day).
CREATE TABLE IF NOT EXISTS pipeline_metrics (
    ts DateTime,
    component String,
    instance String,
    metric String,
    value Float64
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (metric, component, ts)
-- requires: ttl
TTL ts + INTERVAL 14 DAY
-- end
;
