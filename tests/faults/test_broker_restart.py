"""The Kafka broker stopped and restarted while a camera publishes and a worker scores (a dedicated broker:
the session one stays up): the producer buffers and retries, the worker reconnects, nothing is lost or doubled."""
from __future__ import annotations

import time

import pytest

from moviemotion.pipeline_run import stop_worker
from tests.faults.harness import (BackgroundPublish, assert_matches_ground_truth, fault_settings, paced, sample_frames,
                                  start_fault_worker, wait_for_frames, wait_scored)

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]

OUTAGE_S = 15.0


def test_broker_restart_mid_run_loses_and_doubles_nothing(dedicated_broker, clickhouse_factory, sample_screening, tmp_path):
    broker, kafka_settings = dedicated_broker
    target = clickhouse_factory("chdb")
    settings, screening_id = fault_settings(broker.bootstrap, target.settings)
    client = target.client
    worker = start_fault_worker(settings, tmp_path, "worker")
    try:
        publisher = BackgroundPublish(settings, sample_screening, screening_id, paced(sample_frames(sample_screening), 2.0))
        wait_for_frames(client, screening_id, 300, [worker])
        broker.stop()
        time.sleep(OUTAGE_S)
        assert worker.poll() is None, "the worker died while the broker was down"
        broker.start(timeout=120)
        truth = publisher.truth(300)
        wait_scored(client, screening_id, truth, worker)
    finally:
        stop_worker(worker)
    # Frames held back by the outage reach the worker after their second was idle-flushed.
    assert_matches_ground_truth(client, screening_id, truth, exact_frames=False)
