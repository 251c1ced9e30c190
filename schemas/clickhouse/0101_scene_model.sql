-- Joins audience emotion to scenes. A movie second s belongs to scene [start_s, end_s) when start_s <= s < end_s,
-- i.e. s runs from ceil(start_s) to ceil(end_s) - 1. Range joins are not portable (18.16 joins on equality only),
-- so scenes are expanded to their seconds (7,200 rows for a 2-hour film) and joined on (screening_id, movie_second).

-- Each screening with its film's current scenes.
CREATE VIEW IF NOT EXISTS screening_scenes AS
SELECT screening_id, film_id, scene_no, title, description, start_s, end_s
FROM (SELECT screening_id, film_id FROM screenings FINAL) AS screening
ALL INNER JOIN (SELECT film_id, scene_no, title, description, start_s, end_s FROM current_scenes) AS scene USING film_id;

CREATE VIEW IF NOT EXISTS screening_scene_seconds AS
SELECT
    screening_id, film_id, scene_no, title, start_s, end_s,
    arrayJoin(arrayMap(k -> toUInt32(toUInt32(ceil(start_s)) + k),
                       range(toUInt32(greatest(ceil(end_s) - ceil(start_s), 0))))) AS movie_second
FROM screening_scenes;

-- Per second audience totals (audience_seconds is a SummingMergeTree: always sum() ... GROUP BY).
CREATE VIEW IF NOT EXISTS audience_totals AS
SELECT
    screening_id, movie_second,
    sum(viewers) AS viewers, sum(attending) AS attending,
    sum(n_neutral) AS n_neutral, sum(n_happiness) AS n_happiness, sum(n_surprise) AS n_surprise,
    sum(n_sadness) AS n_sadness, sum(n_anger) AS n_anger, sum(n_disgust) AS n_disgust,
    sum(n_fear) AS n_fear, sum(n_contempt) AS n_contempt,
    sum(sum_i_neutral) AS sum_i_neutral, sum(sum_i_happiness) AS sum_i_happiness,
    sum(sum_i_surprise) AS sum_i_surprise, sum(sum_i_sadness) AS sum_i_sadness,
    sum(sum_i_anger) AS sum_i_anger, sum(sum_i_disgust) AS sum_i_disgust,
    sum(sum_i_fear) AS sum_i_fear, sum(sum_i_contempt) AS sum_i_contempt,
    sum(sum_intensity) AS sum_intensity
FROM audience_seconds
GROUP BY screening_id, movie_second;

-- Per screening and scene: mean intensity per emotion over attending viewer-seconds, dominant-emotion shares,
-- and the scene's peak second (highest mean overall intensity).
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
    max(second_intensity) AS peak_intensity
FROM (
    SELECT *, if(attending > 0, sum_intensity / attending, 0) AS second_intensity
    FROM audience_totals
) AS audience
ALL INNER JOIN (SELECT screening_id, movie_second, scene_no, title, start_s, end_s FROM screening_scene_seconds) AS scene
USING (screening_id, movie_second)
GROUP BY screening_id, scene_no;

-- Per screening, scene and viewer: the viewer's peak intensity per emotion while attending in that scene.
-- "Share of the audience that reacted" = countIf(peak >= threshold) / count() over these rows.
CREATE VIEW IF NOT EXISTS scene_viewer_peaks AS
SELECT
    screening_id, scene_no, person_key,
    any(seat_id) AS seat_id,
    max(i_neutral) AS peak_i_neutral, max(i_happiness) AS peak_i_happiness, max(i_surprise) AS peak_i_surprise,
    max(i_sadness) AS peak_i_sadness, max(i_anger) AS peak_i_anger, max(i_disgust) AS peak_i_disgust,
    max(i_fear) AS peak_i_fear, max(i_contempt) AS peak_i_contempt,
    max(intensity) AS peak_intensity
FROM (
    SELECT screening_id, movie_second, person_key, seat_id,
           i_neutral, i_happiness, i_surprise, i_sadness, i_anger, i_disgust, i_fear, i_contempt, intensity
    FROM viewer_seconds
    WHERE attending = 1
) AS viewer
ALL INNER JOIN (SELECT screening_id, movie_second, scene_no FROM screening_scene_seconds) AS scene
USING (screening_id, movie_second)
GROUP BY screening_id, scene_no, person_key;
