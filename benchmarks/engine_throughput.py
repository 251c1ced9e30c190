"""Engine throughput (faces/s) on ONNX Runtime CPU: the shipped models (float and INT8) vs the reference mini-Xception.

Every model runs with the same thread budget (2 intra-op threads by default) at batch 1, 16, 64, 256.
Measurements are interleaved: each round times every (batch, model) pair for a short slice, so
background load drifts hit all contenders alike; the table reports the median over rounds, the
ratio model/reference and the ratio of each model to the first one per batch size. The shipped
models (default: the float file, then the INT8 file) and any `--model` file run through the
production engine (`engines.select.load_engine("onnxruntime")`: input scaling + IO binding); the
reference through `engines.reference.ReferenceModel` (input scaling + session.run). `--lanes N` adds each
model as the worker runs it (N single-thread lanes scoring chunks of `--lane-batch`, engines/parallel.py).
Inputs are random uint8 faces at each model's own input size (ONNX Runtime CPU kernels are data-independent).

Run: `python benchmarks/engine_throughput.py --help` or `moviemotion benchmark-engine --help`.
"""
from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

DEFAULT_BATCHES = (1, 16, 64, 256)


@dataclass(frozen=True)
class Contender:
    """A model under test: label, version, input side, and its uint8 (N, S, S) -> probs call."""

    label: str
    model_version: str
    input_size: int
    infer: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Result:
    """Median faces/s of one contender at one batch size, with the per-round figures."""

    label: str
    model_version: str
    batch: int
    median_fps: float
    rounds_fps: tuple[float, ...]


def load_contenders(model_paths: list[Path], reference_hdf5: Path, threads: int, cache_dir: Path,
                    lanes: int = 0, lane_batch: int = 64) -> list[Contender]:
    """The models (production ONNX Runtime engine), then (lanes > 0) the same models as the worker's engine of
    `lanes` single-thread lanes, followed by the reference (last)."""
    from engines.reference import ReferenceModel, build_reference_onnx
    from engines.select import load_engine

    contenders = []
    for path in model_paths:
        engine = load_engine("onnxruntime", path, threads=threads)
        contenders.append(Contender(Path(path).name, engine.model_version, engine.metadata.input_size, engine.infer))
    for path in model_paths if lanes > 0 else []:
        engine = load_engine("onnxruntime", path, threads=1, lanes=lanes, max_batch=lane_batch)
        label = f"{Path(path).stem} x{lanes} lanes"
        contenders.append(Contender(label, engine.model_version, engine.metadata.input_size, engine.infer))
    ref = ReferenceModel(build_reference_onnx(reference_hdf5, cache_dir), threads=threads)
    contenders.append(Contender("reference", ref.model_version, ref.input_size, ref.infer))
    return contenders


def measure(infer: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, seconds: float) -> float:
    """Faces/s of repeated `infer(batch)` calls over at least `seconds` (and at least one call)."""
    calls, start = 0, time.perf_counter()
    while True:
        infer(batch)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * len(batch) / elapsed


def run_benchmark(contenders: list[Contender], batches: tuple[int, ...], rounds: int, seconds: float,
                  warmup: int = 3, seed: int = 0, progress: bool = True) -> list[Result]:
    """Interleaved rounds: per round, every batch size, every contender, one timed slice."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    inputs = {(c.label, b): rng.integers(0, 256, size=(b, c.input_size, c.input_size), dtype=np.uint8)
              for c in contenders for b in batches}
    for c in contenders:
        for b in batches:
            for _ in range(warmup):
                c.infer(inputs[(c.label, b)])
    figures: dict[tuple[str, int], list[float]] = {key: [] for key in inputs}
    with tqdm(total=rounds * len(batches) * len(contenders), desc="benchmark", unit="slice", disable=not progress) as bar:
        for _ in range(rounds):
            for b in batches:
                for c in contenders:
                    figures[(c.label, b)].append(measure(c.infer, inputs[(c.label, b)], seconds))
                    bar.update()
    return [Result(c.label, c.model_version, b, statistics.median(figures[(c.label, b)]), tuple(figures[(c.label, b)]))
            for b in batches for c in contenders]


def ratios(results: list[Result]) -> dict[tuple[str, int], float]:
    """faces/s of each non-reference contender divided by the reference's, per batch size."""
    reference = {r.batch: r.median_fps for r in results if r.label == "reference"}
    return {(r.label, r.batch): r.median_fps / reference[r.batch] for r in results if r.label != "reference"}


def ratios_to_first(results: list[Result]) -> dict[tuple[str, int], float]:
    """faces/s of each later non-reference contender divided by the first contender's, per batch size."""
    first = results[0].label
    base = {r.batch: r.median_fps for r in results if r.label == first}
    return {(r.label, r.batch): r.median_fps / base[r.batch] for r in results if r.label not in (first, "reference")}


