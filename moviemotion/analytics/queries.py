"""The analysts' named questions with their SQL: one place for the cookbook, the CLI, the report and tests.

SQL is the subset both stores run (chDB 26.x and clickhouse-server 18.16: equality joins on aliased
subqueries with USING, no window functions). Parameters use `%(name)s` (client-side substitution).
Building blocks are the views of schemas/clickhouse/0101_scene_model.sql.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engines.emotions import EMOTIONS
from infra.clickhouse.client import ClickHouseClient, QueryResult
from producers.shot_scale import SHOT_SCALES

REACTIONS = tuple(e for e in EMOTIONS if e != "neutral")


@dataclass(frozen=True)
class NamedQuery:
    name: str
    question: str
    explanation: str
    sql: str
    columns: tuple[str, ...]
    required: tuple[str, ...] = ("screening",)
    defaults: dict[str, Any] = field(default_factory=dict)

    def params(self, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with `given`; ValueError naming missing or unknown parameters."""
        known = set(self.required) | set(self.defaults)
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(f"query {self.name!r}: unknown parameter(s) {unknown} (takes: {sorted(known)})")
        merged = {**self.defaults, **{k: v for k, v in given.items() if v is not None}}
        missing = [name for name in self.required if name not in merged]
        if missing:
            raise ValueError(f"query {self.name!r}: missing parameter(s) {missing}")
        return merged


def _column_list(prefix: str, emotions: tuple[str, ...]) -> str:
    return ", ".join(f"{prefix}{e}" for e in emotions)


def _quoted(emotions: tuple[str, ...]) -> str:
    return ", ".join(f"'{e}'" for e in emotions)


