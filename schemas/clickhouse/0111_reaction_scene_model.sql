-- Scene aggregates by reaction (docs/emotion-metrics.md, "Audience metrics"), replacing the views of 0101 that
-- only knew the raw `dominant` label and intensities. Views hold no data: dropping and re-creating them is safe.
-- `measured` = attending viewers whose reaction was measured (reacting + r_neutral); rows stored before migration
-- 0004 have reaction '' and count in `attending` but not in `measured`: their reaction is unknown, never a reaction.
-- Views are dropped with DROP TABLE (18.16 has no DROP VIEW).
DROP TABLE IF EXISTS audience_totals;
DROP TABLE IF EXISTS scene_audience;
DROP TABLE IF EXISTS scene_viewer_peaks;

-- Per second audience totals (audience_seconds is a SummingMergeTree: always sum() ... GROUP BY). No derived
-- column here: on 18.16 `sum(reacting) AS reacting` would turn `reacting + r_neutral` into nested aggregates.
CREATE VIEW IF NOT EXISTS audience_totals AS
SELECT
    screening_id, movie_second,
    sum(viewers) AS viewers, sum(attending) AS attending,
    sum(n_neutral) AS n_neutral, sum(n_happiness) AS n_happiness, sum(n_surprise) AS n_surprise,
    sum(n_sadness) AS n_sadness, sum(n_anger) AS n_anger, sum(n_disgust) AS n_disgust,
    sum(n_fear) AS n_fear, sum(n_contempt) AS n_contempt,
    sum(reacting) AS reacting,
    sum(r_neutral) AS r_neutral, sum(r_happiness) AS r_happiness, sum(r_surprise) AS r_surprise,
    sum(r_sadness) AS r_sadness, sum(r_anger) AS r_anger, sum(r_disgust) AS r_disgust,
    sum(r_fear) AS r_fear, sum(r_contempt) AS r_contempt,
    sum(sum_i_neutral) AS sum_i_neutral, sum(sum_i_happiness) AS sum_i_happiness,
    sum(sum_i_surprise) AS sum_i_surprise, sum(sum_i_sadness) AS sum_i_sadness,
    sum(sum_i_anger) AS sum_i_anger, sum(sum_i_disgust) AS sum_i_disgust,
    sum(sum_i_fear) AS sum_i_fear, sum(sum_i_contempt) AS sum_i_contempt,
    sum(sum_intensity) AS sum_intensity
FROM audience_seconds
GROUP BY screening_id, movie_second;

-- Per screening and scene: mean intensity per emotion over attending viewer-seconds and the peak second (highest
-- mean overall intensity), as in 0101; and by reaction: `measured_seconds` (seconds with measured viewers),
-- `engagement` and `share_<emotion>`, the means over those seconds of reacting / measured and r_<emotion> / measured
-- (0 when the scene has no measured second: read measured_seconds before reading them).
CREATE VIEW IF NOT EXISTS scene_audience AS
SELECT
    screening_id, scene_no,
    any(title) AS title, any(start_s) AS start_s, any(end_s) AS end_s,
    count() AS seconds,
    sum(viewers) AS visible_seconds,
    sum(attending) AS attending_seconds,
    if(sum(attending) > 0, sum(sum_i_neutral) / sum(attending), 0) AS mean_i_neutral,
    if(sum(attending) > 0, sum(sum_i_happiness) / sum(attending), 0) AS mean_i_happiness,
    if(sum(attending) > 0, sum(sum_i_surprise) / sum(attending), 0) AS mean_i_surprise,
    if(sum(attending) > 0, sum(sum_i_sadness) / sum(attending), 0) AS mean_i_sadness,
    if(sum(attending) > 0, sum(sum_i_anger) / sum(attending), 0) AS mean_i_anger,
    if(sum(attending) > 0, sum(sum_i_disgust) / sum(attending), 0) AS mean_i_disgust,
    if(sum(attending) > 0, sum(sum_i_fear) / sum(attending), 0) AS mean_i_fear,
    if(sum(attending) > 0, sum(sum_i_contempt) / sum(attending), 0) AS mean_i_contempt,
    if(sum(attending) > 0, sum(sum_intensity) / sum(attending), 0) AS mean_intensity,
    argMax(movie_second, second_intensity) AS peak_second,
    max(second_intensity) AS peak_intensity,
    countIf(measured > 0) AS measured_seconds,
    sumIf(reacting / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS engagement,
    sumIf(r_neutral / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS share_neutral,
    sumIf(r_happiness / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS share_happiness,
    sumIf(r_surprise / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS share_surprise,
    sumIf(r_sadness / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS share_sadness,
    sumIf(r_anger / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS share_anger,
    sumIf(r_disgust / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS share_disgust,
    sumIf(r_fear / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS share_fear,
    sumIf(r_contempt / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS share_contempt
FROM (
    SELECT *, if(attending > 0, sum_intensity / attending, 0) AS second_intensity, reacting + r_neutral AS measured
    FROM audience_totals
) AS audience
ALL INNER JOIN (SELECT screening_id, movie_second, scene_no, title, start_s, end_s FROM screening_scene_seconds) AS scene
USING (screening_id, movie_second)
GROUP BY screening_id, scene_no;

-- Per screening, scene and viewer: the viewer's peak intensity per emotion while attending in that scene (as in
-- 0101), `measured_seconds` (attending seconds with a measured reaction) and `reactions`, the distinct reactions
-- they showed ('neutral' included; '' never). "Share of the audience that reacted" = viewers whose `reactions`
-- hold anything but 'neutral', over the viewers with measured_seconds > 0.
CREATE VIEW IF NOT EXISTS scene_viewer_peaks AS
SELECT
    screening_id, scene_no, person_key,
    any(seat_id) AS seat_id,
    max(i_neutral) AS peak_i_neutral, max(i_happiness) AS peak_i_happiness, max(i_surprise) AS peak_i_surprise,
    max(i_sadness) AS peak_i_sadness, max(i_anger) AS peak_i_anger, max(i_disgust) AS peak_i_disgust,
    max(i_fear) AS peak_i_fear, max(i_contempt) AS peak_i_contempt,
    max(intensity) AS peak_intensity,
    countIf(reaction != '') AS measured_seconds,
    groupUniqArrayIf(reaction, reaction != '') AS reactions
FROM (
    SELECT screening_id, movie_second, person_key, seat_id, reaction,
           i_neutral, i_happiness, i_surprise, i_sadness, i_anger, i_disgust, i_fear, i_contempt, intensity
    FROM viewer_seconds
    WHERE attending = 1
) AS viewer
ALL INNER JOIN (SELECT screening_id, movie_second, scene_no FROM screening_scene_seconds) AS scene
USING (screening_id, movie_second)
GROUP BY screening_id, scene_no, person_key;
