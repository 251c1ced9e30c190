-- The film structure index (`moviemotion film index FILE --film ID`, producers/film_index.py): a film's shots.
-- Each indexing of a film is a new revision; readers use current_film_shots (the newest revision per film), so
-- re-indexing replaces a film's shots, never duplicates them.
-- shot_scale: close_up | medium_close_up | medium | wide | no_face (largest face height / frame height, see
-- producers/shot_scale.py); face_height is that ratio (0 = no face); brightness is the mean luma, 0..1.
CREATE TABLE IF NOT EXISTS film_shots (
    film_id String,
    revision UInt64,
    shot_no UInt32,
    start_s Float64,
    end_s Float64,
    shot_scale String,
    face_count UInt16,
    face_height Float32,
    brightness Float32,
    samples UInt32,
    source String,
    inserted_at DateTime DEFAULT now()
) ENGINE = MergeTree
ORDER BY (film_id, revision, shot_no);

CREATE VIEW IF NOT EXISTS current_film_shots AS
SELECT film_id, shot_no, start_s, end_s, shot_scale, face_count, face_height, brightness
FROM film_shots
WHERE (film_id, revision) IN (SELECT film_id, max(revision) FROM film_shots GROUP BY film_id);

-- (screening_id, movie_second) -> shot, like screening_scene_seconds: second s is in shot [start_s, end_s) when
-- ceil(start_s) <= s < ceil(end_s) (18.16 joins on equality only, so shots are expanded to their seconds).
CREATE VIEW IF NOT EXISTS screening_shot_seconds AS
SELECT
    screening_id, film_id, shot_no, shot_scale, face_count, start_s, end_s,
    arrayJoin(arrayMap(k -> toUInt32(toUInt32(ceil(start_s)) + k),
                       range(toUInt32(greatest(ceil(end_s) - ceil(start_s), 0))))) AS movie_second
FROM (SELECT screening_id, film_id FROM screenings FINAL) AS screening
ALL INNER JOIN (SELECT film_id, shot_no, shot_scale, face_count, start_s, end_s FROM current_film_shots) AS shot USING film_id;

-- Per screening and shot: mean intensity per emotion over attending viewer-seconds, the peak second (highest
-- mean overall intensity; the earliest on ties) and the reaction lag: seconds from the shot's start to that peak.
CREATE VIEW IF NOT EXISTS shot_audience AS
SELECT
    screening_id, shot_no,
    any(shot_scale) AS shot_scale, any(face_count) AS face_count, any(start_s) AS start_s, any(end_s) AS end_s,
    count() AS seconds,
    sum(attending) AS attending_seconds,
    if(sum(attending) > 0, sum(sum_i_happiness) / sum(attending), 0) AS mean_i_happiness,
    if(sum(attending) > 0, sum(sum_i_surprise) / sum(attending), 0) AS mean_i_surprise,
    if(sum(attending) > 0, sum(sum_i_sadness) / sum(attending), 0) AS mean_i_sadness,
    if(sum(attending) > 0, sum(sum_i_anger) / sum(attending), 0) AS mean_i_anger,
    if(sum(attending) > 0, sum(sum_i_disgust) / sum(attending), 0) AS mean_i_disgust,
    if(sum(attending) > 0, sum(sum_i_fear) / sum(attending), 0) AS mean_i_fear,
    if(sum(attending) > 0, sum(sum_i_contempt) / sum(attending), 0) AS mean_i_contempt,
    if(sum(attending) > 0, sum(sum_intensity) / sum(attending), 0) AS mean_intensity,
    argMax(movie_second, (second_intensity, -toInt64(movie_second))) AS peak_second,
    max(second_intensity) AS peak_intensity,
    peak_second - start_s AS reaction_lag_s
FROM (
    SELECT screening_id, movie_second, attending, sum_i_happiness, sum_i_surprise, sum_i_sadness, sum_i_anger,
           sum_i_disgust, sum_i_fear, sum_i_contempt, sum_intensity,
           if(attending > 0, sum_intensity / attending, 0) AS second_intensity
    FROM audience_totals
) AS audience
ALL INNER JOIN (SELECT screening_id, movie_second, shot_no, shot_scale, face_count, start_s, end_s FROM screening_shot_seconds) AS shot
USING (screening_id, movie_second)
GROUP BY screening_id, shot_no;
