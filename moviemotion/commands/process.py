"""`moviemotion worker`: run a stream-processing worker (the Faust app in stream_processors.app)."""
from __future__ import annotations

import os
import sys

import click

from schemas.secrets import secret_env
from schemas.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process (or the Faust app module) load these settings.

    Passwords never go here as values: one read from a file is passed as its *_FILE path; one from the
    environment reaches the child through the inherited environment."""
    return {
        "MOVIEMOTION_STATE_DIR": str(settings.state_dir),
        "MOVIEMOTION_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "MOVIEMOTION_CLICKHOUSE_URL": settings.clickhouse_url,
        "MOVIEMOTION_PROCESSOR_GROUP": settings.processor_group,
        "MOVIEMOTION_FACES_PARTITIONS": str(settings.faces_partitions),
        "MOVIEMOTION_COMMIT_INTERVAL_S": str(settings.commit_interval_s),
        "MOVIEMOTION_REACTION_THRESHOLD": str(settings.reaction_threshold),
        "MOVIEMOTION_MODEL_PRECISION": settings.model_precision,
        "MOVIEMOTION_KAFKA_SECURITY_PROTOCOL": settings.kafka_security_protocol,
        "MOVIEMOTION_KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism,
        "MOVIEMOTION_KAFKA_USERNAME": settings.kafka_username,
        "MOVIEMOTION_KAFKA_CA_FILE": settings.kafka_ca_file,
        **secret_env("MOVIEMOTION_KAFKA_PASSWORD", settings.kafka_password),
        **secret_env("MOVIEMOTION_CLICKHOUSE_PASSWORD", settings.clickhouse_password),
    }


@click.command("worker")
@click.option("--loglevel", "-l", default="info", type=click.Choice(["debug", "info", "warning", "error"]), show_default=True)
@click.option("--max-batch", type=click.IntRange(min=1), default=None, help="Faces per micro-batch taken from Kafka and stored together [default: 256].")
@click.option("--engine-batch", type=click.IntRange(min=1), default=None, help="Largest engine call; bigger micro-batches run in chunks (CPU: 64, GPU: 256) [default: 64].")
@click.option("--engine-lanes", type=click.IntRange(min=1), default=None, help="ONNX Runtime: model copies scoring at once, one thread each; one per core [default: 2].")
@click.option("--engine", "engine_backend", type=click.Choice(["auto", "onnxruntime", "tensorrt"]), default=None)
@click.option("--reaction-threshold", type=click.FloatRange(min=0, max=1, min_open=True), default=None,
              help="A reaction: an emotion's probability this far above the viewer's own baseline [default: 0.10].")
@click.option("--precision", "model_precision", type=click.Choice(["fp32", "fp16", "int8"]), default=None,
              help="Emotion model precision: int8 = the shipped INT8 model (CPU) / explicit INT8 (TensorRT) [default: int8].")
@click.pass_obj
def worker(settings: Settings, loglevel: str, max_batch: int | None, engine_batch: int | None, engine_lanes: int | None,
           engine_backend: str | None, reaction_threshold: float | None, model_precision: str | None) -> None:
    """Score faces from Kafka and store emotion events in ClickHouse until stopped (SIGTERM/Ctrl-C).

    Start several on different hosts (same --bootstrap): they share the `faces` partitions and
    per-person state moves with the partitions on rebalance.
    """
    os.environ.update(settings_env(settings.with_overrides(reaction_threshold=reaction_threshold, model_precision=model_precision)))
    settings.state_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level of its datadir
    if max_batch:
        os.environ["MOVIEMOTION_MAX_BATCH"] = str(max_batch)
    if engine_batch:
        os.environ["MOVIEMOTION_ENGINE_BATCH"] = str(engine_batch)
    if engine_lanes:
        os.environ["MOVIEMOTION_ENGINE_LANES"] = str(engine_lanes)
    if engine_backend:
        os.environ["MOVIEMOTION_ENGINE"] = engine_backend
    from stream_processors.app import app

    # --without-web: app.py disables the web server, but the worker command turns it back on (port 6066,
    # so a second worker on the same host would fail to start).
    sys.argv = ["moviemotion-worker", "worker", "--without-web", "--loglevel", loglevel]
    app.main()


def register(group: click.Group) -> None:
    group.add_command(worker)
