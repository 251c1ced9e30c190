"""Soak run: drive the pipeline at a share (default 80%) of its measured capacity for N minutes and watch that
it keeps up: consumer lag of `faces` sampled over time (must stay bounded), capture -> stored latency p99 (the
worker's `pipeline_metrics` samples), worker resident memory at start and end, and every published face stored.

The capacity comes from `benchmarks.pipeline_throughput.measure_capacity` (a backlog drained by the same worker,
just before the soak), measured `CAPACITY_ROUNDS` times; the soak takes its share of the lowest reading. One drain
of a few thousand faces lasts seconds, and a single high reading (852 faces/s on a host whose 30-minute soak held
691) once set a soak rate the worker could not hold. Lag is "bounded" when no sample in the second half of the run
exceeds `LAG_BOUND_S` seconds of input at the soak rate and the backlog drains after the load stops.

Run from the repository root: `python -m benchmarks.soak --help` (default 30 minutes on a private stack);
tests/faults/test_soak_short.py runs a 60-second version against the test stack.
"""
from __future__ import annotations

import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from moviemotion.pipeline_run import fresh_run
from benchmarks.pipeline_throughput import (WorkerMemory, latency_samples, measure_capacity, paced_load,
                                            private_stack, wait_ready, wait_stored)
from infra.clickhouse.client import connect
from infra.topics import consumer_lag
from moviemotion.pipeline_run import start_worker, stop_worker
from schemas.settings import Settings, load_settings

LAG_BOUND_S = 10.0  # lag may hold at most this many seconds of input
CAPACITY_ROUNDS = 2  # backlog drains before the soak; the lowest reading sets the rate
DRAIN_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class LagSample:
    at_s: float  # since the soak load started
    lag: int  # faces not yet committed by the worker's group
    rss_mib: float


def soak_rate(capacities: list[float], load_fraction: float) -> float:
    """Faces/s to soak at: `load_fraction` of the lowest capacity reading (a soak must stay below capacity)."""
    if not capacities:
        raise ValueError("no capacity reading to soak against")
    return min(capacities) * load_fraction


@dataclass
class SoakReport:
    capacity_readings: list[float]  # faces/s, one per backlog drain
    rate: float
    duration_s: float
    published: int = 0  # acknowledged by the broker
    delivery_errors: int = 0  # sent by the load generator, never acknowledged (not counted as published)
    stored: int = 0
    samples: list[LagSample] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    rss_start_mib: float = 0.0
    rss_end_mib: float = 0.0

    @property
    def capacity_faces_per_s(self) -> float:
        return min(self.capacity_readings)

    @property
    def lag_limit(self) -> float:
        return self.rate * LAG_BOUND_S

    @property
    def max_lag_second_half(self) -> int:
        late = [s.lag for s in self.samples if s.at_s >= self.duration_s / 2]
        return max(late, default=0)

    @property
    def lag_growth_per_s(self) -> float:
        """Least-squares slope of the lag over the second half (faces/s): ~0 when the worker keeps up."""
        late = [s for s in self.samples if s.at_s >= self.duration_s / 2]
        if len(late) < 2:
            return 0.0
        return float(np.polyfit([s.at_s for s in late], [s.lag for s in late], 1)[0])

    @property
    def lag_bounded(self) -> bool:
        # Every acknowledged face stored; a send whose acknowledgement timed out after the broker wrote it is stored
        # too, so stored may exceed published.
        return self.max_lag_second_half <= self.lag_limit and self.stored >= self.published

    def lines(self) -> list[str]:
        lags = [s.lag for s in self.samples]
        return [
            f"capacity (backlog drain):     {self.capacity_faces_per_s:.1f} faces/s, the lowest of "
            + ", ".join(f"{c:.1f}" for c in self.capacity_readings),
            f"soak rate:                    {self.rate:.1f} faces/s for {self.duration_s:g}s "
            f"({self.published} published, {self.stored} stored; {self.delivery_errors} sends the broker never "
            f"acknowledged)",
            f"consumer lag:                 max {max(lags, default=0)}, second-half max {self.max_lag_second_half} "
            f"(bound {self.lag_limit:.0f} = {LAG_BOUND_S:g}s of input) -> {'bounded' if self.lag_bounded else 'NOT bounded'}",
            f"lag growth, second half:      {self.lag_growth_per_s:+.1f} faces/s "
            f"({100 * self.lag_growth_per_s / self.rate:+.1f}% of the rate)",
            "lag over time (s: faces):     " + ", ".join(f"{s.at_s:.0f}: {s.lag}" for s in self.samples),
            "p99 capture->stored latency:  " + (f"max {max(self.p99_ms):.0f} ms, median {sorted(self.p99_ms)[len(self.p99_ms) // 2]:.0f} ms "
                                                f"over {len(self.p99_ms)} worker samples" if self.p99_ms else "no samples"),
            f"worker RSS:                   start {self.rss_start_mib:.0f} MiB, end {self.rss_end_mib:.0f} MiB",
        ]


