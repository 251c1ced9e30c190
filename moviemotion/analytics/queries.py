"""The analysts' named questions with their SQL: one place for the cookbook, the CLI, the report and tests.

SQL is the subset both stores run (chDB 26.x and clickhouse-server 18.16: equality joins on aliased
subqueries with USING, no window functions). Parameters use `%(name)s` (client-side substitution).
Building blocks are the views of schemas/clickhouse/0101_scene_model.sql and 0111_reaction_scene_model.sql.
Everything about what the audience showed reads `reaction` (the baseline-relative label, docs/emotion-metrics.md):
shares are over *measured* attending viewers (reacting + r_neutral); rows stored before migration 0004 have
reaction '' (not measured) and count in no share. Intensities (i_*, intensity) are baseline-relative too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.emotions import EMOTIONS
from infra.clickhouse.client import ClickHouseClient, QueryResult
from producers.shot_scale import SHOT_SCALES

REACTIONS = tuple(e for e in EMOTIONS if e != "neutral")
ANY_REACTION = "any"  # audience_metrics' label for "any reaction" (its mean share is the engagement)
METRIC_LABELS = (ANY_REACTION, *REACTIONS)
NORM_FIGURES = ("engagement", "reacted_share", *(f"share_{e}" for e in REACTIONS))


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


_MEASURED = "reacting + r_neutral"  # attending viewers whose reaction was measured (not '')
_SECOND_SHARES = "[" + ", ".join(["reacting / measured", *(f"r_{e} / measured" for e in REACTIONS)]) + "]"
_VIEWER_SHOWED = "[" + ", ".join(["arrayExists(r -> r != 'neutral', shown)", *(f"has(shown, '{e}')" for e in REACTIONS)]) + "]"
_METRIC_COLUMNS = ("viewers", "ever_viewers", "ever_share", "mean_share", "peak_share", "peak_second", "trough_share", "trough_second", "measured_seconds")


def _reaction_metrics_sql(per_scene: bool) -> str:
    """audience_metrics (per screening) or scene_reaction_metrics (per scene): one row per METRIC_LABELS entry."""
    key = "scene_no, " if per_scene else ""
    seconds = f"""SELECT movie_second, {_MEASURED} AS measured, {_SECOND_SHARES} AS shares
        FROM audience_totals
        WHERE screening_id = %(screening)s AND {_MEASURED} > 0"""
    if per_scene:
        seconds = f"""SELECT scene_no, movie_second, shares
        FROM ({seconds}) AS measured_second
        ALL INNER JOIN (
            SELECT movie_second, scene_no FROM screening_scene_seconds WHERE screening_id = %(screening)s
        ) AS scene USING movie_second"""
    viewers = (
        "SELECT scene_no, reactions AS shown FROM scene_viewer_peaks WHERE screening_id = %(screening)s AND measured_seconds > 0"
        if per_scene else
        """SELECT person_key, groupUniqArray(reaction) AS shown
        FROM viewer_seconds
        WHERE screening_id = %(screening)s AND attending = 1 AND reaction != ''
        GROUP BY person_key"""
    )
    return f"""
SELECT {key}reaction, viewers, ever_viewers, ever_viewers / viewers AS ever_share,
       mean_share, peak_share, peak_second, trough_share, trough_second, measured_seconds
FROM (
    SELECT {key}reaction, count() AS measured_seconds, avg(share) AS mean_share,
           max(share) AS peak_share, argMax(movie_second, (share, -toInt64(movie_second))) AS peak_second,
           min(share) AS trough_share, argMin(movie_second, (share, toInt64(movie_second))) AS trough_second
    FROM (
        {seconds}
    ) AS second
    ARRAY JOIN [{_quoted(METRIC_LABELS)}] AS reaction, shares AS share
    GROUP BY {key}reaction
) AS by_second
ALL INNER JOIN (
    SELECT {key}reaction, count() AS viewers, sum(showed) AS ever_viewers
    FROM (
        {viewers}
    ) AS viewer
    ARRAY JOIN [{_quoted(METRIC_LABELS)}] AS reaction, {_VIEWER_SHOWED} AS showed
    GROUP BY {key}reaction
) AS by_viewer USING ({key}reaction)
ORDER BY {key}indexOf([{_quoted(METRIC_LABELS)}], reaction)"""


QUERIES: tuple[NamedQuery, ...] = (
    NamedQuery(
        name="scene_summary",
        question="How did each scene play? Engagement, the most-shown reaction, reaction shares, intensities, share of the room that reacted.",
        explanation="Engagement and `share_<reaction>` are means over the scene's seconds with measured viewers of "
        "reacting / measured and r_<reaction> / measured (measured = attending viewers whose reaction is known); "
        "`top_reaction` is the reaction with the largest mean share ('' when nobody reacted). Intensity means are over "
        "attending viewer-seconds; the peak second has the room's highest mean intensity. A viewer reacted in a scene "
        "when they showed any reaction (not neutral) there; the share is over the viewers with a measured attending "
        "second in the scene.",
        sql=f"""
