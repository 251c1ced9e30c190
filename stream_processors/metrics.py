"""Pipeline health of one worker, sampled into `pipeline_metrics` rows (ts, component, instance, metric, value);
the metric names below are the contract the Grafana "Live screening" dashboard and the cookbook read.
"""
from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import numpy as np

TABLE = "pipeline_metrics"
FACES_PER_S = "faces_per_s"  # face crops scored and stored per second by one worker
EVENTS_PER_S = "events_per_s"  # per-second EmotionEvents stored per second by one worker
DEAD_LETTERS_PER_S = "dead_letters_per_s"  # rejected messages routed to dead-letters per second
CONSUMER_LAG = "consumer_lag"  # messages of `faces` not yet committed by the group (same for every worker)
E2E_LATENCY_P50_MS = "e2e_latency_p50_ms"  # capture -> score row stored in ClickHouse, median of the sample
E2E_LATENCY_P99_MS = "e2e_latency_p99_ms"  # the same, 99th percentile


class PipelineMetrics:
    """Counters since the last `sample()`; `sample` turns them into rates and resets them."""

    def __init__(self, instance: str | None = None) -> None:
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}"
        self.frames = 0
        self.events_stored = 0
        self.dead_letters = 0
        self._latencies_ms: list[float] = []
        self._since = time.monotonic()

    def record_frames(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Score rows just stored: count them and their capture-to-stored latency."""
        now_us = time.time_ns() // 1000
        self.frames += len(rows)
        self._latencies_ms.extend((now_us - row["captured_us"]) / 1000 for row in rows)

    def record_events(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.events_stored += len(rows)

    def sample(self, component: str, lag: int) -> list[dict[str, Any]]:
        now = time.monotonic()
        elapsed = max(now - self._since, 1e-6)
        values = {
            FACES_PER_S: self.frames / elapsed,
            EVENTS_PER_S: self.events_stored / elapsed,
            DEAD_LETTERS_PER_S: self.dead_letters / elapsed,
            CONSUMER_LAG: float(lag),
        }
        if self._latencies_ms:
            p50, p99 = np.percentile(self._latencies_ms, [50, 99])
            values.update({E2E_LATENCY_P50_MS: float(p50), E2E_LATENCY_P99_MS: float(p99)})
        ts = datetime.now(timezone.utc).replace(microsecond=0)
        self.frames = self.events_stored = self.dead_letters = 0
        self._latencies_ms = []
        self._since = now
        return [
            {"ts": ts, "component": component, "instance": self.instance, "metric": name, "value": value}
            for name, value in values.items()
        ]
