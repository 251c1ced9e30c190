-- Raw per-frame emotion scores: one row per scored face frame (written by the sink).
-- Expires after 30 days: TTL where the server supports it, else `moviemotion purge --expired`.
CREATE TABLE IF NOT EXISTS frame_scores
(
    screening_id String,
    theater_id String,
    camera_id String,
    seat_id String,
    person_key String,
    track_id UInt32,
    frame_id UInt64,
    captured_us UInt64,
    captured_at DateTime,
    movie_ts Float64,
    p_neutral Float32,
    p_happiness Float32,
    p_surprise Float32,
    p_sadness Float32,
    p_anger Float32,
    p_disgust Float32,
    p_fear Float32,
    p_contempt Float32,
    yaw Float32,
    pitch Float32,
    detection_score Float32,
    model_version String,
    inserted_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(captured_at)
ORDER BY (screening_id, person_key, frame_id)
-- requires: ttl
TTL captured_at + INTERVAL 30 DAY
-- end
;
