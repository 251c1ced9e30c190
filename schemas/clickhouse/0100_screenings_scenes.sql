-- Analysts' catalogue: which film a screening showed, and the film's scene timeline.
-- screenings: one row per screening; re-registering replaces it (ReplacingMergeTree on inserted_at, read with FINAL).
CREATE TABLE IF NOT EXISTS screenings (
    screening_id String,
    film_id String,
    film_title String,
    theater_id String,
    starts_at DateTime,
    seats UInt16,
    notes String,
    inserted_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree(inserted_at)
ORDER BY screening_id;

-- scenes: each import of a film's timeline is a new revision; readers use current_scenes (latest revision per film),
-- so a re-import with fewer scenes never leaves stale rows behind.
CREATE TABLE IF NOT EXISTS scenes (
    film_id String,
    revision UInt64,
    scene_no UInt32,
    start_s Float64,
    end_s Float64,
    title String,
    description String,
    source String,
    inserted_at DateTime DEFAULT now()
) ENGINE = MergeTree
ORDER BY (film_id, revision, scene_no);

CREATE VIEW IF NOT EXISTS current_scenes AS
SELECT film_id, scene_no, start_s, end_s, title, description
FROM scenes
WHERE (film_id, revision) IN (SELECT film_id, max(revision) FROM scenes GROUP BY film_id);