def render_table(results: list[Result], threads: int) -> str:
    """One row per batch size: median faces/s per contender, then model/reference and model/first-model ratios."""
    labels = list(dict.fromkeys(r.label for r in results))
    models = [label for label in labels if label != "reference"]
    by_key = {(r.label, r.batch): r for r in results}
    rel, rel_first = ratios(results), ratios_to_first(results)
    versions = ", ".join(f"{label} = {by_key[(label, results[0].batch)].model_version}" for label in labels)
    head = (f"{'batch':>5} " + " ".join(f"{label[:30]:>30}" for label in labels) + " "
            + " ".join(f"{('x ' + m)[:30]:>30}" for m in models) + " " + " ".join(f"{('/1 ' + m)[:30]:>30}" for m in models[1:]))
    lines = [f"ONNX Runtime CPU, {threads} intra-op threads, median faces/s ({versions})", head]
    for b in dict.fromkeys(r.batch for r in results):
        cells = " ".join(f"{by_key[(label, b)].median_fps:>30.1f}" for label in labels)
        cells += " " + " ".join(f"{rel[(m, b)]:>30.2f}" for m in models)
        cells += " " + " ".join(f"{rel_first[(m, b)]:>30.2f}" for m in models[1:])
        lines.append(f"{b:>5} {cells}")
    lines.append("x <model>: faces/s of <model> / faces/s of the reference at that batch size")
    if len(models) > 1:
        lines.append(f"/1 <model>: faces/s of <model> / faces/s of {models[0]} at that batch size")
    return "\n".join(lines)


def parse_batches(text: str) -> tuple[int, ...]:
    """'1,16,64,256' -> (1, 16, 64, 256); ValueError on anything else."""
    try:
        batches = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"batch sizes must be comma-separated integers, got {text!r}") from None
    if not batches or min(batches) < 1:
        raise ValueError(f"batch sizes must be >= 1, got {text!r}")
    return batches


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "model_paths", multiple=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="ONNX emotion model(s) to measure (repeatable). Default: the shipped float model, then the shipped INT8 model.")
@click.option("--reference", "reference_hdf5", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Keras mini-Xception .hdf5 of the reference. Default: the shared reference model.")
@click.option("--batches", default=",".join(map(str, DEFAULT_BATCHES)), show_default=True, help="Comma-separated batch sizes.")
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True, help="ONNX Runtime intra-op threads per model.")
@click.option("--rounds", type=click.IntRange(min=1), default=7, show_default=True, help="Interleaved rounds (the median is reported).")
@click.option("--seconds", type=click.FloatRange(min=0.01), default=0.5, show_default=True, help="Timed slice per (round, batch, model).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the converted reference ONNX is cached. Default: the repository's .cache/.")
@click.option("--lanes", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also measure each model as the worker's engine: this many single-thread lanes (0: don't).")
@click.option("--lane-batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Faces per lane call with --lanes (the worker's engine_batch).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of a table.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def main(model_paths, reference_hdf5, batches, threads, rounds, seconds, cache_dir, lanes, lane_batch, as_json, quiet) -> None:
    """Faces/s of the emotion model(s) vs the reference mini-Xception on ONNX Runtime CPU."""
    from engines.model_files import DEFAULT_MODEL, INT8_MODEL
    from engines.model_meta import ModelError
    from engines.reference import DEFAULT_CACHE_DIR, REFERENCE_HDF5

    try:
        batch_sizes = parse_batches(batches)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--batches") from None
    try:
        contenders = load_contenders(list(model_paths) or [DEFAULT_MODEL, INT8_MODEL], reference_hdf5 or REFERENCE_HDF5, threads,
                                     cache_dir or DEFAULT_CACHE_DIR, lanes, lane_batch)
    except (ModelError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if len({c.label for c in contenders}) != len(contenders):
        raise click.BadParameter("model files must have distinct names (and none may be called 'reference')", param_hint="--model")
    results = run_benchmark(contenders, batch_sizes, rounds, seconds, progress=not quiet)
    if as_json:
        rel, rel_first = ratios(results), ratios_to_first(results)
        click.echo(json.dumps({
            "backend": "onnxruntime-cpu", "threads": threads, "rounds": rounds, "seconds_per_slice": seconds,
            "lanes": lanes, "lane_batch": lane_batch, "first_model": results[0].label,
            "results": [{"model": r.label, "model_version": r.model_version, "batch": r.batch, "median_faces_per_s": r.median_fps,
                         "rounds_faces_per_s": list(r.rounds_fps), "ratio_to_reference": rel.get((r.label, r.batch)),
                         "ratio_to_first_model": rel_first.get((r.label, r.batch))}
                        for r in results],
        }, indent=2))
    else:
        click.echo(render_table(results, threads))


if __name__ == "__main__":
    main()
