"""Pipeline health of one worker, sampled into `pipeline_metrics` rows for the Live dashboard.

Metric names (the dashboards read these): faces_per_s, events_per_s, dead_letters_per_s,
consumer_lag (messages of `faces` not yet committed), latency_p50_ms and latency_p99_ms (capture
-> score row stored in ClickHouse, over the sampling interval).
"""
from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import numpy as np

METRICS = ("faces_per_s", "events_per_s", "dead_letters_per_s", "consumer_lag", "latency_p50_ms", "latency_p99_ms")


class PipelineMetrics:
    """Counters since the last `sample()`; `sample` turns them into rates and resets them."""

    def __init__(self, instance: str | None = None) -> None:
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}"
        self.frames = 0
        self.events_out = 0
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
            "faces_per_s": self.frames / elapsed,
            "events_per_s": self.events_stored / elapsed,
            "dead_letters_per_s": self.dead_letters / elapsed,
            "consumer_lag": float(lag),
        }
        if self._latencies_ms:
            p50, p99 = np.percentile(self._latencies_ms, [50, 99])
            values.update(latency_p50_ms=float(p50), latency_p99_ms=float(p99))
        ts = datetime.now(timezone.utc).replace(microsecond=0)
        self.frames = self.events_out = self.events_stored = self.dead_letters = 0
        self._latencies_ms = []
        self._since = now
        return [
            {"ts": ts, "component": component, "instance": self.instance, "metric": name, "value": value}
            for name, value in values.items()
        ]
