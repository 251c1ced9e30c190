"""A 60-second soak at 80% of the measured capacity, the lower of two backlog drains (benchmarks/soak.py): lag stays
bounded, the backlog drains, every published face is stored, latency samples exist and the worker's memory does
not run away."""
from __future__ import annotations

import pytest

from moviemotion.pipeline_run import fresh_run
from benchmarks.soak import run_soak

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]

MAX_RSS_GROWTH_MIB = 150.0


def test_sixty_second_soak_keeps_lag_bounded(kafka_broker, clickhouse_factory, tmp_path):
    target = clickhouse_factory("chdb")
    settings = fresh_run(target.settings.with_overrides(kafka_bootstrap=kafka_broker.bootstrap), prefix="soak")
    report = run_soak(settings, duration_s=60, load_fraction=0.8, capacity_faces=4000, log_dir=tmp_path, echo=print)
    print("\n".join(report.lines()))
    assert len(report.capacity_readings) == 2 and report.rate == pytest.approx(0.8 * min(report.capacity_readings))
    assert report.published > 0 and report.stored == report.published
    assert len(report.samples) >= 8
    assert report.lag_bounded, report.lines()
    assert report.p99_ms, "the worker wrote no latency samples"
    assert report.rss_end_mib - report.rss_start_mib <= MAX_RSS_GROWTH_MIB, report.lines()
