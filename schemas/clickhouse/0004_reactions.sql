-- Baseline-relative reactions (docs/emotion-metrics.md). `reaction` is the non-neutral emotion a viewer shows
-- above their own neutral baseline, or 'neutral' for no reaction. Rows stored before this migration hold '' (not
-- measured: the rule needs the viewer's second-by-second history, which the stored intensities alone do not carry).
-- One ALTER per table, so each applies whole or not at all (18.16 has no ADD COLUMN IF NOT EXISTS).
ALTER TABLE viewer_seconds ADD COLUMN reaction String DEFAULT '' AFTER dominant;

-- Audience counts by reaction, beside the dominant-label counts (n_*): attending viewers per reaction, and
-- `reacting` = attending viewers showing any reaction. Rows summed before this migration hold 0.
ALTER TABLE audience_seconds
    ADD COLUMN reacting UInt32 AFTER n_contempt,
    ADD COLUMN r_neutral UInt32 AFTER reacting,
    ADD COLUMN r_happiness UInt32 AFTER r_neutral,
    ADD COLUMN r_surprise UInt32 AFTER r_happiness,
    ADD COLUMN r_sadness UInt32 AFTER r_surprise,
    ADD COLUMN r_anger UInt32 AFTER r_sadness,
    ADD COLUMN r_disgust UInt32 AFTER r_anger,
    ADD COLUMN r_fear UInt32 AFTER r_disgust,
    ADD COLUMN r_contempt UInt32 AFTER r_fear;

-- The view is replaced to fill the new columns (same row-level shape as 0003: see its comment on 18.16 aliases).
DROP TABLE IF EXISTS audience_seconds_mv;
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
    toUInt32(attending = 1 AND reaction != 'neutral' AND reaction != '') AS reacting,
    toUInt32(attending = 1 AND reaction = 'neutral') AS r_neutral,
    toUInt32(attending = 1 AND reaction = 'happiness') AS r_happiness,
    toUInt32(attending = 1 AND reaction = 'surprise') AS r_surprise,
    toUInt32(attending = 1 AND reaction = 'sadness') AS r_sadness,
    toUInt32(attending = 1 AND reaction = 'anger') AS r_anger,
    toUInt32(attending = 1 AND reaction = 'disgust') AS r_disgust,
    toUInt32(attending = 1 AND reaction = 'fear') AS r_fear,
    toUInt32(attending = 1 AND reaction = 'contempt') AS r_contempt,
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
