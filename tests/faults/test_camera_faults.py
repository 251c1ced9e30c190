"""Camera-side faults: a camera that disappears and comes back, and a producer SIGKILLed and restarted
(deterministic frame ids: the restarted producer republishes from the start, the sink stores each frame once)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from moviemotion.pipeline_run import stop_worker
from schemas.settings import settings_env
from tests.faults.harness import (assert_matches_ground_truth, count_frames, fault_settings, from_movie_ts,
                                  publish_recorded, sample_frames, start_fault_worker, until_movie_ts, wait_for_frames,
                                  wait_scored)

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]

GONE_AT_S = 30.0  # a whole movie second: the open second is complete when the camera goes
GONE_FOR_S = 8.0  # longer than the worker's idle flush


def test_camera_gone_and_back_every_frame_and_second_once(kafka_broker, clickhouse_factory, sample_screening, tmp_path):
    target = clickhouse_factory("chdb")
    settings, screening_id = fault_settings(kafka_broker.bootstrap, target.settings)
    client = target.client
    worker = start_fault_worker(settings, tmp_path, "worker")
    try:
        before = publish_recorded(settings, sample_screening, screening_id,
                                  until_movie_ts(sample_frames(sample_screening), GONE_AT_S))
        time.sleep(GONE_FOR_S)
        # The camera host reconnects: a new producer (new tracker) resumes where the feed came back.
        after = publish_recorded(settings, sample_screening, screening_id,
                                 from_movie_ts(sample_frames(sample_screening), GONE_AT_S))
        truth = before + after
        wait_scored(client, screening_id, truth, worker)
    finally:
        stop_worker(worker)
    assert_matches_ground_truth(client, screening_id, truth)
    last_before = max(ts for _, _, ts in before.sent)
    assert last_before < GONE_AT_S <= min(ts for _, _, ts in after.sent)


def test_producer_killed_and_restarted_republishes_without_duplicates(kafka_broker, clickhouse_factory,
                                                                      sample_screening, tmp_path):
    target = clickhouse_factory("chdb")
    settings, screening_id = fault_settings(kafka_broker.bootstrap, target.settings)
    client = target.client
    worker = start_fault_worker(settings, tmp_path, "worker")
    command = [sys.executable, "-m", "moviemotion", "--state-dir", str(settings.state_dir), "produce",
               "--source", str(sample_screening.video_path), "--camera", sample_screening.camera_id,
               "--screening", screening_id, "--theater", sample_screening.theater_id,
               "--seat-map", str(sample_screening.seat_map_path), "--fps", "5", "--realtime"]
    with open(tmp_path / "producer.log", "wb") as log:
        producer = subprocess.Popen(command, env={**os.environ, **settings_env(settings)},
                                    stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_frames(client, screening_id, 200, [worker])
        producer.send_signal(signal.SIGKILL)
        producer.wait(30)
        killed_at = count_frames(client, screening_id)
        truth = publish_recorded(settings, sample_screening, screening_id)  # the restart: from the start
        wait_scored(client, screening_id, truth, worker)
    finally:
        if producer.poll() is None:
            producer.kill()
        stop_worker(worker)
    assert killed_at < len(truth.frames), "the producer finished before it was killed"
    # The restarted producer took longer than the idle flush to get back to where the first one stopped.
    assert_matches_ground_truth(client, screening_id, truth, exact_frames=False)
