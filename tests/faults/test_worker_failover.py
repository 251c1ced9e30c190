"""Failover: with two workers in a group, one killed (SIGKILL) or stopped (SIGTERM) while viewers are live, every
`faces` partition is scored again within FAILOVER_BOUND_S (the product's target).

"Scored again" is read from the group's committed offsets, which move only after a batch's rows and events are
stored: at the kill, each partition's committed offset is noted; the failover time is how long until every partition
that receives frames has committed past that offset. The survivor's own partitions move on at once; the dead
member's wait until the group notices (its session timeout, `Settings.worker_session_timeout_s`, for a SIGKILL; at
once for a SIGTERM, as the worker leaves the group when it stops) and rebalances. The workers run with the shipped
settings (no test overrides): this checks the defaults.
"""
from __future__ import annotations

import re
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from benchmarks.load_generator import LoadSpec, publish_load
from infra.topics import read_start_offsets
from moviemotion.pipeline_run import start_worker, stop_worker, wait_until
from producers.camera_producer import open_kafka_producer
from tests.faults.harness import fault_settings

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]

FAILOVER_BOUND_S = 15.0
MEASURE_LIMIT_S = 120.0


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """{partition: where the group reads it from}: its committed offset (the log start before the first commit)."""
    return read_start_offsets(bootstrap, group, topic)


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        consumer.close()


def seconds_until_all_move_past(bootstrap: str, group: str, topic: str, marks: dict[int, int],
                                began: float) -> dict[int, float]:
    """{partition: seconds after `began` when its committed offset first passed its mark}, for every marked
    partition that got there within MEASURE_LIMIT_S (polled every 0.2 s)."""
    moved: dict[int, float] = {}
    while len(moved) < len(marks) and time.monotonic() - began < MEASURE_LIMIT_S:
        now = committed_offsets(bootstrap, group, topic)
        for partition, mark in marks.items():
            if partition not in moved and now.get(partition, -1) > mark:
                moved[partition] = time.monotonic() - began
        time.sleep(0.2)
    return moved


SURVIVOR_EVENTS = re.compile(r"Revoking|assigned|Recovery\]: (Restore complete|Worker ready)|WARNING|ERROR")


def survivor_timeline(log: Path, since: datetime, lines: int = 40) -> str:
    """The survivor's rebalance, recovery, warning and error lines logged after `since` (Faust's "[date time]"
    prefix): where a slow failover spent its time."""
    picked = []
    for line in log.read_text(errors="replace").splitlines():
        stamp = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]", line)
        if stamp and SURVIVOR_EVENTS.search(line) and \
                datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S").replace(
                    microsecond=int(stamp.group(2)) * 1000) >= since:
            picked.append(line[:200])
    return "\n".join(picked[-lines:])


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_a_dead_workers_partitions_are_scored_again_within_the_bound(
        kafka_broker, clickhouse_factory, tmp_path, stop_signal):
    target = clickhouse_factory("chdb")
    settings, screening_id = fault_settings(kafka_broker.bootstrap, target.settings)
    topic = settings.topics.faces
    spec = LoadSpec(screening_id=screening_id, faces_per_s=48.0, cameras=4, seats_per_camera=6)  # 24 viewers, 2 fps
    stop = threading.Event()
    producer = open_kafka_producer(kafka_broker.bootstrap)
    load = threading.Thread(target=publish_load, args=(producer, topic, spec),
                            kwargs={"duration_s": 600.0, "stop": stop}, daemon=True)
    workers = [start_worker(settings, tmp_path / f"{name}.log") for name in ("worker-a", "worker-b")]
    try:
        assert wait_until(lambda: all("Ready" in (tmp_path / f"{n}.log").read_text(errors="replace")
                                      for n in ("worker-a", "worker-b")), 180), "workers did not start"
        before = end_offsets(kafka_broker.bootstrap, topic, settings.faces_partitions)
        load.start()
        time.sleep(5)
        # Steady state: every partition this audience's frames go to commits, with both workers in the group.
        busy = {p for p, end in end_offsets(kafka_broker.bootstrap, topic, settings.faces_partitions).items()
                if end > before[p]}
        for _ in range(2):
            marks = committed_offsets(kafka_broker.bootstrap, settings.processor_group, topic)
            steady = seconds_until_all_move_past(kafka_broker.bootstrap, settings.processor_group, topic,
                                                 {p: marks.get(p, -1) for p in busy}, time.monotonic())
            assert set(steady) == busy, f"partitions {sorted(busy - set(steady))} never committed before the kill"

        victim = workers[0]
        marks = committed_offsets(kafka_broker.bootstrap, settings.processor_group, topic)
        killed_at, killed_wall = time.monotonic(), datetime.now().replace(microsecond=0)
        victim.send_signal(stop_signal)
        moved = seconds_until_all_move_past(kafka_broker.bootstrap, settings.processor_group, topic,
                                            {p: marks.get(p, -1) for p in busy}, killed_at)
        assert workers[1].poll() is None, "the surviving worker exited"
    finally:
        stop.set()
        load.join(30)
        producer.close()
        for worker in workers:
            stop_worker(worker)
    failover_s = max(moved.values()) if len(moved) == len(busy) else float("inf")
    print(f"{signal.Signals(stop_signal).name}: every partition scored again {failover_s:.1f} s after the stop "
          f"(per partition: {', '.join(f'{p}: {s:.1f}' for p, s in sorted(moved.items()))})")
    assert failover_s <= FAILOVER_BOUND_S, \
        (f"partitions scored again {failover_s:.1f} s after a {signal.Signals(stop_signal).name} (target "
         f"{FAILOVER_BOUND_S:g} s); the survivor after the stop:\n{survivor_timeline(tmp_path / 'worker-b.log', killed_wall)}")