SELECT scene_no, title, start_s, end_s, top_reaction, engagement,
       {_column_list('share_', REACTIONS)}, mean_intensity,
       {_column_list('mean_i_', EMOTIONS)},
       peak_second, peak_intensity, viewers, reacted, if(viewers > 0, reacted / viewers, 0) AS reacted_share
FROM (
    SELECT scene_no, title, start_s, end_s, engagement, {_column_list('share_', REACTIONS)}, mean_intensity,
           {_column_list('mean_i_', EMOTIONS)},
           if(arrayReduce('max', [{_column_list('share_', REACTIONS)}]) > 0,
              [{_quoted(REACTIONS)}][indexOf(
                  [{_column_list('share_', REACTIONS)}],
                  arrayReduce('max', [{_column_list('share_', REACTIONS)}]))],
              '') AS top_reaction,
           peak_second, peak_intensity
    FROM scene_audience
    WHERE screening_id = %(screening)s
) AS scene
ALL INNER JOIN (
    SELECT scene_no, countIf(measured_seconds > 0) AS viewers,
           countIf(arrayExists(r -> r != 'neutral', reactions)) AS reacted
    FROM scene_viewer_peaks
    WHERE screening_id = %(screening)s
    GROUP BY scene_no
) AS reaction USING scene_no
ORDER BY start_s""",
        columns=("scene_no", "title", "start_s", "end_s", "top_reaction", "engagement", *(f"share_{e}" for e in REACTIONS), "mean_intensity", *(f"mean_i_{e}" for e in EMOTIONS), "peak_second", "peak_intensity", "viewers", "reacted", "reacted_share"),
    ),
    NamedQuery(
        name="audience_timeline",
        question="How did the room feel, second by second?",
        explanation="Per movie second with attending viewers: `measured` (attending viewers whose reaction is known), "
        "engagement (reacting / measured) and the share of them showing each reaction (`share_neutral` = no "
        "reaction; the shares add up to 1), the mean overall intensity, and the scene (0 = none). Seconds stored "
        "before migration 0004 have measured = 0 and every share 0: not measured.",
        sql=f"""
SELECT movie_second, attending, measured, engagement, {_column_list('share_', EMOTIONS)}, mean_intensity, scene_no
FROM (
    SELECT movie_second, attending, {_MEASURED} AS measured,
           if(measured > 0, reacting / measured, 0) AS engagement,
           {', '.join(f'if(measured > 0, r_{e} / measured, 0) AS share_{e}' for e in EMOTIONS)},
           sum_intensity / attending AS mean_intensity
    FROM audience_totals
    WHERE screening_id = %(screening)s AND attending > 0
) AS second
ANY LEFT JOIN (
    SELECT movie_second, scene_no FROM screening_scene_seconds WHERE screening_id = %(screening)s
) AS scene USING movie_second
ORDER BY movie_second""",
        columns=("movie_second", "attending", "measured", "engagement", *(f"share_{e}" for e in EMOTIONS), "mean_intensity", "scene_no"),
    ),
    NamedQuery(
        name="funniest_seconds",
        question="What were the 10 funniest seconds?",
        explanation="Seconds ranked by the room's mean happiness intensity (over attending viewers), with the share "
        "of measured viewers whose reaction was happiness and the scene the second belongs to (0 = none).",
        sql=f"""
