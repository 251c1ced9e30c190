"""The film structure index: a film file -> its shots (times, scale from faces, face count, brightness) -> ClickHouse.

The film is read like any video source (`producers.sources.VideoFileSource`: every frame is decoded, only
the sampled ones converted to pixels) at `fps` samples per second. Cuts come from `producers.shot_detection`,
decided as the film streams by (a few samples of look-ahead). Faces are detected (YuNet) on at most
`faces_per_shot` of each shot's samples, spread over the shot and downscaled to `analysis_height` (fewer once
most of them agree); the shot scale comes from `producers.shot_scale`. A shot boundary lies halfway between
the last sample of one shot and the first of the next (within 1 / (2 fps) seconds of the cut).

`store_shots` writes a film's shots to `film_shots` as a new revision; readers use `current_film_shots`
(the newest revision per film), so re-indexing replaces a film's shots (schemas/clickhouse/0110_film_shots.sql).
"""
from __future__ import annotations

import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engines.face_detector import FaceDetector
from infra.clickhouse.client import ClickHouseClient
from producers.shot_detection import CutParams, StreamingCuts, distance, signature, thumbnail
from producers.shot_scale import FrameFaces, scale_of, shot_faces
from producers.sources import SourceError, SourceFrame, VideoFileSource

# A decoded frame taking longer than this means the decoder is stuck.
DECODE_TIMEOUT_S = 60.0
_READ_AHEAD = 4
_END = object()


@dataclass(frozen=True)
class IndexParams:
    fps: float = 2.0
    analysis_height: int = 540
    faces_per_shot: int = 3
    cuts: CutParams = field(default_factory=CutParams)

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ValueError(f"sampling fps must be > 0, got {self.fps}")
        if self.analysis_height < 64:
            raise ValueError(f"analysis height must be >= 64 pixels, got {self.analysis_height}")
        if self.faces_per_shot < 1:
            raise ValueError(f"faces_per_shot must be >= 1, got {self.faces_per_shot}")


@dataclass(frozen=True)
class Shot:
    shot_no: int
    start_s: float
    end_s: float
    scale: str
    face_count: int
    face_height: float  # largest face height / frame height (typical over the shot; 0 = no face)
    brightness: float  # mean luma of the sampled frames, 0..1
    samples: int


@dataclass(frozen=True)
class FilmIndex:
    path: Path
    duration_s: float
    video_fps: float
    frame_size: tuple[int, int]
    samples: int
    shots: tuple[Shot, ...]


def frame_faces(detector: FaceDetector, image: np.ndarray, analysis_height: int) -> FrameFaces:
    """Faces of one frame, detected at (at most) `analysis_height` pixels high."""
    height = image.shape[0]
    if height > analysis_height:
        width = max(1, round(image.shape[1] * analysis_height / height))
        image = cv2.resize(image, (width, analysis_height), interpolation=cv2.INTER_AREA)
    detections = detector.detect(image)
    largest = max((d.bbox[3] for d in detections), default=0.0)
    return FrameFaces(len(detections), min(1.0, largest / image.shape[0]))


class _OpenShot:
    """Samples of the shot being read: times, brightness, and an evenly spread few frames kept for faces."""

    def __init__(self, start_s: float, keep: int) -> None:
        self.start_s = start_s
        self.last_ts = start_s
        self.samples = 0
        self.brightness_sum = 0.0
        self._keep = 2 * keep
        self._stride = 1
        self.kept: list[np.ndarray] = []

    def add(self, movie_ts: float, brightness: float, image: np.ndarray) -> None:
        if self.samples % self._stride == 0:
            self.kept.append(image)
            if len(self.kept) > self._keep:  # keep every other one and sample half as often from now on
                self.kept = self.kept[::2]
                self._stride *= 2
        self.samples += 1
        self.brightness_sum += brightness
        self.last_ts = movie_ts


