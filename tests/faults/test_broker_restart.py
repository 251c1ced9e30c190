"""The Kafka broker stopped and restarted while a camera publishes and a worker scores (a dedicated broker:
the session one stays up): the producer buffers and retries, the worker reconnects, nothing is lost or doubled.
The worker's reads of its group's start offsets (the handover workaround) wait out the outage too."""
from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import pytest
from faust.types import Message

from infra.topics import read_start_offsets
from moviemotion.pipeline_run import stop_worker
from stream_processors.handover import HandoverWorkaround
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


def test_the_handover_waits_for_a_restarting_broker_instead_of_crashing_the_agent(dedicated_broker):
    """A worker's agents read the group's start offsets after each assignment, and a broker restart triggers one: an
    agent that met the broker still down (or its partitions still leaderless) crashed the worker (a CI run: the
    `store_events` agent died of NodeNotReadyError). Its batch has to wait for the broker instead."""
    broker, settings = dedicated_broker
    faces = settings.topics.faces

    def start_offsets(topic: str) -> dict[int, int]:
        return read_start_offsets(broker.bootstrap, settings.processor_group, topic, timeout_s=2)

    handover = HandoverWorkaround(SimpleNamespace(consumer=None, log=logging.getLogger(__name__)), {faces: lambda: False}, start_offsets, faces)
    batch = [SimpleNamespace(message=Message(faces, 0, offset, time.time(), 0, None, b"k", b"v", None))
             for offset in (0, 1)]

    async def run() -> list[int]:
        broker.stop()
        admitting = asyncio.ensure_future(handover.admit(batch))
        await asyncio.sleep(6)
        assert not admitting.done(), f"the batch did not wait for the broker: {admitting.exception()!r}"
        await asyncio.get_running_loop().run_in_executor(None, lambda: broker.start(timeout=120))
        admitted = await asyncio.wait_for(admitting, 120)
        return [event.message.offset for event in admitted]

    assert asyncio.run(run()) == [0, 1]
