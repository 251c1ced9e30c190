"""`moviemotion demo`: a sample screening end to end on the local stack: registered with its scene list, scored,
summarised (agreement of both labels with the script, strongest moments) and reported (timeline PNG + CSVs)."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click
from tqdm import tqdm

from schemas.emotions import EMOTIONS
from infra.clickhouse.client import connect
from infra.stack import up
from moviemotion.analytics.catalog import Screening, register_screening
from moviemotion.analytics.queries import ANY_REACTION, run_query
from moviemotion.analytics.report import REPORT_STEPS, build_report
from moviemotion.analytics.scenes import Scene, read_scene_csv, store_scenes
from moviemotion.ground_truth import agreement, read_segments, score_segments
from moviemotion.pipeline_run import publish_video, start_worker, stop_worker, wait_until_scored
from schemas.settings import Settings
from producers.camera_producer import CameraConfig
from producers.sample_render import SAMPLE_DIR
from producers.sample_screening import generate_sample_screening

SAMPLE_FPS = 5.0
TOP_MOMENTS = 5
SAMPLE_SCENES_PATH = SAMPLE_DIR / "scenes.csv"  # the sample script's timeline as scenes (committed beside it)
SAMPLE_FILM_ID = "sample-film"
SAMPLE_FILM_TITLE = "The Sample Screening"
REACTIONS = tuple(e for e in EMOTIONS if e != "neutral")


def strongest_moments(client, screening_id: str, scenes: list[Scene] = (), limit: int = TOP_MOMENTS) -> list[tuple[int, str, float, int]]:
    """(movie second, reaction, share of measured attending viewers showing it, measured viewers) with the largest
    shares, one per reaction and scene (seconds outside every scene: per minute), the earliest second on ties.
    Viewers whose reaction was not measured (stored before migration 0004) count in no share."""
    columns = ", ".join(f"sum(r_{e})" for e in REACTIONS)
    rows = client.query(
        f"SELECT movie_second, sum(reacting) + sum(r_neutral) AS measured_viewers, {columns} FROM audience_seconds "
        "WHERE screening_id = %(s)s GROUP BY movie_second HAVING measured_viewers > 0",
        {"s": screening_id},
    )
    moments = sorted(
        ((second, emotion, count / measured, measured)
         for second, measured, *counts in rows
         for emotion, count in zip(REACTIONS, counts)
         if count > 0),
        key=lambda m: (-m[2], m[0], REACTIONS.index(m[1])),
    )
    strongest, seen = [], set()
    for moment in moments:
        scene = next((s.scene_no for s in scenes if s.start_s <= moment[0] < s.end_s), None)
        group = (moment[1], scene if scene is not None else f"minute {moment[0] // 60}")
        if group not in seen:
            seen.add(group)
            strongest.append(moment)
    return strongest[:limit]


def register_sample(client, screening_id: str, sample, starts_at: datetime) -> list[Scene]:
    """Register the demo's screening of the sample film and import the film's committed scene list."""
    register_screening(client, Screening(screening_id, SAMPLE_FILM_ID, SAMPLE_FILM_TITLE, sample.theater_id, starts_at, len(sample.seats), "moviemotion demo"))
    scenes = read_scene_csv(SAMPLE_SCENES_PATH)
    store_scenes(client, SAMPLE_FILM_ID, scenes, SAMPLE_SCENES_PATH.name)
    return scenes


@click.command("demo")
@click.option("--screening", "screening_id", default=None, help="Screening id (default: demo-<UTC time>, so each run is new).")
@click.option("--timeout", type=click.FloatRange(min=10), default=600, show_default=True, help="Seconds to wait for every frame to be scored.")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Where the report goes (default: <state dir>/reports/<screening>).")
@click.pass_obj
def demo(settings: Settings, screening_id: str | None, timeout: float, report_dir: Path | None) -> None:
    """Bring up the local stack, register a screening of the sample film with its scene list, generate the sample
    screening, run a producer and a worker, wait until every frame is scored, summarise the audience's reactions
    and write the screening's report."""
    started = datetime.now(timezone.utc)
    screening_id = screening_id or started.strftime("demo-%Y%m%d-%H%M%S")
    with tqdm(total=4, desc="stack", unit="step") as bar:
        up(settings, progress=lambda step: (bar.set_postfix_str(step), bar.update(1)))
    sample_dir = settings.state_dir / "sample"
    click.echo(f"sample screening -> {sample_dir}")
    sample = generate_sample_screening(sample_dir, progress=True)
    with connect(settings) as client:
        scenes = register_sample(client, screening_id, sample, started.replace(tzinfo=None, microsecond=0))
    click.echo(f"registered screening {screening_id} of {SAMPLE_FILM_ID} with {len(scenes)} scenes from {SAMPLE_SCENES_PATH.name}")
    log_path = settings.state_dir / "logs" / "worker.log"
    worker = start_worker(settings, log_path)
    click.echo(f"worker started (pid {worker.pid}, log {log_path})")
    try:
        config = CameraConfig(screening_id, sample.theater_id, sample.camera_id)
        stats = publish_video(settings, sample.video_path, sample.seat_map_path, config, SAMPLE_FPS)
        click.echo(f"producer: {stats.published} face crops from {stats.frames} frames published to {settings.topics.faces}")
        with connect(settings) as client, tqdm(total=stats.published, desc="scored", unit="face") as bar:
            def show(progress) -> None:
                bar.update(progress.frames_stored - bar.n)
                bar.set_postfix_str(f"viewers complete {progress.viewers_complete}/{progress.viewers}")

            wait_until_scored(client, screening_id, stats.published, timeout, show, worker)
    finally:
        stop_worker(worker)
    out_dir = report_dir or settings.state_dir / "reports" / screening_id
    with connect(settings) as client:
        summarise(client, screening_id, sample, scenes)
        with tqdm(total=REPORT_STEPS, desc="report", unit="step") as bar:
            files = build_report(client, screening_id, out_dir, on_step=lambda: bar.update(1))
    click.echo(f"report: {files.png}")
    click.echo(f"        {', '.join(p.name for p in (files.timeline_csv, files.scenes_csv, files.moments_csv, files.metrics_csv, files.norms_csv))} beside it")
    click.echo("")
    click.echo("query the results (the stack keeps running; `moviemotion down` stops it):")
    click.echo(f"  moviemotion query scene_summary -p screening={screening_id}")
    click.echo(f"  moviemotion sql \"SELECT movie_second, seat_id, reaction, dominant, round(intensity, 2) FROM viewer_seconds "
               f"WHERE screening_id = '{screening_id}' ORDER BY movie_second, seat_id LIMIT 20\"")