def run_soak(settings: Settings, duration_s: float, load_fraction: float = 0.8, capacity_faces: int = 2000,
             sample_every_s: float = 5.0, log_dir: Path | None = None, echo=lambda line: None,
             capacity_rounds: int = CAPACITY_ROUNDS) -> SoakReport:
    """Start a worker, measure its capacity, soak it at `load_fraction` of it for `duration_s`; see the module docstring.

    `settings` should come from `fresh_run` (its own consumer group)."""
    log_path = Path(log_dir or tempfile.mkdtemp(prefix="soak-")) / "worker.log"
    worker = start_worker(settings, log_path)
    try:
        wait_ready(worker, log_path)
        memory = WorkerMemory(worker.pid)
        readings = []
        for round_ in range(1, capacity_rounds + 1):
            echo(f"measuring capacity with a {capacity_faces}-face backlog ({round_} of {capacity_rounds}) ...")
            readings.append(measure_capacity(settings, capacity_faces).faces_per_s)
        report = SoakReport(readings, soak_rate(readings, load_fraction), duration_s)
        report.rss_start_mib = memory.sample()
        echo(f"soaking at {report.rate:.1f} faces/s for {duration_s:g}s ...")
        with connect(settings) as client:
            since = client.query("SELECT now() + 6")[0][0]  # skip the sample that still holds the backlog
            spec, stats, thread = paced_load(settings, report.rate, duration_s)
            began = time.monotonic()
            while thread.is_alive():
                thread.join(sample_every_s)
                lag = consumer_lag(settings.kafka_bootstrap, settings.processor_group).get(settings.topics.faces, 0)
                report.samples.append(LagSample(time.monotonic() - began, lag, memory.sample()))
                echo(f"  {report.samples[-1].at_s:5.0f}s lag {lag} rss {report.samples[-1].rss_mib:.0f} MiB")
            report.published, report.delivery_errors = stats.published, stats.delivery_errors
            try:
                wait_stored(client, spec.screening_id, stats.published, DRAIN_TIMEOUT_S)
            except TimeoutError as exc:
                echo(f"not all published faces stored: {exc}")  # the report says how many
            report.stored = client.query("SELECT count() FROM frame_scores WHERE screening_id = %(s)s",
                                         {"s": spec.screening_id})[0][0]
            time.sleep(sample_every_s + 1)  # the worker's last metrics sample of the soak
            report.p99_ms = latency_samples(client, worker.pid, since)[1]
        report.rss_end_mib = memory.sample()
        return report
    finally:
        stop_worker(worker)


@click.command()
@click.option("--minutes", type=click.FloatRange(min=0.5), default=30.0, show_default=True, help="Soak length.")
@click.option("--load", "load_fraction", type=click.FloatRange(0.05, 1.5), default=0.8, show_default=True, help="Share of the measured capacity to drive.")
@click.option("--capacity-faces", type=click.IntRange(min=100), default=3000, show_default=True, help="Backlog size for the capacity measurement.")
@click.option("--capacity-rounds", type=click.IntRange(min=1), default=CAPACITY_ROUNDS, show_default=True,
              help="Backlog drains before the soak; the lowest sets the rate.")
@click.option("--use-stack", is_flag=True, help="Use the configured stack (`moviemotion up`) instead of a private one.")
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the worker's log here (default: a temp dir, deleted after the run).")
def main(minutes, load_fraction, capacity_faces, capacity_rounds, use_stack, log_dir) -> None:
    """Soak the pipeline at a share of its capacity and print lag over time, p99 latency and worker memory."""
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
        with (nullcontext(load_settings()) if use_stack else private_stack(Path(tmp))) as base:
            report = run_soak(fresh_run(base, prefix="soak"), minutes * 60, load_fraction, capacity_faces,
                              log_dir=log_dir or Path(tmp), echo=click.echo, capacity_rounds=capacity_rounds)
    for line in report.lines():
        click.echo(line)


if __name__ == "__main__":
    main()
