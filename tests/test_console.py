"""The CLI's console: a command that talks to Kafka prints the product's own lines and no library INFO/DEBUG
lines (kafka-python logs every connection at INFO) unless `-v` asks for them. Real CLI processes, real broker."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from moviemotion.cli import OWN_PACKAGES

pytestmark = pytest.mark.kafka

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ([\w.]+): ", re.M)


def library_chatter(stderr: str) -> list[str]:
    """Log lines below WARNING from loggers outside the product's packages."""
    return [m.group(0) for m in LOG_LINE.finditer(stderr)
            if m.group(1) in ("DEBUG", "INFO") and m.group(2).partition(".")[0] not in OWN_PACKAGES]


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "moviemotion", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def camera_files(tmp_path_factory):
    """A 2 s, 160x120 video of a grey wall and a one-seat map for it: a camera host with nothing to send."""
    folder = tmp_path_factory.mktemp("console-camera")
    video = folder / "wall.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (160, 120))
    for _ in range(10):
        writer.write(np.full((120, 160, 3), 100, np.uint8))
    writer.release()
    seat_map = folder / "seats.json"
    seat_map.write_text(json.dumps({"camera_id": "cam-console", "frame_size": [160, 120],
                                    "seats": [{"seat_id": "A1", "region": [0, 0, 160, 120]}]}))
    return video, seat_map


@pytest.mark.parametrize("verbose", [False, True])
def test_produce_prints_library_log_lines_only_with_v(kafka_broker, camera_files, tmp_path, verbose):
    video, seat_map = camera_files
    result = cli(*(["-v"] if verbose else []), "--state-dir", str(tmp_path), "--bootstrap", kafka_broker.bootstrap,
                 "produce", "--source", str(video), "--camera", "cam-console", "--screening", "console-test",
                 "--theater", "t1", "--seat-map", str(seat_map), "--fps", "5")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "published 0 faces from 10 frames" in result.stdout  # the product's summary
    assert re.search(r"INFO producers\.camera_producer: done: ", result.stderr)  # and its own progress log
    chatter = library_chatter(result.stderr)
    if verbose:
        assert any(re.search(r" INFO kafka\.", line) for line in chatter), result.stderr[-3000:]
    else:
        assert chatter == [], chatter[:10]


def test_status_prints_library_log_lines_only_with_v(kafka_broker, tmp_path):
    args = ["--state-dir", str(tmp_path), "--bootstrap", kafka_broker.bootstrap, "status"]
    quiet, verbose = cli(*args), cli("-v", *args)
    assert quiet.returncode == verbose.returncode == 0, quiet.stderr[-2000:] + verbose.stderr[-2000:]
    for result in (quiet, verbose):
        assert f"Kafka {kafka_broker.bootstrap}" in result.stdout and ", answering" in result.stdout  # its own report
    assert library_chatter(quiet.stderr) == []
    assert any(re.search(r" INFO kafka\.", line) for line in library_chatter(verbose.stderr)), verbose.stderr[-3000:]
