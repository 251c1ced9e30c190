"""Screening report: a "timeline of feels" PNG (stacked audience emotion share over movie time, scene
boundaries, resonant moments marked) and CSVs of the timeline, the scene summary and the moments.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from engines.emotions import EMOTIONS  # noqa: E402
from infra.clickhouse.client import ClickHouseClient  # noqa: E402
from moviemotion.analytics.catalog import Screening, get_screening  # noqa: E402
from moviemotion.analytics.queries import run_query  # noqa: E402
from moviemotion.analytics.scenes import Scene, current_scenes  # noqa: E402

COLORS = {
    "neutral": "#d9d9d9",
    "happiness": "#f6c142",
    "surprise": "#5ab4e5",
    "sadness": "#3b5b9a",
    "anger": "#d7301f",
    "disgust": "#6a9a3a",
    "fear": "#8e5ea2",
    "contempt": "#a6761d",
}


@dataclass(frozen=True)
class ReportFiles:
    png: Path
    timeline_csv: Path
    scenes_csv: Path
    moments_csv: Path


class EmptyScreening(LookupError):
    """The screening is registered but has no audience data yet."""


def mmss(seconds: float) -> str:
    """Movie time as m:ss (minutes may exceed 59: 125:00 for a long film)."""
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def moving_average(values: list[float], window: int) -> list[float]:
    """Centered moving average (shorter at the edges); window 1 returns the values."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    half = window // 2
    out = []
    for index in range(len(values)):
        part = values[max(0, index - half) : index + half + 1]
        out.append(sum(part) / len(part))
    return out


def label_positions(xs: list[float], span: float, rows: tuple[float, ...] = (1.04, 1.1)) -> list[tuple[float, float]]:
    """(x, y) per moment label, in input order: left to right, a label closer than 8% of the span to the last one
    in its row moves up a row (with no free row, it shares the row whose last label is furthest left)."""
    placed: dict[int, tuple[float, float]] = {}
    last_in_row = {row: float("-inf") for row in rows}
    for index in sorted(range(len(xs)), key=lambda i: xs[i]):
        x = xs[index]
        row = next((r for r in rows if x - last_in_row[r] >= 0.08 * span), min(rows, key=lambda r: last_in_row[r]))
        last_in_row[row] = x
        placed[index] = (x, row)
    return [placed[i] for i in range(len(xs))]


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def plot_timeline(screening: Screening, timeline: list[dict], scenes: list[Scene], moments: list[dict], path: Path, smooth_s: int = 5) -> Path:
    """Draw the stacked share chart; `timeline` rows are audience_timeline rows, `moments` resonant_moments rows."""
    seconds = [row["movie_second"] for row in timeline]
    stack = [e for e in EMOTIONS if e != "neutral"] + ["neutral"]  # reactions rise from the bottom, neutral on top
    shares = [moving_average([row[f"share_{e}"] for row in timeline], smooth_s) for e in stack]
    fig, ax = plt.subplots(figsize=(14, 6), dpi=110)
    ax.stackplot(seconds, shares, labels=[e.capitalize() for e in stack], colors=[COLORS[e] for e in stack], alpha=0.9, linewidth=0)
    end = max(seconds[-1], scenes[-1].end_s if scenes else 0)
    ax.set_xlim(0, end)
    ax.set_ylim(0, 1.2)
    for scene in scenes:
        ax.axvline(scene.start_s, color="#333333", linewidth=0.8, linestyle="--")
        ax.text((scene.start_s + scene.end_s) / 2, 1.16, scene.title, ha="center", va="center", fontsize=9, fontweight="bold", color="#222222", clip_on=True)
    ax.axhline(1.0, color="#333333", linewidth=0.8)
    for (x, y), moment in zip(label_positions([m["movie_second"] for m in moments], end), moments):
        color = COLORS[moment["emotion"]]
        ax.plot([x], [1.0], marker="v", markersize=8, color=color, markeredgecolor="black", clip_on=False)
        ax.text(x, y, f"{moment['emotion']} {mmss(x)}", ha="center", va="center", fontsize=8, bbox={"boxstyle": "round,pad=0.2", "fc": color, "alpha": 0.35, "lw": 0})
    ax.xaxis.set_major_locator(MaxNLocator(nbins=12, steps=[1, 2, 3, 5, 6, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: mmss(value)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:.0%}" if value <= 1.0 else ""))
    ax.set_xlabel("Movie time (mm:ss)")
    ax.set_ylabel(f"Share of attending audience ({smooth_s} s average)")
    when = screening.starts_at.strftime("%Y-%m-%d %H:%M UTC")
    ax.set_title(f"Timeline of feels: {screening.film_title} - screening {screening.screening_id} ({screening.theater_id}, {when})", fontsize=12)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="Dominant emotion", frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


REPORT_STEPS = 5


def build_report(
    client: ClickHouseClient, screening_id: str, out_dir: Path, threshold: float = 0.3, top_k: int = 3, on_step: Callable[[], None] = lambda: None
) -> ReportFiles:
    """Query the screening and write timeline.png, timeline.csv, scenes.csv and moments.csv into out_dir.
    `on_step` is called after each of the REPORT_STEPS steps (progress bars)."""
    screening = get_screening(client, screening_id)
    timeline = run_query(client, "audience_timeline", screening=screening_id)
    if not timeline:
        raise EmptyScreening(f"screening {screening_id!r} has no audience data (no attending viewer seconds)")
    on_step()
    scene_rows = run_query(client, "scene_summary", screening=screening_id, threshold=threshold)
    on_step()
    moments = run_query(client, "resonant_moments", screening=screening_id, k=top_k)
    on_step()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot_timeline(screening, timeline, current_scenes(client, screening.film_id), moments, out_dir / "timeline.png")
    on_step()
    files = ReportFiles(
        png=png,
        timeline_csv=write_csv(out_dir / "timeline.csv", [{"time": mmss(row["movie_second"]), **row} for row in timeline]),
        scenes_csv=write_csv(out_dir / "scenes.csv", scene_rows),
        moments_csv=write_csv(out_dir / "moments.csv", [{"time": mmss(row["movie_second"]), **row} for row in moments]),
    )
    on_step()
    return files