class ShotBuilder:
    """Turns the sampled frames into shots as they stream by."""

    def __init__(self, params: IndexParams, detector: FaceDetector) -> None:
        self.params = params
        self.detector = detector
        self.shots: list[Shot] = []
        self._cuts = StreamingCuts(params.cuts)
        self._pending: deque[tuple[float, float, np.ndarray]] = deque()
        self._previous: np.ndarray | None = None
        self._open: _OpenShot | None = None

    def add(self, movie_ts: float, image: np.ndarray) -> None:
        thumb = thumbnail(image)
        current = signature(thumb)
        change = 0.0 if self._previous is None else distance(self._previous, current)
        self._previous = current
        brightness = float(cv2.cvtColor(thumb, cv2.COLOR_BGR2GRAY).mean()) / 255.0
        self._pending.append((movie_ts, brightness, image))
        self._place(self._cuts.push(change))

    def finish(self, duration_s: float) -> list[Shot]:
        self._place(self._cuts.finish())
        if self._open is not None:
            self._close(max(duration_s, self._open.last_ts))
        return self.shots

    def _place(self, decisions: list[bool]) -> None:
        for starts_shot in decisions:
            movie_ts, brightness, image = self._pending.popleft()
            if self._open is None:
                self._open = _OpenShot(0.0, self.params.faces_per_shot)
            elif starts_shot:
                boundary = (self._open.last_ts + movie_ts) / 2
                self._close(boundary)
                self._open = _OpenShot(boundary, self.params.faces_per_shot)
            self._open.add(movie_ts, brightness, image)

    def _close(self, end_s: float) -> None:
        shot = self._open
        picks = np.unique(np.linspace(0, len(shot.kept) - 1, min(self.params.faces_per_shot, len(shot.kept))).round().astype(int))
        faces = shot_faces(self._faces_until_majority([shot.kept[i] for i in picks]))
        self.shots.append(
            Shot(len(self.shots) + 1, shot.start_s, end_s, faces.scale, faces.face_count, faces.face_height,
                 shot.brightness_sum / shot.samples, shot.samples)
        )


    def _faces_until_majority(self, frames: list[np.ndarray]) -> list[FrameFaces]:
        """Faces of the frames in turn, stopping once most of them must agree (same count and scale): with 3
        frames, 2 that agree settle the shot and the third is never searched (YuNet is the costly step)."""
        seen: list[FrameFaces] = []
        for image in frames:
            seen.append(frame_faces(self.detector, image, self.params.analysis_height))
            votes = Counter((f.count, scale_of(f.largest_height)) for f in seen)
            if votes.most_common(1)[0][1] > len(frames) // 2:
                break
        return seen


def read_ahead(source: VideoFileSource, timeout_s: float = DECODE_TIMEOUT_S) -> Iterator[SourceFrame]:
    """The source's frames, decoded on a thread while the caller analyses the previous ones (OpenCV releases
    the GIL while decoding). The thread's errors are raised here; TimeoutError if no frame comes in `timeout_s`."""
    frames: queue.Queue = queue.Queue(maxsize=_READ_AHEAD)

    def put(item) -> None:
        while not source.stop.is_set():
            try:
                frames.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def decode() -> None:
        try:
            for frame in source:
                put(frame)
            put(_END)
        except Exception as exc:  # handed to the reader
            put(exc)

    thread = threading.Thread(target=decode, name=f"decode {source.path.name}", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = frames.get(timeout=timeout_s)
            except queue.Empty:
                raise TimeoutError(f"video file {source.path}: no frame decoded in {timeout_s:.0f}s") from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        source.stop.set()
        thread.join(timeout=timeout_s)


def index_film(path: Path | str, params: IndexParams = IndexParams(), detector: FaceDetector | None = None,
               progress: Callable[[int], None] | None = None) -> FilmIndex:
    """Read the film at `path` and return its shots. `progress(n)` is called with each sample's count (1).
    Raises SourceError for a file that cannot be read or has no frames."""
    source = VideoFileSource(path, params.fps)
    builder = ShotBuilder(params, detector or FaceDetector())
    samples = 0
    for frame in read_ahead(source):
        builder.add(frame.movie_ts, frame.image)
        samples += 1
        if progress is not None:
            progress(1)
    if samples == 0:
        raise SourceError(f"video file {source.path} has no frames")
    duration_s = source.frame_count / source.video_fps if source.frame_count > 0 else 0.0
    shots = builder.finish(duration_s)
    return FilmIndex(source.path, shots[-1].end_s, source.video_fps, source.frame_size, samples, tuple(shots))


def expected_samples(path: Path | str, fps: float) -> int:
    """About how many samples `index_film` will read (for progress bars); 0 if unknown."""
    capture = cv2.VideoCapture(str(path))
    try:
        frames, video_fps = capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    return int(frames / video_fps * fps) if frames > 0 and video_fps > 0 else 0


def store_shots(client: ClickHouseClient, film_id: str, shots: tuple[Shot, ...] | list[Shot], source: str) -> int:
    """Insert the shots as the film's newest revision (older revisions stay, unread); return the revision."""
    if not film_id:
        raise ValueError("film_id must not be empty")
    if not shots:
        raise ValueError(f"no shots to store for film {film_id}")
    revision = time.time_ns() // 1000
    client.insert(
        "film_shots",
        [
            {"film_id": film_id, "revision": revision, "shot_no": s.shot_no, "start_s": s.start_s, "end_s": s.end_s,
             "shot_scale": s.scale, "face_count": s.face_count, "face_height": s.face_height,
             "brightness": s.brightness, "samples": s.samples, "source": source}
            for s in shots
        ],
    )
    return revision
