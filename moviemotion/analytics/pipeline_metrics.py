"""Contract for pipeline health samples: workers insert rows into ClickHouse `pipeline_metrics`
(ts DateTime, component, instance, metric, value Float64), the Live screening dashboard reads them.

One row per metric per worker per sample period (e.g. every 5 s); values are rates or gauges at `ts`.
"""
from __future__ import annotations

TABLE = "pipeline_metrics"
FACES_PER_S = "faces_per_s"  # face crops consumed per second by one worker
EVENTS_PER_S = "events_per_s"  # EmotionEvents published per second by one worker
CONSUMER_LAG = "consumer_lag"  # messages behind on the `faces` topic, summed over the worker's partitions
E2E_LATENCY_MS = "e2e_latency_ms"  # capture -> EmotionEvent published, p95 over the sample period, in ms
METRICS = (FACES_PER_S, EVENTS_PER_S, CONSUMER_LAG, E2E_LATENCY_MS)
