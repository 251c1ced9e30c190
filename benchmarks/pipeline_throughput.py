"""End-to-end pipeline throughput on this machine: Kafka -> Faust worker (ONNX Runtime, CPU) -> ClickHouse.

In one run: (1) the bare engine's batch-64 throughput (faces/s, same model; one 2-thread ONNX Runtime session, the
engine benchmark's setting, where the worker runs two single-thread lanes);
(2) the worker's sustained capacity: a backlog of simulated faces (benchmarks/load_generator.py) published at
once, then timed from the moment the load generator has finished publishing to the last stored row, stated as a
ratio to (1). The load generator stands in for the camera hosts, which are other machines: while it publishes it
takes 50-80% of a core here, so the faces stored meanwhile are left out of the timing; (3) capture -> stored latency
p50/p99 at a paced load (`--paced-fraction` of the capacity), from the worker's own `pipeline_metrics` samples;
(4) the worker's resident memory at start, peak and end. Figures are printed; nothing is asserted.

By default it starts a private stack (Kafka broker on free ports + embedded store, in a temp dir); `--use-stack`
runs against the configured one (`moviemotion up`) with a fresh consumer group and screening id.

Run from the repository root: `python -m benchmarks.pipeline_throughput --help`.
"""
from __future__ import annotations

import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import click
import numpy as np

from benchmarks.engine_throughput import measure
from benchmarks.load_generator import LoadSpec, LoadStats, publish_load, sprite_crops
from engines.select import load_engine
from infra import stack
from infra.ports import free_ports
from infra.clickhouse.client import ClickHouseClient, connect
from moviemotion.pipeline_run import fresh_run, start_worker, stop_worker
from schemas.settings import Settings, load_settings
from producers.camera_producer import open_kafka_producer
from stream_processors.metrics import E2E_LATENCY_P50_MS, E2E_LATENCY_P99_MS

READY_MARK = "Worker ready"
BACKLOG_CAMERAS = 10


@dataclass(frozen=True)
class Capacity:
    """Sustained scoring rate of one worker draining a backlog."""

    faces: int
    seconds: float

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds


@dataclass
class WorkerMemory:
    """Resident set size samples (MiB) of one worker process."""

    pid: int
    samples: list[float] = field(default_factory=list)

    def sample(self) -> float:
        value = rss_mib(self.pid)
        self.samples.append(value)
        return value


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def engine_batch_rate(backend: str, batch: int = 64, seconds: float = 5.0) -> float:
    """Faces/s of the bare engine on `batch` sprite faces per call (after a warm-up call)."""
    engine = load_engine(backend)
    crops = sprite_crops()
    inputs = np.stack([crops[i % len(crops)] for i in range(batch)])
    engine.infer(inputs)
    return measure(engine.infer, inputs, seconds)


@contextmanager
def private_stack(work_dir: Path) -> Iterator[Settings]:
    """A broker on free ports + the embedded store under `work_dir`, topics and migrations applied; torn down after."""
    port, controller_port = free_ports(2)
    settings = load_settings(state_dir=work_dir / "state", kafka_bootstrap=f"127.0.0.1:{port}",
                             kafka_controller_port=controller_port, clickhouse_url="")
    try:
        stack.up(settings, timeout=180)
        yield settings
    finally:
        stack.down(settings)


