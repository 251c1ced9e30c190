-- Shot aggregates by reaction, as 0111 did for scenes: shot_audience (0110) gains `measured_seconds`, `engagement`
-- and `share_<reaction>` (means over the shot's seconds with measured viewers of reacting / measured and
-- r_<reaction> / measured; 0 when none was measured). Everything else is as in 0110. Views hold no data.
DROP TABLE IF EXISTS shot_audience;

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
    peak_second - start_s AS reaction_lag_s,
    countIf(measured > 0) AS measured_seconds,
    sumIf(reacting / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS engagement,
    sumIf(r_happiness / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS share_happiness,
    sumIf(r_surprise / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS share_surprise,
    sumIf(r_sadness / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS share_sadness,
    sumIf(r_anger / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS share_anger,
    sumIf(r_disgust / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS share_disgust,
    sumIf(r_fear / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS share_fear,
    sumIf(r_contempt / measured, measured > 0) / greatest(countIf(measured > 0), 1) AS share_contempt
FROM (
    SELECT screening_id, movie_second, attending, sum_i_happiness, sum_i_surprise, sum_i_sadness, sum_i_anger,
           sum_i_disgust, sum_i_fear, sum_i_contempt, sum_intensity,
           if(attending > 0, sum_intensity / attending, 0) AS second_intensity,
           reacting, r_happiness, r_surprise, r_sadness, r_anger, r_disgust, r_fear, r_contempt,
           reacting + r_neutral AS measured
    FROM audience_totals
) AS audience
ALL INNER JOIN (SELECT screening_id, movie_second, shot_no, shot_scale, face_count, start_s, end_s FROM screening_shot_seconds) AS shot
USING (screening_id, movie_second)
GROUP BY screening_id, shot_no;
