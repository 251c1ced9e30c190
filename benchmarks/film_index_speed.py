"""Film index speed as a multiple of real time (target: >= 20x at 2 samples/s on a 1080p file).

Renders a synthetic 1080p film clip once (producers/film_clip.py: cuts, dissolves, light changes, faces at
every shot scale; kept in a temp dir and reused), indexes it `--runs` times and prints, per run, the wall
time and film seconds per wall second, plus where the time goes (decoding every frame vs. analysing the
sampled ones) and the index's cut recall/precision and shot-scale accuracy against the clip's truth.

Run: `python benchmarks/film_index_speed.py --help`.
"""
from __future__ import annotations

import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import click
import cv2

from producers.film_clip import FACE_SIZE, GRAIN_SIGMA, clip_truth, default_script, score_index, write_clip
from producers.film_index import IndexParams, index_film


def decode_only_s(path: Path) -> float:
    """Seconds to grab (decode without converting) every frame: the floor for any sampling rate."""
    capture = cv2.VideoCapture(str(path))
    began = time.perf_counter()
    while capture.grab():
        pass
    capture.release()
    return time.perf_counter() - began


@click.command()
@click.option("--minutes", type=click.FloatRange(min=0.2), default=2.5, show_default=True, help="Clip length.")
@click.option("--size", type=(int, int), default=(1920, 1080), show_default=True, help="Clip frame size (width height).")
@click.option("--video-fps", type=click.FloatRange(min=1), default=25.0, show_default=True, help="Clip frame rate.")
@click.option("--fps", type=click.FloatRange(min=0.1), default=2.0, show_default=True, help="Index sampling rate (samples per film second).")
@click.option("--analysis-height", type=click.IntRange(min=64), default=IndexParams.analysis_height, show_default=True, help="Faces are detected at this height.")
@click.option("--faces-per-shot", type=click.IntRange(min=1), default=IndexParams.faces_per_shot, show_default=True, help="Sampled frames per shot searched for faces.")
@click.option("--runs", type=click.IntRange(min=1), default=3, show_default=True, help="Timed index runs.")
@click.option("--clip-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(tempfile.gettempdir()) / "moviemotion-film-bench",
              show_default=True, help="Where the clip is rendered once and reused.")
def main(minutes, size, video_fps, fps, analysis_height, faces_per_shot, runs, clip_dir: Path) -> None:
    script = default_script(minutes, seed=11)
    key = hashlib.sha1(repr((script, FACE_SIZE, GRAIN_SIGMA, size, video_fps)).encode()).hexdigest()[:10]
    path = clip_dir / f"clip_{size[0]}x{size[1]}_{video_fps:g}fps_{minutes:g}min_{key}.mp4"
    if path.is_file():
        truth = clip_truth(script, video_fps)
        click.echo(f"reusing {path}")
    else:
        click.echo(f"rendering {path} (once)")
        truth = write_clip(path.with_suffix(".part.mp4"), script, size, video_fps, seed=11, progress=True)
        path.with_suffix(".part.mp4").rename(path)
    params = IndexParams(fps=fps, analysis_height=analysis_height, faces_per_shot=faces_per_shot)
    mbps = path.stat().st_size * 8 / truth.duration_s / 1e6
    click.echo(f"clip: {truth.duration_s:.1f} s, {size[0]}x{size[1]} at {video_fps:g} fps, {mbps:.1f} Mbit/s, {len(truth.cuts)} cuts; "
               f"index at {fps:g} samples/s, faces at {analysis_height} px, {faces_per_shot} frames per shot")
    decode = decode_only_s(path)
    click.echo(f"decode only (grab every frame): {decode:.2f} s = {truth.duration_s / decode:.1f}x real time")
    multiples = []
    for run in range(1, runs + 1):
        began = time.perf_counter()
        index = index_film(path, params)
        wall = time.perf_counter() - began
        multiples.append(index.duration_s / wall)
        click.echo(f"run {run}: {wall:.2f} s for {index.duration_s:.1f} s of film = {multiples[-1]:.1f}x real time "
                   f"({index.samples} samples, {len(index.shots)} shots)")
    score = score_index(truth, index.shots)
    click.echo(f"cut recall {score.cut_recall:.1%}, precision {score.cut_precision:.1%}, shot-scale accuracy {score.scale_accuracy:.1%}")
    click.echo(f"index speed: median {statistics.median(multiples):.1f}x real time, best {max(multiples):.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()