def wait_ready(worker: subprocess.Popen, log_path: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while READY_MARK not in log_path.read_text(errors="replace"):
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with code {worker.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker was not ready within {timeout_s:g}s; see {log_path}")
        time.sleep(0.5)


def stored(client: ClickHouseClient, screening_id: str) -> int:
    return client.query("SELECT count() FROM frame_scores WHERE screening_id = %(s)s", {"s": screening_id})[0][0]


def wait_stored(client: ClickHouseClient, screening_id: str, faces: int, timeout_s: float,
                memory: WorkerMemory | None = None) -> float:
    """Poll until `faces` rows are stored; returns the time of the poll that saw them all."""
    deadline = time.monotonic() + timeout_s
    while True:
        count, now = stored(client, screening_id), time.monotonic()
        if memory is not None:
            memory.sample()
        if count >= faces:
            return now
        if now > deadline:
            raise TimeoutError(f"{count} of {faces} faces of {screening_id} stored after {timeout_s:g}s")
        time.sleep(0.25)


def measure_capacity(settings: Settings, faces: int, memory: WorkerMemory | None = None,
                     timeout_s: float = 900) -> Capacity:
    """Publish `faces` simulated faces at once to a running worker and time how fast it stores those still waiting
    once the load generator is done (it shares this machine's cores; camera hosts would not)."""
    spec = LoadSpec(f"capacity-{uuid.uuid4().hex[:8]}", faces_per_s=BACKLOG_CAMERAS * 6 * 5.0, cameras=BACKLOG_CAMERAS)
    producer = open_kafka_producer(settings.kafka_bootstrap)
    try:
        published = publish_load(producer, settings.topics.faces, spec, faces=faces, paced=False).published
    finally:
        producer.close(timeout=30)
    with connect(settings) as client:
        began, already = time.monotonic(), stored(client, spec.screening_id)
        if already >= published:
            raise RuntimeError(f"the worker stored all {published} faces while they were published: use a larger --faces")
        ended = wait_stored(client, spec.screening_id, published, timeout_s, memory)
    return Capacity(published - already, max(ended - began, 1e-3))


def paced_load(settings: Settings, rate: float, duration_s: float, cameras: int = BACKLOG_CAMERAS) -> tuple[LoadSpec, LoadStats, threading.Thread]:
    """Start publishing `rate` faces/s for `duration_s` in a thread; returns the spec, its (filling) stats and the thread."""
    spec = LoadSpec(f"paced-{uuid.uuid4().hex[:8]}", faces_per_s=rate, cameras=cameras)
    result = LoadStats()

    def run() -> None:
        producer = open_kafka_producer(settings.kafka_bootstrap)
        try:
            result.__dict__.update(publish_load(producer, settings.topics.faces, spec, duration_s=duration_s).__dict__)
        finally:
            producer.close(timeout=30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return spec, result, thread


def latency_samples(client: ClickHouseClient, instance_pid: int, since) -> tuple[list[float], list[float]]:
    """The worker's p50 and p99 capture -> stored latency samples (ms) written since `since`."""
    rows = client.query(
        "SELECT metric, value FROM pipeline_metrics WHERE component = 'worker' AND ts >= %(t)s "
        "AND metric IN (%(p50)s, %(p99)s) AND endsWith(instance, %(pid)s) ORDER BY ts",
        {"t": since, "p50": E2E_LATENCY_P50_MS, "p99": E2E_LATENCY_P99_MS, "pid": f"-{instance_pid}"})
    return [v for m, v in rows if m == E2E_LATENCY_P50_MS], [v for m, v in rows if m == E2E_LATENCY_P99_MS]


@click.command()
@click.option("--use-stack", is_flag=True, help="Use the configured stack (`moviemotion up`) instead of a private one.")
@click.option("--faces", type=click.IntRange(min=100), default=20000, show_default=True, help="Backlog size for the capacity phase.")
@click.option("--paced-seconds", type=click.FloatRange(min=5), default=30.0, show_default=True, help="Length of the latency phase.")
@click.option("--paced-fraction", type=click.FloatRange(0.05, 1.5), default=0.5, show_default=True, help="Latency phase rate as a share of the capacity.")
@click.option("--engine-seconds", type=click.FloatRange(min=1), default=5.0, show_default=True, help="Timing window of the bare engine.")
def main(use_stack, faces, paced_seconds, paced_fraction, engine_seconds) -> None:
    """Print the pipeline's sustained faces/s (and its ratio to the bare engine's batch-64 rate), latency and memory."""
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        work = Path(tmp)
        with (nullcontext(load_settings()) if use_stack else private_stack(work)) as base:
            settings = fresh_run(base)
            click.echo(f"engine: measuring batch-64 throughput ({engine_seconds:g}s) ...")
            engine_rate = engine_batch_rate(settings.engine_backend, 64, engine_seconds)
            log_path = work / "worker.log"
            worker = start_worker(settings, log_path)
            try:
                wait_ready(worker, log_path)
                memory = WorkerMemory(worker.pid)
                memory.sample()
                click.echo(f"capacity: {faces} faces backlog ...")
                capacity = measure_capacity(settings, faces, memory)
                rate = capacity.faces_per_s * paced_fraction
                click.echo(f"latency: {rate:.0f} faces/s for {paced_seconds:g}s ...")
                with connect(settings) as client:
                    since = client.query("SELECT now() + 6")[0][0]  # skip the sample that still holds the backlog
                    spec, stats, thread = paced_load(settings, rate, paced_seconds)
                    thread.join(paced_seconds + 120)
                    wait_stored(client, spec.screening_id, stats.published, 300, memory)
                    time.sleep(6)  # one more metrics sample
                    p50s, p99s = latency_samples(client, worker.pid, since)
                memory.sample()
            finally:
                stop_worker(worker)
    click.echo(f"bare engine, batch 64:        {engine_rate:8.1f} faces/s")
    click.echo(f"pipeline, sustained:          {capacity.faces_per_s:8.1f} faces/s "
               f"({capacity.faces} faces in {capacity.seconds:.1f}s) = {capacity.faces_per_s / engine_rate:.2f} x engine")
    if p50s:
        click.echo(f"latency at {rate:.0f} faces/s:   p50 {statistics.median(p50s):.0f} ms, p99 {max(p99s):.0f} ms "
                   f"(worker samples: median of p50s, max of p99s; {len(p50s)} samples)")
    click.echo(f"worker RSS:                   start {memory.samples[0]:.0f} MiB, peak {max(memory.samples):.0f} MiB, "
               f"end {memory.samples[-1]:.0f} MiB")


if __name__ == "__main__":
    main()
