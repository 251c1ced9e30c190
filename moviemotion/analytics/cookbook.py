"""Renders docs/cookbook.md from the named queries, so the document and the tested SQL cannot drift."""
from __future__ import annotations

from pathlib import Path

from moviemotion.analytics.queries import QUERIES, NamedQuery

COOKBOOK_PATH = Path(__file__).resolve().parents[2] / "docs" / "cookbook.md"

_PREAMBLE = """# Analyst cookbook

<!-- Generated from moviemotion/analytics/queries.py by `moviemotion cookbook --write`; do not edit by hand.
     tests/test_analytics_cookbook.py fails when this file and the queries differ. -->

Questions analysts ask after a test screening, each with SQL that runs unchanged on the embedded store (chDB)
and on a real ClickHouse server (18.16 and newer). Run any of them from the command line:

    moviemotion query resonant_moments --param screening=SCR-42 --param min_share=0.2
    moviemotion query --list

Parameters are written `%(name)s` (the client substitutes and escapes them). Every query is tested on both
stores against a dataset whose answers are known by construction (`tests/data/known_screening.py`).

## The model

Core tables (written by the sink): `viewer_seconds` (one row per person per movie second: smoothed
probabilities `p_*`, intensity above the person's neutral baseline `i_*` in 0..1, `intensity`, `valence`,
`arousal`, `visible`, `attending`, `reaction` and `dominant`) and `audience_seconds` (per screening and movie
second sums, a SummingMergeTree: always read it with `sum() ... GROUP BY`).

**Reactions, not the raw label.** `reaction` is what a viewer shows above their own neutral baseline: one
of the seven emotions, or `neutral` for no reaction (docs/emotion-metrics.md). `dominant`, the raw argmax of
the smoothed probabilities, stays beside it for comparison only: on real faces it was right in a third of
expression seconds. Every query below reads reactions: `audience_seconds.reacting` (attending viewers showing
any reaction) and `r_<emotion>` (attending viewers by reaction; `n_<emotion>` still count `dominant`).
Shares are over the *measured* attending viewers, `reacting + r_neutral`: rows stored before migration 0004
have reaction `''` (not measured) and count as unknown, never as a reaction or as no reaction. The audience
metrics (engagement, ever/mean/peak/trough shares, peak-end, norms) are defined in docs/emotion-metrics.md.

Analytics tables and views (`schemas/clickhouse/0100_*.sql` onwards):

| name | what it holds |
|------|---------------|
| `screenings` | screening_id, film_id, film_title, theater_id, starts_at, seats, notes (read with `FINAL`) |
| `scenes` / `current_scenes` | a film's scene timeline; each import is a revision, `current_scenes` is the newest |
| `screening_scenes` | every screening with its film's current scenes |
| `screening_scene_seconds` | (screening_id, movie_second) -> scene: second s is in [start_s, end_s) |
| `audience_totals` | `audience_seconds` summed per screening and second (attending, reacting, `r_*`, `n_*`, intensity sums) |
| `scene_audience` | per screening and scene: engagement and mean reaction shares (`share_*`), mean intensity per emotion, peak second |
| `scene_viewer_peaks` | per screening, scene and viewer: peak intensity per emotion, the reactions shown (`reactions`) |
| `pipeline_metrics` | worker health samples (ts, component, instance, metric, value) for the live dashboard |

Scene timelines come from `moviemotion import-scenes --film FILM scenes.csv` (columns `scene_no,start,end,title,
description`; times `HH:MM:SS[.mmm]` or seconds) or, without a scene list, from the film's subtitles
(`import-scenes --film FILM film.srt --gap 5`): cues separated by at least `--gap` seconds of silence start a new
scene; scenes tile the film from 0 to the last cue.

## Pipeline health: a ClickHouse table, not Prometheus

Workers insert one row per metric every few seconds into `pipeline_metrics` (names in
`stream_processors/metrics.py`: `faces_per_s`, `events_per_s`, `dead_letters_per_s`, `consumer_lag`,
`e2e_latency_p50_ms`, `e2e_latency_p99_ms`). One datasource serves every dashboard panel, health sits next to the emotion data it
explains (same time axis, same screening), and the panels' SQL is tested against the real store like every
other query. Prometheus would add a second server to run and secure for six numbers.

## Access

Analysts and Grafana use a read-only account. Real servers up to 20.x (Debian's 18.16): a users.xml user
with `<profile>readonly</profile>` (readonly=1), see `infra/clickhouse/local_server.py` `ServerUser`. Servers
with SQL access control: `moviemotion grant-analyst --print` gives the `CREATE ROLE analyst` / `GRANT SELECT`
statements. The embedded store has two accounts, `writer` and the read-only `analyst` that `moviemotion
query`, `report` and `sql` use (docs/security.md).
"""


def render_query(query: NamedQuery) -> str:
    params = [f"`{name}` (required)" for name in query.required] + [f"`{name}` = {value!r}" for name, value in query.defaults.items()]
    return "\n".join(
        [
            f"### {query.question}",
            "",
            f"`{query.name}` - {query.explanation}",
            "",
            f"Parameters: {', '.join(params)}. Columns: {', '.join(f'`{c}`' for c in query.columns)}.",
            "",
            "```sql",
            query.sql.strip(),
            "```",
            "",
        ]
    )


def render_cookbook() -> str:
    return _PREAMBLE + "\n## Questions\n\n" + "\n".join(render_query(query) for query in QUERIES)


def write_cookbook(path: Path = COOKBOOK_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_cookbook())
    return path
