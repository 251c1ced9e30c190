-- Audience totals per movie second, summed lazily by SummingMergeTree: always read them with
-- sum(...) ... GROUP BY screening_id, movie_second; shares/means are computed at query time.
CREATE TABLE IF NOT EXISTS audience_seconds
(
    screening_id String,
    movie_second UInt32,
    viewers UInt32,
    attending UInt32,
    n_neutral UInt32,
    n_happiness UInt32,
    n_surprise UInt32,
    n_sadness UInt32,
    n_anger UInt32,
    n_disgust UInt32,
    n_fear UInt32,
    n_contempt UInt32,
    sum_i_neutral Float64,
    sum_i_happiness Float64,
    sum_i_surprise Float64,
    sum_i_sadness Float64,
    sum_i_anger Float64,
    sum_i_disgust Float64,
    sum_i_fear Float64,
    sum_i_contempt Float64,
    sum_intensity Float64
)
ENGINE = SummingMergeTree()
ORDER BY (screening_id, movie_second);

-- One audience row per viewer row (no GROUP BY): 18.16 substitutes a SELECT alias into every expression that
-- names the same identifier, so `sum(attending) AS attending` would nest aggregates. Row-level, the alias
-- `toUInt32(attending) AS attending` equals the column, so the substitution is harmless. SummingMergeTree
-- collapses the rows (on insert where optimize_on_insert exists, else on merges).
CREATE MATERIALIZED VIEW IF NOT EXISTS audience_seconds_mv TO audience_seconds AS
SELECT
    screening_id,
    movie_second,
    toUInt32(visible) AS viewers,
    toUInt32(attending) AS attending,
    toUInt32(attending = 1 AND dominant = 'neutral') AS n_neutral,
    toUInt32(attending = 1 AND dominant = 'happiness') AS n_happiness,
    toUInt32(attending = 1 AND dominant = 'surprise') AS n_surprise,
    toUInt32(attending = 1 AND dominant = 'sadness') AS n_sadness,
    toUInt32(attending = 1 AND dominant = 'anger') AS n_anger,
    toUInt32(attending = 1 AND dominant = 'disgust') AS n_disgust,
    toUInt32(attending = 1 AND dominant = 'fear') AS n_fear,
    toUInt32(attending = 1 AND dominant = 'contempt') AS n_contempt,
    if(attending = 1, toFloat64(i_neutral), 0.) AS sum_i_neutral,
    if(attending = 1, toFloat64(i_happiness), 0.) AS sum_i_happiness,
    if(attending = 1, toFloat64(i_surprise), 0.) AS sum_i_surprise,
    if(attending = 1, toFloat64(i_sadness), 0.) AS sum_i_sadness,
    if(attending = 1, toFloat64(i_anger), 0.) AS sum_i_anger,
    if(attending = 1, toFloat64(i_disgust), 0.) AS sum_i_disgust,
    if(attending = 1, toFloat64(i_fear), 0.) AS sum_i_fear,
    if(attending = 1, toFloat64(i_contempt), 0.) AS sum_i_contempt,
    if(attending = 1, toFloat64(intensity), 0.) AS sum_intensity
FROM viewer_seconds;