SELECT movie_second, attending, mean_happiness, laughing_share, scene_no, scene_title
FROM (
    SELECT movie_second, attending, sum_i_happiness / attending AS mean_happiness,
           if({_MEASURED} > 0, r_happiness / ({_MEASURED}), 0) AS laughing_share
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
        explanation="A viewer was surprised in a scene when their reaction was surprise in at least one attending "
        "second of it; the share is over the viewers with a measured attending second in that scene.",
        sql="""
SELECT scene_no, title, viewers, surprised, surprised / viewers AS surprised_share
FROM (
    SELECT scene_no, count() AS viewers, countIf(has(reactions, 'surprise')) AS surprised
    FROM scene_viewer_peaks
    WHERE screening_id = %(screening)s AND measured_seconds > 0
    GROUP BY scene_no
) AS peaks
ALL INNER JOIN (
    SELECT scene_no, title FROM screening_scenes WHERE screening_id = %(screening)s
) AS scene USING scene_no
WHERE surprised / viewers > %(min_share)s
ORDER BY scene_no""",
        columns=("scene_no", "title", "viewers", "surprised", "surprised_share"),
        defaults={"min_share": 0.5},
    ),
    NamedQuery(
        name="resonant_moments",
        question="What were the resonant moments: the top peaks of each reaction, and in which scene?",
        explanation="For each reaction, the peak second of each scene (seconds outside every scene are grouped by "
        "minute): the second with the largest share of measured viewers showing it (ties: the higher mean intensity "
        "of that emotion, then the earlier second); the top `k` per reaction with a share of at least `min_share`.",
        sql=f"""
SELECT emotion, peak_second AS movie_second, peak_share AS share, peak_intensity AS mean_intensity, scene_no, scene_title
FROM (
    SELECT emotion, scene_no, any(scene_title) AS scene_title,
           argMax(movie_second, (share, value, -toInt64(movie_second))) AS peak_second,
           max(share) AS peak_share,
           argMax(value, (share, value, -toInt64(movie_second))) AS peak_intensity
    FROM (
        SELECT movie_second, scene_no, scene_title,
               if(scene_no = 0, intDiv(movie_second, 60), 0) AS unscened_minute, emotion, share, value
        FROM (
            SELECT movie_second,
                   arrayMap(n -> n / ({_MEASURED}), [{_column_list('r_', REACTIONS)}]) AS shares,
                   arrayMap(total -> total / attending, [{_column_list('sum_i_', REACTIONS)}]) AS means
            FROM audience_totals
            WHERE screening_id = %(screening)s AND attending > 0 AND {_MEASURED} > 0
        ) AS second
        ANY LEFT JOIN (
            SELECT movie_second, scene_no, title AS scene_title
            FROM screening_scene_seconds
            WHERE screening_id = %(screening)s
        ) AS scene USING movie_second
        ARRAY JOIN [{_quoted(REACTIONS)}] AS emotion, shares AS share, means AS value
    )
    GROUP BY emotion, scene_no, unscened_minute
    HAVING peak_share >= %(min_share)s
)
ORDER BY indexOf([{_quoted(REACTIONS)}], emotion), share DESC, mean_intensity DESC, movie_second
LIMIT %(k)s BY emotion""",
        columns=("emotion", "movie_second", "share", "mean_intensity", "scene_no", "scene_title"),
        defaults={"k": 3, "min_share": 0.1},
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
        explanation="A laugh is a run of consecutive attending seconds in which one viewer's reaction is happiness. "
        "Runs are found without window functions: sorted seconds minus their rank are constant along a run. The "
        "median is the upper median (quantileExact).",
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
            WHERE screening_id = %(screening)s AND attending = 1 AND reaction = 'happiness'
            GROUP BY person_key
        )
    )
    GROUP BY person_key, run_key
)""",
        columns=("laughs", "mean_duration_s", "median_duration_s", "longest_s"),
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
        explanation="Shots come from the film index (`moviemotion film index`). Per shot scale: engagement (the mean "
        "over its shots' seconds with measured viewers of reacting / measured), mean intensity per emotion over the "
        "attending viewer-seconds of its shots, and the mean reaction lag (seconds from a shot's start to its peak "
        "second, the second with the room's highest mean intensity). Shots nobody attended are left out.",
        sql=f"""
SELECT shot_scale, count() AS shots, sum(shot_seconds) AS seconds,
       if(sum(measured_weight) > 0, sum(shot_engagement * measured_weight) / sum(measured_weight), 0) AS engagement,
       sum(shot_intensity * weight) / sum(weight) AS mean_intensity,
       {', '.join(f'sum(shot_{e} * weight) / sum(weight) AS mean_i_{e}' for e in REACTIONS)},
       avg(lag_s) AS mean_reaction_lag_s
