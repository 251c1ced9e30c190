-- One row per person per movie second (smoothed scores, intensity above the person's baseline). Kept.
-- event_id = person_key || '|' || movie_second (deterministic; the sink skips keys already stored).
CREATE TABLE IF NOT EXISTS viewer_seconds
(
    event_id String,
    screening_id String,
    theater_id String,
    camera_id String,
    seat_id String,
    person_key String,
    movie_second UInt32,
    captured_us UInt64,
    captured_at DateTime,
    frames UInt16,
    visible UInt8,
    attending UInt8,
    baseline_ready UInt8,
    dominant String,
    p_neutral Float32,
    p_happiness Float32,
    p_surprise Float32,
    p_sadness Float32,
    p_anger Float32,
    p_disgust Float32,
    p_fear Float32,
    p_contempt Float32,
    i_neutral Float32,
    i_happiness Float32,
    i_surprise Float32,
    i_sadness Float32,
    i_anger Float32,
    i_disgust Float32,
    i_fear Float32,
    i_contempt Float32,
    intensity Float32,
    valence Float32,
    arousal Float32,
    model_version String,
    inserted_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
ORDER BY (screening_id, movie_second, person_key);
