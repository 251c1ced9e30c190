"""Camera sources: a device index, a video file or an RTSP/HTTP URL, read with OpenCV and sampled at a fixed fps.

Video files: movie time is the file's own clock (frame index / the file's fps) and frame ids are
the file's frame indices, so a replay re-sends the same ids; a file that cannot be opened or that
stops before its declared length raises SourceError.
Live sources (device, URL): movie time is wall time since the screening start; the frame id is
the sampling slot since that start (movie_ts * fps), so a restarted producer re-sends the same
ids. Frames before the start are skipped. A lost camera is reopened with exponential backoff;
after `Backoff.max_retries` failed attempts in a row the source raises SourceError (the caller
decides; the host process never crashes on it).
"""
from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# Frames a file may come up short of its declared count (container estimates) before it counts as truncated.
_FRAME_COUNT_SLACK = 2


class SourceError(RuntimeError):
    """A source that cannot be opened, or a camera lost for good."""


@dataclass(frozen=True)
class SourceFrame:
    """One sampled frame: BGR pixels (never leave the host), its id and times."""

    image: np.ndarray
    frame_id: int
    movie_ts: float
    captured_us: int


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: initial_s, times factor each attempt, capped at max_delay_s; max_retries attempts."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 8.0
    max_retries: int = 8

    def delay(self, attempt: int) -> float:
        """Delay before reconnect attempt `attempt` (1-based)."""
        return min(self.max_delay_s, self.initial_s * self.factor ** (attempt - 1))


def parse_source(spec: str | int) -> int | str:
    """A device index (int or digits), a URL (scheme://...), or an existing file path."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return int(spec)
    if _URL.match(spec):
        return spec
    path = Path(spec)
    if not path.is_file():
        raise SourceError(f"video file not found: {path}")
    return str(path)


def now_us() -> int:
    return time.time_ns() // 1000


class VideoFileSource:
    """Frames of a video file sampled at `fps` (as fast as possible, or paced in real time)."""

    def __init__(self, path: str | Path, fps: float, start_us: int | None = None, realtime: bool = False,
                 stop: threading.Event | None = None) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.path = Path(path)
        self.fps = fps
        self.realtime = realtime
        self.stop = stop or threading.Event()
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            raise SourceError(f"cannot open video file {self.path}: unreadable or not a supported video")
        self.video_fps = float(self._capture.get(cv2.CAP_PROP_FPS))
        if not math.isfinite(self.video_fps) or self.video_fps <= 0:
            self._capture.release()
            raise SourceError(f"video file {self.path} has no usable frame rate")
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_size = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.start_us = now_us() if start_us is None else start_us

    def __iter__(self) -> Iterator[SourceFrame]:
        capture, index, next_ts, began = self._capture, 0, 0.0, time.monotonic()
        try:
            while not self.stop.is_set():
                if not capture.grab():
                    break
                movie_ts = index / self.video_fps
                if movie_ts + 1e-9 >= next_ts:
                    next_ts += 1.0 / self.fps
                    ok, image = capture.retrieve()
                    if not ok or image is None:
                        raise SourceError(f"video file {self.path}: frame {index} cannot be decoded")
                    if self.realtime:
                        self.stop.wait(max(0.0, began + movie_ts - time.monotonic()))
                    yield SourceFrame(image, index, movie_ts, self.start_us + round(movie_ts * 1e6))
                index += 1
            if not self.stop.is_set() and self.frame_count > 0 and index < self.frame_count - _FRAME_COUNT_SLACK:
                raise SourceError(
                    f"video file {self.path} ended at frame {index} of {self.frame_count}: truncated or corrupt"
                )
        finally:
            capture.release()


class LiveSource:
    """A device or stream URL sampled at `fps` against wall time, reconnecting with backoff."""

    def __init__(self, target: int | str, fps: float, start_us: int | None = None, backoff: Backoff = Backoff(),
                 stop: threading.Event | None = None, open_timeout_s: float = 10.0, read_timeout_s: float = 5.0) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.target = target
        self.fps = fps
        self.backoff = backoff
        self.stop = stop or threading.Event()
        self.start_us = now_us() if start_us is None else start_us
        self._timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
                          cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)]
        self.frame_size: tuple[int, int] | None = None

    def _open(self) -> cv2.VideoCapture:
        if isinstance(self.target, int):
            capture = cv2.VideoCapture(self.target)
        else:
            capture = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, self._timeouts)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot open camera {self.target!r}")
        return capture

    def _reconnect(self, reason: str) -> cv2.VideoCapture | None:
        """Reopen with backoff; None if stopped; SourceError after max_retries failures."""
        for attempt in range(1, self.backoff.max_retries + 1):
            delay = self.backoff.delay(attempt)
            log.warning("camera %r: %s; reconnect attempt %d/%d in %.1fs", self.target, reason, attempt,
                        self.backoff.max_retries, delay)
            if self.stop.wait(delay):
                return None
            try:
                capture = self._open()
            except SourceError as exc:
                reason = str(exc)
                continue
            ok, _ = capture.read()
            if ok:
                log.info("camera %r: reconnected", self.target)
                return capture
            capture.release()
            reason = "opened but gave no frame"
        raise SourceError(f"camera {self.target!r} lost: {reason}; gave up after {self.backoff.max_retries} reconnect attempts")

    def __iter__(self) -> Iterator[SourceFrame]:
        try:
            capture = self._open()
        except SourceError as exc:
            capture = self._reconnect(str(exc))
        last_slot = -1
        try:
            while capture is not None and not self.stop.is_set():
                ok, image = capture.read()
                if not ok or image is None:
                    capture.release()
                    capture = self._reconnect("read failed")
                    continue
                captured = now_us()
                movie_ts = (captured - self.start_us) / 1e6
                slot = math.floor(movie_ts * self.fps)
                if movie_ts < 0 or slot <= last_slot:
                    continue
                last_slot = slot
                self.frame_size = (image.shape[1], image.shape[0])
                yield SourceFrame(image, slot, movie_ts, captured)
        finally:
            if capture is not None:
                capture.release()


def open_source(spec: str | int, fps: float, start_us: int | None = None, realtime: bool = False,
                backoff: Backoff = Backoff(), stop: threading.Event | None = None) -> VideoFileSource | LiveSource:
    """Open a device index, a URL or a video file (see the module docstring)."""
    target = parse_source(spec)
    if isinstance(target, str) and not _URL.match(target):
        return VideoFileSource(target, fps, start_us=start_us, realtime=realtime, stop=stop)
    return LiveSource(target, fps, start_us=start_us, backoff=backoff, stop=stop)