def label_agreement(client, screening_id: str, ground_truth_csv: Path, column: str) -> tuple[float, int, int] | None:
    """(share of scripted segments whose most common stored `column` label is the scripted one, segments, segments
    with a measured label) for `column` in ('dominant', 'reaction'); None when no visible second has one (a worker
    from before reactions were measured stores reaction '')."""
    stored = {
        (seat, second): label
        for seat, second, label in client.query(
            f"SELECT seat_id, movie_second, {column} FROM viewer_seconds WHERE screening_id = %(s)s AND visible = 1 AND {column} != ''",
            {"s": screening_id})
    }
    if not stored:
        return None
    results = score_segments(read_segments(ground_truth_csv, "emotion" if column == "dominant" else "reaction"), stored)
    return agreement(results), len(results), sum(r.predicted is not None for r in results)


def summarise(client, screening_id: str, sample, scenes: list[Scene]) -> None:
    params = {"s": screening_id}
    frames, viewers = client.query(
        "SELECT count(), uniqExact(person_key) FROM frame_scores WHERE screening_id = %(s)s", params)[0]
    events, visible = client.query(
        "SELECT count(), sum(visible) FROM viewer_seconds WHERE screening_id = %(s)s", params)[0]
    click.echo("")
    click.echo(f"screening {screening_id}: {frames} face frames scored, {viewers} viewers, "
               f"{events} per-second events ({visible} visible)")
    click.echo("agreement with the script (share of scripted segments whose most common label is the scripted one):")
    for column, what in (("reaction", "reaction (above each viewer's resting face)"), ("dominant", "dominant (raw label)")):
        result = label_agreement(client, screening_id, sample.ground_truth_path, column)
        if result is None:
            click.echo(f"  {what:44s} not measured (the worker stored no {column})")
        else:
            share, segments, _measured = result
            click.echo(f"  {what:44s} {share:4.0%} of {segments} segments")
    metrics = {row["reaction"]: row for row in run_query(client, "audience_metrics", screening=screening_id)}
    if ANY_REACTION in metrics:
        engagement = metrics[ANY_REACTION]
        click.echo(f"engagement: {engagement['mean_share']:.0%} of viewers reacting per second on average; "
                   f"{engagement['ever_viewers']} of {engagement['viewers']} viewers reacted at some point")
    click.echo("strongest moments (share of measured viewers showing the reaction; the strongest per reaction and scene):")
    for second, emotion, share, measured in strongest_moments(client, screening_id, scenes):
        scene = next((s.title for s in scenes if s.start_s <= second < s.end_s), "")
        click.echo(f"  {second // 60:02d}:{second % 60:02d}  {emotion:<10} {share:5.0%} of {measured}  {scene}")


def register(group: click.Group) -> None:
    group.add_command(demo)
