"""The Yale screening: identity-consistent seat rows (one Yale subject per seat) for testing baseline-relative reactions.

Writes into a directory, per camera of producers/yale/script.json: `yale_<camera_id>.avi` (MJPG, seats side by
side) and `seat_map_<camera_id>.json`; and one `ground_truth.csv` for all seats, in the sample screening's format
(seat_id, second, emotion, visible, reaction; read by moviemotion/ground_truth.py; every Yale viewer rests on a
neutral face, so the reaction expected is the emotion shown) plus `kind` (calibration, neutral, expression,
distractor), `segment` (index in the seat's script), `camera_id`, `subject` and `variant`.
The images are read from ../shared/data/yalefaces (research use only, never committed); without them generation
stops with YaleDataMissing. Same bytes on every run for a given OpenCV build.

CLI: `python -m producers.yale_screening --out DIR` (`--help`).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import click

from producers.sample_screening import check_reads_back, write_video
from producers.seat_map import SeatMap, parse_seat_map
from producers.yale.render import YALE_DIR, YaleCameraRenderer, YaleDataMissing, load_faces
from producers.yale.script import SCRIPT_PATH, YaleCamera, YaleScript, load_script

GROUND_TRUTH_NAME = "ground_truth.csv"
GROUND_TRUTH_FIELDS = ("seat_id", "second", "emotion", "visible", "reaction", "kind", "segment", "camera_id", "subject",
                       "variant")

__all__ = ["YaleDataMissing", "YaleScreening", "YaleCameraVideo", "generate_yale_screening", "ground_truth_rows",
           "seat_map_for"]


@dataclass(frozen=True)
class YaleCameraVideo:
    """One camera's rendered seat row."""

    camera_id: str
    video_path: Path
    seat_map_path: Path
    seats: tuple[str, ...]


@dataclass(frozen=True)
class YaleScreening:
    """Where a generated Yale screening lives and what it holds."""

    cameras: tuple[YaleCameraVideo, ...]
    ground_truth_path: Path
    duration_s: float
    fps: float
    frame_count: int  # per video
    screening_id: str
    theater_id: str

    @property
    def seats(self) -> tuple[str, ...]:
        return tuple(seat for camera in self.cameras for seat in camera.seats)


def seat_map_for(script: YaleScript, camera: YaleCamera) -> SeatMap:
    """One tile-wide region per seat, left to right."""
    tile = script.tile
    return parse_seat_map({
        "camera_id": camera.camera_id,
        "frame_size": [tile * len(camera.seats), tile],
        "seats": [{"seat_id": seat.seat_id, "region": [i * tile, 0, tile, tile]} for i, seat in enumerate(camera.seats)],
    }, origin=f"seat map of {camera.camera_id}")


def ground_truth_rows(script: YaleScript, cameras: tuple[YaleCamera, ...] | None = None) -> list[tuple]:
    """One row per seat and whole second, GROUND_TRUTH_FIELDS order; every seat is visible throughout."""
    rows = []
    for camera in cameras or script.cameras:
        for seat in camera.seats:
            for second in range(script.duration_s):
                index = seat.segment_index_at(second)
                segment = seat.segments[index]
                # Every Yale viewer rests on a neutral face: the reaction expected is the emotion shown.
                rows.append((seat.seat_id, second, segment.emotion, 1, segment.emotion, segment.kind, index,
                             camera.camera_id, seat.subject, segment.variant))
    return rows


def _write_seat_map(seat_map: SeatMap, path: Path) -> None:
    obj = {"camera_id": seat_map.camera_id, "frame_size": list(seat_map.frame_size),
           "seats": [{"seat_id": s.seat_id, "region": [int(v) for v in s.region]} for s in seat_map.seats]}
    path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")


def generate_yale_screening(out_dir: Path | str, yale_dir: Path | str = YALE_DIR, camera_ids: tuple[str, ...] | None = None,
                            script_path: Path = SCRIPT_PATH, progress: bool = False) -> YaleScreening:
    """Render the videos (all cameras, or `camera_ids`), seat maps and ground truth into `out_dir`.

    YaleDataMissing (a FileNotFoundError) when the Yale images are not in `yale_dir`."""
    out_dir = Path(out_dir)
    script = load_script(script_path)
    cameras = tuple(script.camera(c) for c in camera_ids) if camera_ids else script.cameras
    faces = load_faces(script, Path(yale_dir), cameras)
    out_dir.mkdir(parents=True, exist_ok=True)
    videos = []
    for camera in cameras:
        renderer = YaleCameraRenderer(script, camera.camera_id, faces)
        video = YaleCameraVideo(camera.camera_id, out_dir / f"yale_{camera.camera_id}.avi",
                                out_dir / f"seat_map_{camera.camera_id}.json", tuple(s.seat_id for s in camera.seats))
        # write_video needs of its script only frame_size, fps and frame_count, which the renderer has.
        write_video(renderer, renderer, video.video_path, progress)
        check_reads_back(video.video_path, renderer.frame_size, renderer.frame_count)
        _write_seat_map(seat_map_for(script, camera), video.seat_map_path)
        videos.append(video)
    ground_truth_path = out_dir / GROUND_TRUTH_NAME
    with open(ground_truth_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(GROUND_TRUTH_FIELDS)
        writer.writerows(ground_truth_rows(script, cameras))
    return YaleScreening(tuple(videos), ground_truth_path, float(script.duration_s), float(script.fps),
                         script.frame_count, script.screening_id, script.theater_id)


@click.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the videos, seat maps and ground truth CSV.")
@click.option("--yale-dir", type=click.Path(file_okay=False), default=str(YALE_DIR), show_default=True,
              help="The Yale faces (research use only; read in place, never copied).")
@click.option("--camera", "camera_ids", multiple=True, help="Only this camera (repeatable; default: all).")
def main(out_dir: str, yale_dir: str, camera_ids: tuple[str, ...]) -> None:
    """Generate the Yale screening: identity-consistent seat rows plus ground truth (kind per second)."""
    try:
        screening = generate_yale_screening(Path(out_dir), Path(yale_dir), camera_ids or None, progress=True)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    for video in screening.cameras:
        click.echo(f"video: {video.video_path} ({screening.frame_count} frames, {screening.duration_s:g}s, "
                   f"seats {', '.join(video.seats)}); seat map {video.seat_map_path}")
    click.echo(f"ground truth: {screening.ground_truth_path}")


if __name__ == "__main__":
    main()
