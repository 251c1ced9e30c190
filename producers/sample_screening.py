"""Reproducible sample screening: a seat-back camera-row video plus its ground truth, from the committed
sprite and script (no shared data needed).

Writes into a directory: `sample_screening.avi` (MJPG, 6 seats side by side), `ground_truth.csv`
(seat_id, second, emotion, visible, reaction; emotion and reaction empty when not visible; reaction
is `neutral` where the seat shows its resting face) and `seat_map.json` (the
default seat map for that video). Same bytes on every run for a given OpenCV build.
"""
from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2

from producers.sample_render import SAMPLE_DIR, SCRIPT_PATH, FrameRenderer, Script, load_script
from producers.sample_sprite import SPRITE_PATH, load_sprite

SEAT_MAP_PATH = SAMPLE_DIR / "seat_map.json"
VIDEO_NAME = "sample_screening.avi"
GROUND_TRUTH_NAME = "ground_truth.csv"
SEAT_MAP_NAME = "seat_map.json"
JPEG_QUALITY = 90


@dataclass(frozen=True)
class SampleScreening:
    """Where a generated sample lives and what it holds."""

    video_path: Path
    seat_map_path: Path
    ground_truth_path: Path
    seats: tuple[str, ...]
    duration_s: float
    fps: float
    frame_count: int
    screening_id: str
    theater_id: str
    camera_id: str


def ground_truth_rows(script: Script) -> list[tuple[str, int, str, int, str]]:
    """(seat_id, second, emotion or '', visible 0/1, expected reaction or '') for every seat and whole second."""
    rows = []
    for seat in script.seats:
        for second in range(script.duration_s):
            emotion = seat.emotion_at(second)
            rows.append((seat.seat_id, second, emotion or "", int(emotion is not None), seat.reaction_at(second) or ""))
    return rows


def write_video(script: Script, renderer: FrameRenderer, path: Path, progress: bool = False) -> None:
    from tqdm import tqdm

    width, height = script.frame_size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), float(script.fps), (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write MJPG video to {path}")
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, JPEG_QUALITY)
    try:
        for index in tqdm(range(script.frame_count), desc="render sample", unit="frame", disable=not progress):
            writer.write(renderer.render(index))
    finally:
        writer.release()


def generate_sample_screening(out_dir: Path | str, progress: bool = False, script_path: Path = SCRIPT_PATH,
                              sprite_path: Path = SPRITE_PATH) -> SampleScreening:
    """Render the video, ground truth and seat map into `out_dir` and check the video reads back."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    script = load_script(script_path)
    renderer = FrameRenderer(script, load_sprite(sprite_path))
    renderer.check_covers_script()
    sample = SampleScreening(
        video_path=out_dir / VIDEO_NAME,
        seat_map_path=out_dir / SEAT_MAP_NAME,
        ground_truth_path=out_dir / GROUND_TRUTH_NAME,
        seats=tuple(seat.seat_id for seat in script.seats),
        duration_s=float(script.duration_s),
        fps=float(script.fps),
        frame_count=script.frame_count,
        screening_id=script.screening_id,
        theater_id=script.theater_id,
        camera_id=script.camera_id,
    )
    write_video(script, renderer, sample.video_path, progress)
    check_reads_back(sample.video_path, script.frame_size, script.frame_count)
    with open(sample.ground_truth_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("seat_id", "second", "emotion", "visible", "reaction"))
        writer.writerows(ground_truth_rows(script))
    shutil.copyfile(SEAT_MAP_PATH, sample.seat_map_path)
    return sample


def check_reads_back(video_path: Path, frame_size: tuple[int, int], frame_count: int) -> None:
    """RuntimeError unless the written video reads back as `frame_count` frames of `frame_size` (width, height)."""
    capture = cv2.VideoCapture(str(video_path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok or frame.shape[1::-1] != tuple(frame_size) or count != frame_count:
        raise RuntimeError(f"{video_path} does not read back as {frame_count} frames of {frame_size}")
