"""Review query latency on a full-size screening: 300 viewers x 2 hours at one event per viewer per second
(2.16M viewer_seconds rows) in a fresh embedded chDB store, 60 scenes of 2 minutes.

Data is generated inside ClickHouse (INSERT ... SELECT FROM numbers(); the materialized views fill
audience_seconds as for real data): laughs every 4 minutes, a surprise every 10, noise elsewhere; `reaction`
(and the raw `dominant`) is the emotion whose intensity reaches 0.3, else neutral.
Each review query runs `--runs` times through the store's HTTP client; the table prints the median and the
worst latency (target: under 1 s each).

Run: `python benchmarks/review_queries.py --help`.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import click

from schemas.emotions import EMOTIONS
from infra.clickhouse.client import ClickHouseClient, connect
from infra.clickhouse.migrations import apply_migrations
from infra.clickhouse.service import start_store, stop_store
from moviemotion.analytics.catalog import Screening, register_screening
from moviemotion.analytics.queries import run_query
from moviemotion.analytics.scenes import Scene, store_scenes
from schemas.settings import load_settings

SCREENING, FILM = "bench-screening", "bench-film"
REVIEW_QUERIES = {
    "scene_summary": {"screening": SCREENING},
    "resonant_moments": {"screening": SCREENING},
    "funniest_seconds": {"screening": SCREENING},
    "surprised_scenes": {"screening": SCREENING},
    "audience_timeline": {"screening": SCREENING},
    "attention_by_scene": {"screening": SCREENING},
    "laugh_durations": {"screening": SCREENING},
    "outlier_viewers": {"screening": SCREENING},
    "audience_metrics": {"screening": SCREENING},
    "scene_reaction_metrics": {"screening": SCREENING},
    "scene_impact": {"screening": SCREENING},
    "screening_norms": {"screening": SCREENING},
}


def generate_sql(viewers: int, seconds: int) -> str:
    """One INSERT ... SELECT producing viewers x seconds rows of viewer_seconds."""
    i = {e: "0" for e in EMOTIONS}
    i["happiness"] = "if(modulo(sec, 240) < 6 AND r < 0.7, 0.35 + r * 0.5, r * 0.1)"
    i["surprise"] = "if(modulo(sec, 600) < 3 AND r2 < 0.6, 0.3 + r2, r2 * 0.1)"
    i["sadness"] = "r3 * 0.15"
    columns = ", ".join(f"i_{e}" for e in EMOTIONS) + ", " + ", ".join(f"p_{e}" for e in EMOTIONS)
    intensities = ", ".join(f"toFloat32({i[e]}) AS i_{e}" for e in EMOTIONS)
    probabilities = ", ".join(f"toFloat32(if(dom = '{e}', 0.6, 0.4 / 7)) AS p_{e}" for e in EMOTIONS)
    return f"""
INSERT INTO viewer_seconds (event_id, screening_id, theater_id, camera_id, seat_id, person_key, movie_second,
    captured_us, captured_at, frames, visible, attending, baseline_ready, dominant, reaction, {columns},
    intensity, valence, arousal, model_version)
SELECT concat(pk, '|', toString(sec)), '{SCREENING}', 'theater-1', concat('cam-', toString(intDiv(p, 50))),
    concat('S', toString(p)), pk, sec, toUInt64(start + sec) * 1000000, toDateTime(start + sec), toUInt16(5),
    toUInt8(1), toUInt8(r4 > 0.05), toUInt8(1), dom, dom, {columns},
    greatest(i_happiness, i_surprise, i_sadness) AS intensity, i_happiness - i_sadness AS valence,
    greatest(i_happiness, i_surprise) AS arousal, 'bench'
FROM (
    SELECT *, multiIf(i_happiness >= 0.3, 'happiness', i_surprise >= 0.3, 'surprise', 'neutral') AS dom, {probabilities}
    FROM (
        SELECT toUInt32(modulo(number, {viewers})) AS p, toUInt32(intDiv(number, {viewers})) AS sec,
            concat('pk-', toString(p)) AS pk, toUInt32(1735732800) AS start,
            modulo(cityHash64(number, 1), 1000) / 1000 AS r, modulo(cityHash64(number, 2), 1000) / 1000 AS r2,
            modulo(cityHash64(number, 3), 1000) / 1000 AS r3, modulo(cityHash64(number, 4), 1000) / 1000 AS r4,
            {intensities}
        FROM numbers({viewers * seconds})
    )
)"""


def populate(client: ClickHouseClient, viewers: int, seconds: int, scene_s: int) -> float:
    """Register the screening and its scenes, generate the rows; return the generation time in seconds."""
    register_screening(client, Screening(SCREENING, FILM, "Benchmark Film", "theater-1", datetime(2025, 1, 1, 12), viewers))
    scenes = [Scene(n + 1, float(start), float(min(start + scene_s, seconds)), f"Scene {n + 1}") for n, start in enumerate(range(0, seconds, scene_s))]
    store_scenes(client, FILM, scenes, "benchmark")
    began = time.perf_counter()
    client.execute(generate_sql(viewers, seconds))
    return time.perf_counter() - began


def time_query(client: ClickHouseClient, name: str, params: dict, runs: int) -> list[float]:
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        run_query(client, name, **params)
        timings.append(time.perf_counter() - began)
    return timings


@click.command()
@click.option("--viewers", type=click.IntRange(1), default=300, show_default=True)
@click.option("--minutes", type=click.IntRange(1), default=120, show_default=True, help="Screening length.")
@click.option("--scene-s", type=click.IntRange(10), default=120, show_default=True, help="Scene length in seconds.")
@click.option("--runs", type=click.IntRange(1), default=5, show_default=True, help="Timed runs per query.")
def main(viewers: int, minutes: int, scene_s: int, runs: int) -> None:
    """Print review query latencies on a generated full-size screening (fresh temporary chDB store)."""
    seconds = minutes * 60
    with tempfile.TemporaryDirectory(prefix="review-bench-") as state_dir:
        settings = load_settings(state_dir=Path(state_dir), clickhouse_url="")
        start_store(settings)
        try:
            with connect(settings, timeout=600) as client:
                apply_migrations(client)
                generated = populate(client, viewers, seconds, scene_s)
                rows = client.query("SELECT count() FROM viewer_seconds")[0][0]
                click.echo(f"generated {rows:,} viewer_seconds rows ({viewers} viewers x {seconds} s) in {generated:.1f} s ({rows / generated:,.0f} rows/s)")
                click.echo(f"{'query':20s} {'median_s':>9s} {'max_s':>7s}  (runs={runs}, target < 1 s)")
                for name, params in REVIEW_QUERIES.items():
                    timings = time_query(client, name, params, runs)
                    verdict = "ok" if statistics.median(timings) < 1.0 else "SLOW"
                    click.echo(f"{name:20s} {statistics.median(timings):9.3f} {max(timings):7.3f}  {verdict}")
        finally:
            stop_store(settings)


if __name__ == "__main__":
    main()