FROM (
    SELECT shot_scale, seconds AS shot_seconds, attending_seconds AS weight, mean_intensity AS shot_intensity,
           engagement AS shot_engagement, measured_seconds AS measured_weight,
           {', '.join(f'mean_i_{e} AS shot_{e}' for e in REACTIONS)}, reaction_lag_s AS lag_s
    FROM shot_audience
    WHERE screening_id = %(screening)s AND attending_seconds > 0
)
GROUP BY shot_scale
ORDER BY indexOf([{_quoted(SHOT_SCALES)}], shot_scale)""",
        columns=("shot_scale", "shots", "seconds", "engagement", "mean_intensity", *(f"mean_i_{e}" for e in REACTIONS), "mean_reaction_lag_s"),
    ),
    NamedQuery(
        name="shot_reactions",
        question="Which shots landed, and how long did the room take to react?",
        explanation="Per shot of the film index, in film order: its scale and face count, engagement and the most-shown "
        "reaction (scene_summary's definitions over the shot's seconds; '' when nobody reacted), the room's mean "
        "intensity over attending viewer-seconds, the peak second (highest mean intensity, the earliest on ties) and "
        "the reaction lag from the shot's start to that peak.",
        sql=f"""
SELECT shot_no, start_s, end_s, shot_scale, face_count, engagement,
       if(arrayReduce('max', [{_column_list('share_', REACTIONS)}]) > 0,
          [{_quoted(REACTIONS)}][indexOf(
              [{_column_list('share_', REACTIONS)}],
              arrayReduce('max', [{_column_list('share_', REACTIONS)}]))],
          '') AS top_reaction,
       mean_intensity, peak_second, peak_intensity, reaction_lag_s
FROM shot_audience
WHERE screening_id = %(screening)s
ORDER BY start_s""",
        columns=("shot_no", "start_s", "end_s", "shot_scale", "face_count", "engagement", "top_reaction", "mean_intensity", "peak_second", "peak_intensity", "reaction_lag_s"),
    ),
    NamedQuery(
        name="compare_screenings",
        question="Did the scenes play the same in every screening of a film?",
        explanation="Per scene and screening of the film: engagement, the mean shares of happiness and surprise "
        "reactions (scene_summary's definitions) and the mean overall intensity, to compare theaters or cuts side by side.",
        sql="""
SELECT scene_no, title, screening_id, engagement, share_happiness, share_surprise, mean_intensity
FROM scene_audience
WHERE screening_id IN (SELECT screening_id FROM screenings FINAL WHERE film_id = %(film)s)
ORDER BY scene_no, screening_id""",
        columns=("scene_no", "title", "screening_id", "engagement", "share_happiness", "share_surprise", "mean_intensity"),
        required=("film",),
    ),

    NamedQuery(
        name="audience_metrics",
        question="The audience metrics of a screening: engagement, and per reaction who showed it, its mean, peak and trough share.",
        explanation="One row per reaction and one, `any`, for any reaction. Over the seconds with measured viewers "
        "(attending viewers whose reaction is known): `mean_share` is the mean of the per-second share showing it "
        "(for `any` this is the engagement), `peak_share`/`trough_share` its largest and smallest per-second share "
        "with their seconds (the earliest on ties). `ever_share` = `ever_viewers` / `viewers`: of the viewers with a "
        "measured attending second, those who showed it in at least one. Definitions: docs/emotion-metrics.md.",
        sql=_reaction_metrics_sql(per_scene=False),
        columns=("reaction", *_METRIC_COLUMNS),
    ),
    NamedQuery(
        name="scene_reaction_metrics",
        question="The audience metrics of every scene: engagement, and per reaction who showed it, its mean, peak and trough share.",
        explanation="audience_metrics per scene: the same figures over each scene's seconds and the viewers with a "
        "measured attending second in the scene.",
        sql=_reaction_metrics_sql(per_scene=True),
        columns=("scene_no", "reaction", *_METRIC_COLUMNS),
    ),
    NamedQuery(
        name="scene_impact",
        question="Which scenes left the strongest impression? Peak-end impact per scene.",
        explanation="Per scene, over its seconds with measured viewers: engagement (mean of reacting / measured), its "
        "peak (the earliest second on ties), its value in the scene's final measured second, and "
        "peak_end = (peak_engagement + end_engagement) / 2 (the peak-end rule: a scene is remembered by its "
        "strongest and its last moment).",
        sql=f"""
