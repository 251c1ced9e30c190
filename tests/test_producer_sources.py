"""Camera sources against real OpenCV: video files (sampling, unreadable, truncated) and a live HTTP MJPEG
camera served from this process that drops its connection or goes away for good."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from producers.sources import Backoff, LiveSource, SourceError, VideoFileSource, open_source, parse_source


def test_parse_source():
    assert parse_source("0") == 0 and parse_source(2) == 2
    assert parse_source("rtsp://cam.local/stream") == "rtsp://cam.local/stream"
    with pytest.raises(SourceError, match="not found"):
        parse_source("/no/such/video.avi")


def test_backoff_is_exponential_and_capped():
    backoff = Backoff(initial_s=0.5, factor=2.0, max_delay_s=3.0, max_retries=6)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_file_is_sampled_on_its_own_clock(sample_screening):
    start_us = 1_700_000_000_000_000
    frames = list(open_source(str(sample_screening.video_path), fps=2.0, start_us=start_us))
    assert len(frames) == int(sample_screening.duration_s * 2)
    step = int(sample_screening.fps / 2)
    assert [f.frame_id for f in frames] == list(range(0, sample_screening.frame_count, step))
    for frame in frames:
        assert frame.movie_ts == pytest.approx(frame.frame_id / sample_screening.fps)
        assert frame.captured_us == start_us + round(frame.movie_ts * 1e6)
    # A replay gives the same ids and times (a restarted producer re-sends the same frames).
    again = list(open_source(str(sample_screening.video_path), fps=2.0, start_us=start_us))
    assert [(f.frame_id, f.captured_us) for f in again] == [(f.frame_id, f.captured_us) for f in frames]


def test_unreadable_file_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(SourceError, match="cannot open video file"):
        open_source(str(junk), fps=5)
    with pytest.raises(ValueError, match="fps"):
        VideoFileSource(junk, fps=0)


def test_truncated_file_raises_after_the_frames_it_has(sample_screening, tmp_path):
    data = sample_screening.video_path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    source = open_source(str(cut), fps=5)
    got = []
    with pytest.raises(SourceError, match="truncated"):
        for frame in source:
            got.append(frame.frame_id)
    assert 0 < len(got) < sample_screening.duration_s * 5


class MjpegCamera:
    """A live HTTP MJPEG camera: each connection gets `frames_per_connection` frames at `fps`, then ends."""

    def __init__(self, frames_per_connection: int, fps: float = 20.0) -> None:
        jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 100, np.uint8))[1].tobytes()
        part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n"
        self.connections = 0
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                camera.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for _ in range(frames_per_connection):
                        self.wfile.write(part)
                        time.sleep(1.0 / fps)
                except OSError:
                    pass

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


FAST_BACKOFF = Backoff(initial_s=0.1, factor=2.0, max_delay_s=0.4, max_retries=3)


def test_live_camera_reconnects_after_a_dropped_stream():
    camera = MjpegCamera(frames_per_connection=15)
    stop = threading.Event()
    source = LiveSource(camera.url, fps=10, backoff=FAST_BACKOFF, stop=stop, open_timeout_s=5, read_timeout_s=3)
    ids = []
    began = time.monotonic()
    try:
        for frame in source:
            ids.append(frame.frame_id)
            assert frame.movie_ts >= 0
            if camera.connections >= 3 or time.monotonic() - began > 30:
                stop.set()
    finally:
        camera.stop()
    assert camera.connections >= 3  # two drops, two reconnects
    assert ids == sorted(set(ids))  # slots strictly increase across reconnects


def test_live_camera_gone_for_good_is_a_clear_error_in_bounded_time():
    camera = MjpegCamera(frames_per_connection=40)
    source = LiveSource(camera.url, fps=10, backoff=FAST_BACKOFF, open_timeout_s=2, read_timeout_s=2)
    got = 0
    began = time.monotonic()
    with pytest.raises(SourceError, match="lost.*3 reconnect attempts"):
        for _ in source:
            got += 1
            if got == 5:
                camera.stop()  # no new connections; the current stream ends after its 40 frames
    assert got >= 5
    assert time.monotonic() - began < 60


def test_stop_interrupts_the_backoff():
    camera = MjpegCamera(frames_per_connection=1)
    camera.stop()  # nothing listens: every attempt fails
    stop = threading.Event()
    source = LiveSource(camera.url, fps=10, backoff=Backoff(initial_s=30, max_retries=5), stop=stop,
                        open_timeout_s=1, read_timeout_s=1)
    threading.Timer(0.5, stop.set).start()
    began = time.monotonic()
    assert list(source) == []
    assert time.monotonic() - began < 10
