"""Workers SIGKILLed while the sample screening is scored: replays store nothing twice and lose nothing;
with two workers in a group, the survivor takes over the dead one's viewers with their calibrated baselines;
a worker killed after the last frames still gets every viewer's last second out (after the restart)."""
from __future__ import annotations

import os
import random
import signal
import time

import pytest

from infra.topics import consumer_lag
from moviemotion.pipeline_run import start_worker, stop_worker, wait_until
from tests.faults.harness import (BackgroundPublish, assert_matches_ground_truth, fault_settings,
                                  paced, publish_recorded, sample_frames, start_fault_worker, until_movie_ts,
                                  wait_for_frames, wait_scored)

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]


def test_worker_sigkilled_twice_at_random_points_stores_every_frame_and_second_once(
        kafka_broker, clickhouse_factory, sample_screening, tmp_path):
    target = clickhouse_factory("chdb")
    settings, screening_id = fault_settings(kafka_broker.bootstrap, target.settings)
    client = target.client
    truth = publish_recorded(settings, sample_screening, screening_id)
    seed = int(time.time())
    rng = random.Random(seed)
    print(f"kill points seeded with {seed}")

    worker = start_fault_worker(settings, tmp_path, "worker-0")
    try:
        for kill, (low, high) in enumerate([(0.1, 0.35), (0.5, 0.75)], start=1):
            threshold = int(len(truth.frames) * rng.uniform(low, high))
            wait_for_frames(client, screening_id, threshold, [worker], interval_s=0.2)
            time.sleep(rng.uniform(0.0, 1.0))  # inside a batch: scoring, inserting, publishing or committing
            worker.send_signal(signal.SIGKILL)
            worker.wait(30)
            worker = start_fault_worker(settings, tmp_path, f"worker-{kill}")
        wait_scored(client, screening_id, truth, worker)
    finally:
        stop_worker(worker)
    assert_matches_ground_truth(client, screening_id, truth)


def frames_by_worker(client, since_ts) -> dict[int, float]:
    """pid -> faces scored per worker (summed faces_per_s samples) since `since_ts`."""
    rows = client.query(
        "SELECT instance, sum(value) FROM pipeline_metrics WHERE component = 'worker' AND metric = 'faces_per_s' "
        "AND ts >= %(t)s GROUP BY instance", {"t": since_ts})
    return {int(instance.rsplit("-", 1)[1]): total for instance, total in rows}


def test_two_workers_one_killed_the_survivor_keeps_its_viewers_baselines(
        kafka_broker, clickhouse_factory, sample_screening, tmp_path):
    target = clickhouse_factory("chdb")
    settings, screening_id = fault_settings(kafka_broker.bootstrap, target.settings)
    client = target.client
    params = {"s": screening_id}
    since = client.query("SELECT now()")[0][0]
    workers = [start_fault_worker(settings, tmp_path, name) for name in ("worker-a", "worker-b")]
    try:
        assert wait_until(lambda: all("Ready" in (tmp_path / f"{n}.log").read_text(errors="replace")
                                      for n in ("worker-a", "worker-b")), 180), "workers did not start"
        publisher = BackgroundPublish(settings, sample_screening, screening_id, paced(sample_frames(sample_screening), 2.0))
        # Past the 10 s calibration of every viewer, with both workers scoring.
        assert wait_until(lambda: client.query(
            "SELECT uniqExact(person_key) FROM viewer_seconds WHERE screening_id = %(s)s AND baseline_ready = 1",
            params)[0][0] == len(sample_screening.seats), 180), "baselines never became ready"
        assert wait_until(lambda: len(frames_by_worker(client, since)) == 2, 30), "both workers must report scoring"
        busiest = max(frames_by_worker(client, since).items(), key=lambda item: item[1])[0]
        victim = next(w for w in workers if w.pid == busiest)
        survivor = next(w for w in workers if w is not victim)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(30)
        ready_at_kill = dict(client.query(
            "SELECT person_key, max(movie_second) FROM viewer_seconds WHERE screening_id = %(s)s AND baseline_ready = 1 "
            "GROUP BY person_key", params))
        truth = publisher.truth(300)
        wait_scored(client, screening_id, truth, survivor)
    finally:
        for worker in workers:
            stop_worker(worker)
    assert_matches_ground_truth(client, screening_id, truth, exact_frames=False)
    recalibrated = client.query(
        "SELECT person_key, movie_second FROM viewer_seconds WHERE screening_id = %(s)s AND visible = 1 "
        "AND baseline_ready = 0 ORDER BY person_key, movie_second", params)
    after_kill = [(key, second) for key, second in recalibrated if second > ready_at_kill.get(key, 10**9)]
    assert not after_kill, f"baselines re-calibrated from scratch after the kill: {after_kill[:10]}"


def test_worker_killed_after_the_last_frame_still_closes_every_viewers_last_second(
        kafka_broker, clickhouse_factory, sample_screening, tmp_path):
    """The first worker never idle-flushes (huge idle_flush_s) and is killed once everything is scored and committed:
    the viewers' last seconds are open in the restored states, and no frame will come to close them."""
    target = clickhouse_factory("chdb")
    settings, screening_id = fault_settings(kafka_broker.bootstrap, target.settings)
    client = target.client
    truth = publish_recorded(settings, sample_screening, screening_id, until_movie_ts(sample_frames(sample_screening), 12.0))
    worker = start_worker(settings, tmp_path / "worker-1.log", {"MOVIEMOTION_IDLE_FLUSH_S": "3600"})
    try:
        wait_for_frames(client, screening_id, len(truth.frames), [worker])
        assert wait_until(lambda: consumer_lag(settings.kafka_bootstrap, settings.processor_group).get(settings.topics.faces) == 0, 60)
        time.sleep(3)  # the states' changelog writes of the last batch
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
        worker = start_fault_worker(settings, tmp_path, "worker-2")
        wait_scored(client, screening_id, truth, worker, timeout_s=90)
    finally:
        stop_worker(worker)
    assert_matches_ground_truth(client, screening_id, truth)