QUERIES: tuple[NamedQuery, ...] = (
    NamedQuery(
        name="scene_summary",
        question="How did each scene play? Mean intensity per emotion, peak second, share of the room that reacted.",
        explanation="Means are over attending viewer-seconds. A viewer reacted in a scene when their overall intensity "
        "reached `threshold` at least once while attending; the share is over viewers attending at some point in the scene.",
        sql=f"""
SELECT scene_no, title, start_s, end_s, top_emotion, mean_intensity,
       {_column_list('mean_i_', EMOTIONS)},
       peak_second, peak_intensity, viewers, reacted, reacted / viewers AS reacted_share
FROM (
    SELECT scene_no, title, start_s, end_s, mean_intensity,
           {_column_list('mean_i_', EMOTIONS)},
           [{_quoted(REACTIONS)}][indexOf(
               [{_column_list('mean_i_', REACTIONS)}],
               arrayReduce('max', [{_column_list('mean_i_', REACTIONS)}]))] AS top_emotion,
           peak_second, peak_intensity
    FROM scene_audience
    WHERE screening_id = %(screening)s
) AS scene
ALL INNER JOIN (
    SELECT scene_no, count() AS viewers, countIf(peak_intensity >= %(threshold)s) AS reacted
    FROM scene_viewer_peaks
    WHERE screening_id = %(screening)s
    GROUP BY scene_no
) AS reaction USING scene_no
ORDER BY start_s""",
        columns=("scene_no", "title", "start_s", "end_s", "top_emotion", "mean_intensity", *(f"mean_i_{e}" for e in EMOTIONS), "peak_second", "peak_intensity", "viewers", "reacted", "reacted_share"),
        defaults={"threshold": 0.3},
    ),
    NamedQuery(
        name="audience_timeline",
        question="How did the room feel, second by second?",
        explanation="Per movie second with attending viewers: the share of them whose dominant emotion is each "
        "emotion (the shares add up to 1), the mean overall intensity, and the scene (0 = none).",
        sql=f"""
SELECT movie_second, attending, {_column_list('share_', EMOTIONS)}, mean_intensity, scene_no
FROM (
    SELECT movie_second, attending, {', '.join(f'n_{e} / attending AS share_{e}' for e in EMOTIONS)},
           sum_intensity / attending AS mean_intensity
    FROM audience_totals
    WHERE screening_id = %(screening)s AND attending > 0
) AS second
ANY LEFT JOIN (
    SELECT movie_second, scene_no FROM screening_scene_seconds WHERE screening_id = %(screening)s
) AS scene USING movie_second
ORDER BY movie_second""",
        columns=("movie_second", "attending", *(f"share_{e}" for e in EMOTIONS), "mean_intensity", "scene_no"),
    ),
    NamedQuery(
        name="funniest_seconds",
        question="What were the 10 funniest seconds?",
        explanation="Seconds ranked by the room's mean happiness intensity (over attending viewers), with the share "
        "of the room whose dominant emotion was happiness and the scene the second belongs to (0 = none).",
        sql="""
SELECT movie_second, attending, mean_happiness, laughing_share, scene_no, scene_title
FROM (
    SELECT movie_second, attending, sum_i_happiness / attending AS mean_happiness, n_happiness / attending AS laughing_share
    FROM audience_totals
    WHERE screening_id = %(screening)s AND attending > 0
) AS second
ANY LEFT JOIN (
    SELECT movie_second, scene_no, title AS scene_title
    FROM screening_scene_seconds
    WHERE screening_id = %(screening)s
) AS scene USING movie_second
ORDER BY mean_happiness DESC, movie_second
LIMIT %(limit)s""",
        columns=("movie_second", "attending", "mean_happiness", "laughing_share", "scene_no", "scene_title"),
        defaults={"limit": 10},
    ),
    NamedQuery(
        name="surprised_scenes",
        question="In which scenes was more than half of the audience surprised?",
        explanation="A viewer was surprised in a scene when their surprise intensity reached `threshold` at least once "
        "while attending; the share is over the viewers attending at some point in that scene.",
        sql="""
SELECT scene_no, title, viewers, surprised, surprised / viewers AS surprised_share
FROM (
    SELECT scene_no, count() AS viewers, countIf(peak_i_surprise >= %(threshold)s) AS surprised
    FROM scene_viewer_peaks
    WHERE screening_id = %(screening)s
    GROUP BY scene_no
) AS peaks
ALL INNER JOIN (
    SELECT scene_no, title FROM screening_scenes WHERE screening_id = %(screening)s
) AS scene USING scene_no
WHERE surprised / viewers > %(min_share)s
ORDER BY scene_no""",
        columns=("scene_no", "title", "viewers", "surprised", "surprised_share"),
        defaults={"threshold": 0.3, "min_share": 0.5},
    ),
    NamedQuery(
        name="resonant_moments",
        question="What were the resonant moments: the top peaks of each emotion, and in which scene?",
        explanation="For each emotion but neutral, the peak second of each scene (seconds outside every scene are "
        "grouped by minute), ranked by the room's mean intensity; the top `k` per emotion at or above `min_intensity`.",
        sql=f"""
SELECT emotion, peak_second AS movie_second, mean_intensity, scene_no, scene_title
FROM (
    SELECT emotion, scene_no, any(scene_title) AS scene_title,
           argMax(movie_second, value) AS peak_second, max(value) AS mean_intensity
    FROM (
        SELECT movie_second, scene_no, scene_title,
               if(scene_no = 0, intDiv(movie_second, 60), 0) AS unscened_minute, emotion, value
        FROM (
            SELECT movie_second, arrayMap(total -> total / attending, [{_column_list('sum_i_', REACTIONS)}]) AS means
            FROM audience_totals
            WHERE screening_id = %(screening)s AND attending > 0
        ) AS second
        ANY LEFT JOIN (
            SELECT movie_second, scene_no, title AS scene_title
            FROM screening_scene_seconds
            WHERE screening_id = %(screening)s
        ) AS scene USING movie_second
        ARRAY JOIN [{_quoted(REACTIONS)}] AS emotion, means AS value
    )
    GROUP BY emotion, scene_no, unscened_minute
    HAVING mean_intensity >= %(min_intensity)s
)
ORDER BY indexOf([{_quoted(REACTIONS)}], emotion), mean_intensity DESC, movie_second
LIMIT %(k)s BY emotion""",
        columns=("emotion", "movie_second", "mean_intensity", "scene_no", "scene_title"),
        defaults={"k": 3, "min_intensity": 0.1},
    ),
    NamedQuery(
        name="outlier_viewers",
        question="Which viewers reacted most differently from the room?",
        explanation="For every attending second, the L1 distance between the viewer's intensity vector and the room's "
        "mean vector at that second; viewers ranked by the mean distance.",
        sql=f"""
SELECT person_key, any(seat_id) AS seat, count() AS seconds,
       avg({' + '.join(f'abs(i_{e} - room_{e})' for e in EMOTIONS)}) AS mean_distance
FROM (
    SELECT movie_second, person_key, seat_id, {_column_list('i_', EMOTIONS)}
    FROM viewer_seconds
    WHERE screening_id = %(screening)s AND attending = 1
) AS viewer
ALL INNER JOIN (
    SELECT movie_second, {', '.join(f'sum_i_{e} / attending AS room_{e}' for e in EMOTIONS)}
    FROM audience_totals
    WHERE screening_id = %(screening)s AND attending > 0
) AS room USING movie_second
GROUP BY person_key
ORDER BY mean_distance DESC, person_key
LIMIT %(limit)s""",
        columns=("person_key", "seat", "seconds", "mean_distance"),
        defaults={"limit": 5},
    ),
    NamedQuery(
        name="laugh_durations",
        question="How long does a laugh last?",
        explanation="A laugh is a run of consecutive attending seconds in which one viewer's happiness intensity stays "
        "at or above `threshold`. Runs are found without window functions: sorted seconds minus their rank are "
        "constant along a run. The median is the upper median (quantileExact).",
        sql="""
SELECT count() AS laughs, avg(duration_s) AS mean_duration_s,
       quantileExact(0.5)(duration_s) AS median_duration_s, max(duration_s) AS longest_s
FROM (
    SELECT person_key, run_key, count() AS duration_s
    FROM (
        SELECT person_key, arrayJoin(arrayMap((s, rank) -> toInt64(s) - rank, seconds, arrayEnumerate(seconds))) AS run_key
        FROM (
            SELECT person_key, arraySort(groupArray(movie_second)) AS seconds
            FROM viewer_seconds
            WHERE screening_id = %(screening)s AND attending = 1 AND i_happiness >= %(threshold)s
            GROUP BY person_key
        )
    )
    GROUP BY person_key, run_key
)""",
        columns=("laughs", "mean_duration_s", "median_duration_s", "longest_s"),
        defaults={"threshold": 0.3},
    ),
    NamedQuery(
        name="attention_by_scene",
        question="Where did we lose them? Scenes ranked by attention.",
        explanation="Attention share = attending viewer-seconds / visible viewer-seconds in the scene (looking away "
        "counts against it); mean_visible shows walk-outs (visible viewers per second).",
        sql="""
SELECT scene_no, title, attending_seconds / visible_seconds AS attention_share, visible_seconds / seconds AS mean_visible
FROM scene_audience
WHERE screening_id = %(screening)s AND visible_seconds > 0
ORDER BY attention_share, scene_no""",
        columns=("scene_no", "title", "attention_share", "mean_visible"),
    ),
    NamedQuery(
        name="valence_arc",
        question="What is the emotional arc of the film (valence and arousal over time)?",
        explanation="Mean valence and arousal of attending viewers per `bucket_s`-second slice of movie time.",
        sql="""
SELECT intDiv(movie_second, %(bucket_s)s) * %(bucket_s)s AS bucket_start_s,
       avg(valence) AS mean_valence, avg(arousal) AS mean_arousal, count() AS samples
FROM viewer_seconds
WHERE screening_id = %(screening)s AND attending = 1
GROUP BY bucket_start_s
ORDER BY bucket_start_s""",
        columns=("bucket_start_s", "mean_valence", "mean_arousal", "samples"),
        defaults={"bucket_s": 60},
    ),
    NamedQuery(
        name="shot_scale_reaction",
        question="Do close-ups move the room more than wide shots? Audience reaction per shot scale.",
        explanation="Shots come from the film index (`moviemotion film index`). Per shot scale: mean intensity per "
        "emotion over the attending viewer-seconds of its shots, and the mean reaction lag (seconds from a shot's "
        "start to its peak second, the second with the room's highest mean intensity). Shots nobody attended are left out.",
        sql=f"""
SELECT shot_scale, count() AS shots, sum(shot_seconds) AS seconds,
       sum(shot_intensity * weight) / sum(weight) AS mean_intensity,
       {', '.join(f'sum(shot_{e} * weight) / sum(weight) AS mean_i_{e}' for e in REACTIONS)},
       avg(lag_s) AS mean_reaction_lag_s
FROM (
    SELECT shot_scale, seconds AS shot_seconds, attending_seconds AS weight, mean_intensity AS shot_intensity,
           {', '.join(f'mean_i_{e} AS shot_{e}' for e in REACTIONS)}, reaction_lag_s AS lag_s
    FROM shot_audience
    WHERE screening_id = %(screening)s AND attending_seconds > 0
)
GROUP BY shot_scale
ORDER BY indexOf([{_quoted(SHOT_SCALES)}], shot_scale)""",
        columns=("shot_scale", "shots", "seconds", "mean_intensity", *(f"mean_i_{e}" for e in REACTIONS), "mean_reaction_lag_s"),
    ),
    NamedQuery(
        name="shot_reactions",
        question="Which shots landed, and how long did the room take to react?",
        explanation="Per shot of the film index, in film order: its scale and face count, the room's mean intensity "
        "over attending viewer-seconds, the strongest emotion, the peak second (highest mean intensity, the earliest "
        "on ties) and the reaction lag from the shot's start to that peak.",
        sql=f"""
SELECT shot_no, start_s, end_s, shot_scale, face_count, mean_intensity,
       [{_quoted(REACTIONS)}][indexOf(
           [{_column_list('mean_i_', REACTIONS)}],
           arrayReduce('max', [{_column_list('mean_i_', REACTIONS)}]))] AS top_emotion,
       peak_second, peak_intensity, reaction_lag_s
FROM shot_audience
WHERE screening_id = %(screening)s
ORDER BY start_s""",
        columns=("shot_no", "start_s", "end_s", "shot_scale", "face_count", "mean_intensity", "top_emotion", "peak_second", "peak_intensity", "reaction_lag_s"),
    ),
    NamedQuery(
        name="compare_screenings",
        question="Did the scenes play the same in every screening of a film?",
        explanation="Per scene and screening of the film: mean happiness, surprise and overall intensity, to compare "
        "theaters or cuts side by side.",
        sql="""
SELECT scene_no, title, screening_id, mean_i_happiness, mean_i_surprise, mean_intensity
FROM scene_audience
WHERE screening_id IN (SELECT screening_id FROM screenings FINAL WHERE film_id = %(film)s)
ORDER BY scene_no, screening_id""",
        columns=("scene_no", "title", "screening_id", "mean_i_happiness", "mean_i_surprise", "mean_intensity"),
        required=("film",),
    ),
)

