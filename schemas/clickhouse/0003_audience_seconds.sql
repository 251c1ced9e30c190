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

-- Everything but `attending`: 18.16 substitutes the alias `attending` into every other expression that
-- reads the column of the same name, so that one sum comes from audience_seconds_attending_mv below.
CREATE MATERIALIZED VIEW IF NOT EXISTS audience_seconds_mv TO audience_seconds AS
SELECT
    screening_id,
    movie_second,
    toUInt32(sum(visible)) AS viewers,
    toUInt32(sum(attending = 1 AND dominant = 'neutral')) AS n_neutral,
    toUInt32(sum(attending = 1 AND dominant = 'happiness')) AS n_happiness,
    toUInt32(sum(attending = 1 AND dominant = 'surprise')) AS n_surprise,
    toUInt32(sum(attending = 1 AND dominant = 'sadness')) AS n_sadness,
    toUInt32(sum(attending = 1 AND dominant = 'anger')) AS n_anger,
    toUInt32(sum(attending = 1 AND dominant = 'disgust')) AS n_disgust,
    toUInt32(sum(attending = 1 AND dominant = 'fear')) AS n_fear,
    toUInt32(sum(attending = 1 AND dominant = 'contempt')) AS n_contempt,
    sum(if(attending = 1, toFloat64(i_neutral), 0.)) AS sum_i_neutral,
    sum(if(attending = 1, toFloat64(i_happiness), 0.)) AS sum_i_happiness,
    sum(if(attending = 1, toFloat64(i_surprise), 0.)) AS sum_i_surprise,
    sum(if(attending = 1, toFloat64(i_sadness), 0.)) AS sum_i_sadness,
    sum(if(attending = 1, toFloat64(i_anger), 0.)) AS sum_i_anger,
    sum(if(attending = 1, toFloat64(i_disgust), 0.)) AS sum_i_disgust,
    sum(if(attending = 1, toFloat64(i_fear), 0.)) AS sum_i_fear,
    sum(if(attending = 1, toFloat64(i_contempt), 0.)) AS sum_i_contempt,
    sum(if(attending = 1, toFloat64(intensity), 0.)) AS sum_intensity
FROM viewer_seconds
GROUP BY screening_id, movie_second;

CREATE MATERIALIZED VIEW IF NOT EXISTS audience_seconds_attending_mv TO audience_seconds AS
SELECT
    screening_id,
    movie_second,
    toUInt32(sum(attending)) AS attending
FROM viewer_seconds
GROUP BY screening_id, movie_second;