SELECT scene_no, title, measured_seconds, engagement, peak_engagement, peak_second, end_engagement, end_second,
       (peak_engagement + end_engagement) / 2 AS peak_end
FROM (
    SELECT scene_no, any(title) AS title, count() AS measured_seconds, avg(second_engagement) AS engagement,
           max(second_engagement) AS peak_engagement,
           argMax(movie_second, (second_engagement, -toInt64(movie_second))) AS peak_second,
           argMax(second_engagement, movie_second) AS end_engagement, max(movie_second) AS end_second
    FROM (
        SELECT movie_second, reacting / ({_MEASURED}) AS second_engagement
        FROM audience_totals
        WHERE screening_id = %(screening)s AND {_MEASURED} > 0
    ) AS second
    ALL INNER JOIN (
        SELECT movie_second, scene_no, title FROM screening_scene_seconds WHERE screening_id = %(screening)s
    ) AS scene USING movie_second
    GROUP BY scene_no
)
ORDER BY scene_no""",
        columns=("scene_no", "title", "measured_seconds", "engagement", "peak_engagement", "peak_second", "end_engagement", "end_second", "peak_end"),
    ),
    NamedQuery(
        name="screening_norms",
        question="How does this screening compare with every other one? Percentile of its figures among all screenings in the store.",
        explanation="Figures per screening: engagement, `reacted_share` (share of viewers who showed any reaction) and "
        "the mean share of each reaction (audience_metrics' definitions). Only screenings with measured seconds "
        "count. `percentile` = `at_or_below` / `screenings`: the share of the store's screenings whose figure is at "
        "or below this one's (itself included; 1 = the highest). `film_*`: the same among the screenings of this "
        "screening's film (screenings never registered count as film '').",
        sql=f"""
SELECT figure, value, screenings, at_or_below, at_or_below / screenings AS percentile,
       film_screenings, film_at_or_below, film_at_or_below / film_screenings AS film_percentile
FROM (
    SELECT figure, any(mine) AS value, count() AS screenings, countIf(tupleElement(other, 1) <= mine) AS at_or_below,
           countIf(tupleElement(other, 2) = film) AS film_screenings,
           countIf(tupleElement(other, 2) = film AND tupleElement(other, 1) <= mine) AS film_at_or_below
    FROM (
        SELECT figure, sumIf(figure_value, screening_id = %(screening)s) AS mine,
               anyIf(film_id, screening_id = %(screening)s) AS film, countIf(screening_id = %(screening)s) AS present,
               groupArray((figure_value, film_id)) AS others
        FROM (
            SELECT screening_id, film_id, figure, figure_value
            FROM (
                SELECT screening_id, [engagement, reacted_share, {_column_list('share_', REACTIONS)}] AS figure_values
                FROM (
                    SELECT screening_id, avg(reacting / measured) AS engagement,
                           {', '.join(f'avg(r_{e} / measured) AS share_{e}' for e in REACTIONS)}
                    FROM (
                        SELECT screening_id, {_MEASURED} AS measured, reacting, {_column_list('r_', REACTIONS)}
                        FROM audience_totals
                        WHERE {_MEASURED} > 0
                    )
                    GROUP BY screening_id
                ) AS by_second
                ALL INNER JOIN (
                    SELECT screening_id, countIf(reacted = 1) / count() AS reacted_share
                    FROM (
                        SELECT screening_id, person_key, max(reaction != 'neutral') AS reacted
                        FROM viewer_seconds
                        WHERE attending = 1 AND reaction != ''
                        GROUP BY screening_id, person_key
                    )
                    GROUP BY screening_id
                ) AS by_viewer USING screening_id
            ) AS figures
            ARRAY JOIN [{_quoted(NORM_FIGURES)}] AS figure, figure_values AS figure_value
            ANY LEFT JOIN (SELECT screening_id, film_id FROM screenings FINAL) AS catalogue USING screening_id
        )
        GROUP BY figure
    )
    ARRAY JOIN others AS other
    WHERE present = 1
    GROUP BY figure
)
ORDER BY indexOf([{_quoted(NORM_FIGURES)}], figure)""",
        columns=("figure", "value", "screenings", "at_or_below", "percentile", "film_screenings", "film_at_or_below", "film_percentile"),
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
