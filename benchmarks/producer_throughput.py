"""Camera producer throughput: faces/s published from the sample screening (YuNet detection, tracking,
alignment, encoding and Kafka included), messages and bytes per face on the wire, and the FaceFrame
codec's encode+decode rate.

Needs a Kafka broker: `--bootstrap` (default: the settings' broker) or `--temp-broker` to start a
throwaway one on free ports. Each run publishes to a fresh topic `faces-bench-<random>`.

Run: `python benchmarks/producer_throughput.py --help`.
"""
from __future__ import annotations

import socket
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import click
import numpy as np

from infra.kafka_broker import KafkaBroker, admin_client
from schemas.settings import load_settings
from producers.camera_producer import CameraConfig, CameraProducer, open_kafka_producer
from producers.seat_map import load_seat_map
from producers.sources import open_source
from producers.sample_screening import generate_sample_screening
from schemas.face_frame import FaceFrame, decode_face_frame, encode_face_frame


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def codec_rate(count: int, crop_size: int) -> float:
    """FaceFrame encode+decode round trips per second."""
    rng = np.random.default_rng(0)
    frame = FaceFrame("bench", "theater", "cam", "A1", 1, 1, time.time_ns() // 1000, 1.0,
                      rng.integers(0, 256, (crop_size, crop_size), dtype=np.uint8), (1.0, 2.0, 90.0, 90.0),
                      rng.uniform(0, 100, (5, 2)), 0.9, 1.0, -2.0)
    began = time.perf_counter()
    for _ in range(count):
        decode_face_frame(encode_face_frame(frame))
    return count / (time.perf_counter() - began)


@click.command()
@click.option("--bootstrap", default=None, help="Kafka bootstrap. Default: $MOVIEMOTION_KAFKA_BOOTSTRAP or 127.0.0.1:19092.")
@click.option("--temp-broker", is_flag=True, help="Start a throwaway local broker on free ports for the run.")
@click.option("--fps", type=float, default=10.0, show_default=True, help="Sampling rate (10 = every frame of the sample).")
@click.option("--crop-size", type=int, default=48, show_default=True)
@click.option("--codec-messages", type=int, default=50_000, show_default=True, help="Round trips for the codec rate.")
def main(bootstrap, temp_broker, fps, crop_size, codec_messages) -> None:
    """Print producer and codec throughput figures."""
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="producer-bench-")))
        if temp_broker:
            broker = KafkaBroker(work / "kafka", port=_free_port(), controller_port=_free_port())
            broker.start(timeout=120)
            stack.callback(broker.stop)
            bootstrap = broker.bootstrap
        bootstrap = bootstrap or load_settings().kafka_bootstrap
        sample = generate_sample_screening(work / "sample", progress=True)
        topic = f"faces-bench-{uuid.uuid4().hex[:8]}"
        with admin_client(bootstrap, 30) as admin:
            admin.create_topics({topic: {"num_partitions": 12, "replication_factor": 1}}, timeout_ms=30_000)
        camera = CameraProducer(CameraConfig(sample.screening_id, sample.theater_id, sample.camera_id, crop_size,
                                             stats_every_s=1e9), load_seat_map(sample.seat_map_path))
        producer = open_kafka_producer(bootstrap, timeout_s=15)
        stack.callback(producer.close, 15)
        frames = open_source(str(sample.video_path), fps)
        began = time.perf_counter()
        stats = camera.publish(frames, producer, topic)  # ends with a flush: every face acknowledged
        elapsed = time.perf_counter() - began
        rate = codec_rate(codec_messages, crop_size)

    click.echo(f"sample: {sample.frame_count} frames of {sample.duration_s:g}s, {len(sample.seats)} seats, sampled at {fps:g} fps")
    click.echo(f"frames processed     : {stats.frames} in {elapsed:.1f}s = {stats.frames / elapsed:.1f} frames/s")
    click.echo(f"faces published      : {stats.published} = {stats.published / elapsed:.1f} faces/s (detection + Kafka acks=all)")
    click.echo(f"messages on the wire : {stats.published} ({stats.published / max(stats.frames, 1):.2f} per frame), "
               f"{stats.delivery_errors} delivery errors")
    click.echo(f"bytes per face       : {stats.bytes / max(stats.published, 1):.0f} (key + value; crop {crop_size}x{crop_size} = {crop_size ** 2})")
    click.echo(f"FaceFrame codec      : {rate:,.0f} encode+decode round trips/s")


if __name__ == "__main__":
    main()
