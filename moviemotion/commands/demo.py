"""`moviemotion demo`: a sample screening end to end on the local stack, then a short summary."""
from __future__ import annotations

from datetime import datetime, timezone

import click
from tqdm import tqdm

from engines.emotions import EMOTIONS
from infra.clickhouse.client import connect
from infra.stack import up
from moviemotion.ground_truth import agreement, read_segments, score_segments
from moviemotion.pipeline_run import publish_video, start_worker, stop_worker, wait_until_scored
from moviemotion.settings import Settings
from producers.camera_producer import CameraConfig
from producers.sample_screening import generate_sample_screening

SAMPLE_FPS = 5.0
TOP_MOMENTS = 5


def strongest_moments(client, screening_id: str, limit: int = TOP_MOMENTS) -> list[tuple[int, str, float, int]]:
    """(movie second, emotion, share of attending viewers, attending) with the largest non-neutral shares."""
    columns = ", ".join(f"sum(n_{e})" for e in EMOTIONS)
    rows = client.query(
        f"SELECT movie_second, sum(attending), {columns} FROM audience_seconds "
        "WHERE screening_id = %(s)s GROUP BY movie_second HAVING sum(attending) > 0",
        {"s": screening_id},
    )
    moments = [
        (second, emotion, count / attending, attending)
        for second, attending, *counts in rows
        for emotion, count in zip(EMOTIONS, counts)
        if emotion != "neutral" and count > 0
    ]
    moments.sort(key=lambda m: (-m[2], m[0]))
    return moments[:limit]


@click.command("demo")
@click.option("--screening", "screening_id", default=None, help="Screening id (default: demo-<UTC time>, so each run is new).")
@click.option("--timeout", type=click.FloatRange(min=10), default=600, show_default=True, help="Seconds to wait for every frame to be scored.")
@click.pass_obj
def demo(settings: Settings, screening_id: str | None, timeout: float) -> None:
    """Bring up the local stack, generate the sample screening, run a producer and a worker,
    wait until every frame is scored, and summarise the audience's strongest moments."""
    screening_id = screening_id or datetime.now(timezone.utc).strftime("demo-%Y%m%d-%H%M%S")
    with tqdm(total=4, desc="stack", unit="step") as bar:
        up(settings, progress=lambda step: (bar.set_postfix_str(step), bar.update(1)))
    sample_dir = settings.state_dir / "sample"
    click.echo(f"sample screening -> {sample_dir}")
    sample = generate_sample_screening(sample_dir, progress=True)
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
    with connect(settings) as client:
        summarise(client, screening_id, sample)


def summarise(client, screening_id: str, sample) -> None:
    params = {"s": screening_id}
    frames, viewers = client.query(
        "SELECT count(), uniqExact(person_key) FROM frame_scores WHERE screening_id = %(s)s", params)[0]
    events, visible = client.query(
        "SELECT count(), sum(visible) FROM viewer_seconds WHERE screening_id = %(s)s", params)[0]
    dominant = {
        (seat, second): emotion
        for seat, second, emotion in client.query(
            "SELECT seat_id, movie_second, dominant FROM viewer_seconds WHERE screening_id = %(s)s AND visible = 1", params)
    }
    results = score_segments(read_segments(sample.ground_truth_path), dominant)
    click.echo("")
    click.echo(f"screening {screening_id}: {frames} face frames scored, {viewers} viewers, "
               f"{events} per-second events ({visible} visible)")
    click.echo(f"dominant emotion matches the script in {agreement(results):.0%} of {len(results)} scripted segments")
    click.echo("strongest moments (share of attending viewers):")
    for second, emotion, share, attending in strongest_moments(client, screening_id):
        click.echo(f"  {second // 60:02d}:{second % 60:02d}  {emotion:<10} {share:5.0%} of {attending}")
    click.echo("")
    click.echo("query the results (the stack keeps running; `moviemotion down` stops it):")
    click.echo(f"  moviemotion sql \"SELECT movie_second, seat_id, dominant, round(intensity, 2) FROM viewer_seconds "
               f"WHERE screening_id = '{screening_id}' ORDER BY movie_second, seat_id LIMIT 20\"")


def register(group: click.Group) -> None:
    group.add_command(demo)
