"""`moviemotion engine ...`: serve the emotion model over HTTP, export a checkpoint to ONNX."""
from __future__ import annotations

from pathlib import Path

import click

from engines.model_files import DEFAULT_MODEL
from schemas.settings import Settings

MODEL_OPTION = click.option(
    "--model",
    "model_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_MODEL,
    show_default=True,
    help="ONNX emotion model file (metadata_props must describe it).",
)


@click.command("serve")
@MODEL_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8501, show_default=True, help="TCP port (0 = any free port).")
@click.option(
    "--backend",
    type=click.Choice(["auto", "onnxruntime", "tensorrt"]),
    default=None,
    help="Engine backend; auto = TensorRT with a CUDA GPU, else ONNX Runtime [default: $MOVIEMOTION_ENGINE or auto].",
)
@click.option("--threads", type=int, default=2, show_default=True, help="ONNX Runtime intra-op threads.")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16", "int8"]),
    default="fp16",
    show_default=True,
    help="TensorRT precision (ignored by ONNX Runtime).",
)
@click.option("--max-megapixels", type=click.FloatRange(min=0.01), default=25.0, show_default=True,
              help="Pixel budget per request, read from the image header before decoding (JSON crops: all together); "
                   "over it -> 413.")
@click.option("--detect-max-side", type=click.IntRange(min=64), default=1920, show_default=True,
              help="Images are downscaled to this longer side for face detection (faces are cropped from the full image).")
@click.option("--max-connections", type=click.IntRange(min=1), default=8, show_default=True,
              help="Connections served at once (one thread each); more wait until one is free.")
@click.option("--max-inflight", type=click.IntRange(min=1), default=2, show_default=True,
              help="Requests decoding and scoring at once; one that finds no free slot by its deadline gets 503 + Retry-After.")
@click.option("--request-timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds for a request's headers and body to arrive in full (else 408) and to get a scoring slot.")
@click.pass_obj
def serve_command(settings: Settings, model_path: Path, host: str, port: int, backend: str | None, threads: int, precision: str,
                  max_megapixels: float, detect_max_side: int, max_connections: int, max_inflight: int,
                  request_timeout: float) -> None:
    """Serve the emotion model over HTTP.

    \b
    GET  /healthz                     liveness
    GET  /v1/model                    model metadata and backend
    POST /v1/faces:detect-and-score   PNG/JPEG/BMP/WebP image -> faces with emotions
    POST /v1/crops:score              .npy uint8 (N,S,S) or JSON {"crops": [base64 PNG]}

    Hostile input is bounded: image size (header read before decoding), connections, concurrent
    scoring and the time a request may take to arrive (see the options).
    """
    from engines.model_meta import ModelError
    from engines.select import EngineUnavailable, load_engine
    from engines.serve import ScoringServer, ScoringService, ServeLimits

    limits = ServeLimits(max_pixels=int(max_megapixels * 1_000_000), detect_max_side=detect_max_side,
                         max_connections=max_connections, max_inflight=max_inflight,
                         request_timeout_s=request_timeout)
    try:
        engine = load_engine(backend or settings.engine_backend, model_path, threads=threads, precision=precision,
                             cache_dir=settings.state_dir / "tensorrt")
    except (ModelError, EngineUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        server = ScoringServer(ScoringService(engine, detect_max_side=limits.detect_max_side), host, port, limits)
    except OSError as exc:
        engine.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    click.echo(f"serving {engine.model_version} on {engine.backend} at {server.url} (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        server.server_close()
        engine.close()


@click.command("export")
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Training checkpoint (runs/<run>/best.pt); copied before reading.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_MODEL,
    show_default=True,
    help="ONNX file to write.",
)
@click.option("--version", "version", required=True, help="model_version stored in the file, e.g. 2.0.0.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".cache"),
    show_default=True,
    help="FER+ aligned-face cache (faces used to check ONNX Runtime against torch).",
)
@click.option(
    "--prior-tau",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="Post-hoc prior correction folded into the graph: logits - TAU * log(FER+ training prior).",
)
def export_command(checkpoint: Path, out: Path, version: str, cache_dir: Path, prior_tau: float) -> None:
    """Export a training checkpoint to ONNX (softmax output, dynamic batch, metadata) and verify it.

    Needs torch (pip install -e '.[train]').
    """
    try:
        from engines.training.export import export_checkpoint
    except ModuleNotFoundError as exc:
        raise click.ClickException(f"export needs {exc.name} (pip install -e '.[train]')") from None
    try:
        click.echo(export_checkpoint(checkpoint, out, version, cache_dir, prior_tau))
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None


def register(group: click.Group) -> None:
    """Add the `engine` command group (serve, export; evaluation adds its own commands here)."""

    @group.group("engine")
    def engine() -> None:
        """Emotion engine: serve, export (and evaluate/benchmark)."""

    engine.add_command(serve_command)
    engine.add_command(export_command)
    _add_evaluation_commands(engine)


def _add_evaluation_commands(engine: click.Group) -> None:
    """`evaluate` (engines.evaluation) and `benchmark` (benchmarks/engine_throughput.py, a repository
    script rather than an installed package: added when the checkout has it)."""
    import importlib.util
    import sys

    from engines.evaluation import main as evaluate_command

    engine.add_command(evaluate_command, "evaluate")
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "engine_throughput.py"
    if script.is_file():
        spec = importlib.util.spec_from_file_location("moviemotion_engine_throughput", script)
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        engine.add_command(module.main, "benchmark")