BY_NAME = {query.name: query for query in QUERIES}


def get_query(name: str) -> NamedQuery:
    if name not in BY_NAME:
        raise KeyError(f"unknown query {name!r} (known: {', '.join(BY_NAME)})")
    return BY_NAME[name]


def coerce_params(query: NamedQuery, given: dict[str, str]) -> dict[str, Any]:
    """Command-line strings as the types of the query's defaults (required params stay strings)."""
    typed = {}
    for name, text in given.items():
        default = query.defaults.get(name)
        try:
            typed[name] = type(default)(text) if isinstance(default, (int, float)) else text
        except ValueError:
            raise ValueError(f"query {query.name!r}: parameter {name}={text!r} is not a {type(default).__name__}") from None
    return typed


def query_result(client: ClickHouseClient, name: str, **params: Any) -> QueryResult:
    """Run a named query; the result's columns are checked against the declared ones."""
    query = get_query(name)
    result = client.result(query.sql, query.params(params))
    if tuple(result.columns) != query.columns:
        raise RuntimeError(f"query {name!r} returned columns {result.columns}, declared {list(query.columns)}")
    return result


def run_query(client: ClickHouseClient, name: str, **params: Any) -> list[dict]:
    """Run a named query; rows as dicts keyed by the query's declared columns."""
    result = query_result(client, name, **params)
    return [dict(zip(result.columns, row)) for row in result.rows]
