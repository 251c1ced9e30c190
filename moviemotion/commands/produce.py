"""CLI: `produce` (run a camera host: faces from a camera or video to Kafka) and `sample-screening`."""
from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

import click
from tqdm import tqdm

from schemas.settings import Settings
from infra.kafka_security import kafka_python_kwargs
from producers.camera_producer import shipped_model_input_size, BrokerUnavailable, CameraConfig, CameraProducer, open_kafka_producer, stop_on_signals
from producers.opt_out import load_opt_out
from producers.seat_map import SeatMapError, load_seat_map
from producers.sources import Backoff, SourceError, VideoFileSource, open_source


def _start_us(start: str | None) -> int | None:
    if start is None:
        return None
    try:
        moment = datetime.fromisoformat(start)
    except ValueError:
        raise click.BadParameter(f"not an ISO-8601 time: {start!r}", param_hint="--start") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1_000_000)


@click.command("produce")
@click.option("--source", required=True, help="Camera device index (0), video file, or rtsp:// / http:// URL.")
@click.option("--camera", "camera_id", required=True, help="Camera id (must match the seat map's camera_id).")
@click.option("--screening", "screening_id", required=True, help="Screening id.")
@click.option("--theater", "theater_id", required=True, help="Theater id.")
@click.option("--seat-map", "seat_map_path", required=True, type=click.Path(dir_okay=False), help="Seat map JSON for this camera.")
@click.option("--opt-out", "opt_out_path", type=click.Path(dir_okay=False), default=None, help="Seats opted out (one id a line); their faces never leave the host.")
@click.option("--fps", type=click.FloatRange(min=0.1, max=60), default=5.0, show_default=True, help="Frames sampled per second.")
@click.option("--start", default=None, help="Screening start (ISO-8601, naive = UTC). Live sources: movie time origin; files: captured time of frame 0. Default: now.")
@click.option("--crop-size", type=click.IntRange(8, 512), default=None, help="Aligned crop side in pixels. Default: the shipped model's input size (its metadata).")
@click.option("--realtime", is_flag=True, help="Pace a video file at its own speed instead of as fast as possible.")
@click.option("--stats-every", type=click.FloatRange(min=0.5), default=10.0, show_default=True, help="Seconds between stats log lines.")
@click.option("--broker-timeout", type=click.FloatRange(min=0.5), default=10.0, show_default=True, help="Seconds to wait for Kafka at start and at the final flush.")
@click.option("--topic", default=None, help="Topic to publish to. Default: the settings' faces topic.")
@click.option("--max-reconnects", type=click.IntRange(min=0), default=8, show_default=True, help="Reconnect attempts (exponential backoff) before a lost live camera is given up.")
@click.pass_obj
def produce(settings: Settings, source, camera_id, screening_id, theater_id, seat_map_path, opt_out_path, fps,
            start, crop_size, realtime, stats_every, broker_timeout, topic, max_reconnects) -> None:
    """Run one camera host: detect, track and align faces, publish crops to the faces topic.

    Only aligned face crops keyed by the seat-based person key leave the host. SIGTERM/SIGINT
    flush and exit cleanly.
    """
    topic = topic or settings.topics.faces
    try:
        with stop_on_signals(threading.Event()) as stop:
            seat_map = load_seat_map(seat_map_path)
            opt_out = load_opt_out(opt_out_path)
            frames = open_source(source, fps, start_us=_start_us(start), realtime=realtime,
                                 backoff=Backoff(max_retries=max_reconnects), stop=stop)
            total = None
            if isinstance(frames, VideoFileSource):
                seat_map.check_frame_size(*frames.frame_size)
                total = int(frames.frame_count / frames.video_fps * fps) or None
            config = CameraConfig(screening_id, theater_id, camera_id, crop_size or shipped_model_input_size(), stats_every, broker_timeout)
            camera = CameraProducer(config, seat_map, opt_out)
            producer = open_kafka_producer(settings.kafka_bootstrap, broker_timeout, kafka_python_kwargs(settings))
            try:
                with tqdm(frames, total=total, desc=f"camera {camera_id}", unit="frame") as progress:
                    stats = camera.publish(progress, producer, topic, stop)
            finally:
                producer.close(timeout=broker_timeout)
    except (SeatMapError, SourceError, BrokerUnavailable, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"published {stats.published} faces from {stats.frames} frames "
               f"({stats.dropped_opt_out} opted-out, {stats.dropped_no_seat} outside seats) to {topic}")


@click.command("sample-screening")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory for the video, ground truth CSV and seat map.")
@click.option("--rebuild-sprite", is_flag=True, help="First rebuild producers/sample/faces.npz from the shared FER2013/FER+ data.")
def sample_screening(out_dir, rebuild_sprite) -> None:
    """Generate the reproducible sample screening (6-seat camera-row video + ground truth + seat map)."""
    from producers.sample_render import load_script
    from producers.sample_screening import generate_sample_screening
    from producers.sample_sprite import rebuild_sprite as rebuild

    try:
        if rebuild_sprite:
            click.echo(f"sprite: {rebuild(load_script())}")
        sample = generate_sample_screening(Path(out_dir), progress=True)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"video: {sample.video_path} ({sample.frame_count} frames, {sample.duration_s:g}s, seats {', '.join(sample.seats)})")
    click.echo(f"ground truth: {sample.ground_truth_path}")
    click.echo(f"seat map: {sample.seat_map_path}")


def register(group: click.Group) -> None:
    group.add_command(produce)
    group.add_command(sample_screening)
