"""`moviemotion worker`: run a stream-processing worker (the Faust app of stream_processors.app)."""
from __future__ import annotations

import click
import faust
from mode.utils.loops import get_event_loop

from schemas.settings import Settings


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
    from stream_processors.app import build_app
    from stream_processors.scoring import load_scoring_engine

    settings = settings.with_overrides(max_batch=max_batch, engine_batch=engine_batch, engine_lanes=engine_lanes,
                                       engine_backend=engine_backend, reaction_threshold=reaction_threshold,
                                       model_precision=model_precision)
    settings.state_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level of its datadir
    app = build_app(settings, load_scoring_engine(settings))
    # faust.Worker runs the app until SIGTERM/SIGINT; stopping, the consumer leaves the group at once.
    faust.Worker(app, loglevel=loglevel, loop=get_event_loop()).execute_from_commandline()


def register(group: click.Group) -> None:
    group.add_command(worker)
