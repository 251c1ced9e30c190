"""`moviemotion film index | generate-clip`: index a film's shot structure into ClickHouse; render a test clip."""
from __future__ import annotations

from pathlib import Path

import click
from tqdm import tqdm

from moviemotion.commands.store import _client
from producers.film_clip import default_script, write_clip
from producers.film_index import IndexParams, expected_samples, index_film, store_shots
from producers.shot_scale import SHOT_SCALES
from producers.sources import SourceError


@click.group("film")
def film() -> None:
    """The film structure index: shots, shot scales and brightness, joined to audience reactions."""


@film.command("index")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--film", "film_id", required=True, help="Film id (screenings link to it via `register-screening --film`).")
@click.option("--fps", type=click.FloatRange(min=0.1, max=30), default=IndexParams.fps, show_default=True, help="Frames sampled per second of film.")
@click.option("--analysis-height", type=click.IntRange(min=64), default=IndexParams.analysis_height, show_default=True, help="Faces are detected on frames scaled down to this height.")
@click.option("--faces-per-shot", type=click.IntRange(min=1), default=IndexParams.faces_per_shot, show_default=True, help="Sampled frames per shot searched for faces.")
@click.pass_obj
def index_cmd(settings, file: Path, film_id, fps, analysis_height, faces_per_shot):
    """Index FILE: detect its cuts (colour-histogram change at --fps samples/s), give each shot a scale from
    its largest face (close-up, medium close-up, medium, wide, no face), its face count and brightness, and
    store the shots in `film_shots` under --film. Re-indexing a film replaces its shots."""
    params = IndexParams(fps=fps, analysis_height=analysis_height, faces_per_shot=faces_per_shot)
    try:
        with tqdm(total=expected_samples(file, fps) or None, desc=f"index {file.name}", unit="frame") as bar:
            index = index_film(file, params, progress=bar.update)
    except (SourceError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from None
    with _client(settings) as client:
        store_shots(client, film_id, index.shots, file.name)
    counts = {scale: sum(shot.scale == scale for shot in index.shots) for scale in SHOT_SCALES}
    click.echo(f"indexed {film_id}: {len(index.shots)} shots in {index.duration_s:.1f} s "
               f"({', '.join(f'{n} {scale}' for scale, n in counts.items() if n)})")


@film.command("generate-clip")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--minutes", type=click.FloatRange(min=0.1, max=30), default=1.0, show_default=True, help="Clip length.")
@click.option("--size", type=(int, int), default=(1280, 720), show_default=True, help="Frame width and height.")
@click.option("--fps", type=click.FloatRange(min=1, max=60), default=25.0, show_default=True, help="Frame rate.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the script and the sets.")
def generate_clip_cmd(out: Path, minutes, size, fps, seed):
    """Render a synthetic film clip to OUT (MPEG-4) with known cuts, dissolves, light changes and faces at every
    shot scale, and print its true cut times: a known input for `film index`."""
    try:
        truth = write_clip(out, default_script(minutes, seed), tuple(size), fps, seed, progress=True)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {out}: {truth.duration_s:.1f} s, {len(truth.shots)} shots")
    click.echo("cuts at: " + ", ".join(f"{t:.2f}" for t in truth.cuts))


def register(group: click.Group) -> None:
    group.add_command(film)
