"""Screening report: a "timeline of feels" PNG (stacked share of the audience by reaction over movie time, scene
boundaries, resonant moments marked, the audience metrics and norms underneath) and CSVs of the timeline, the scene
summary with its peak-end impact, the moments, the audience metrics and the norms.
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

from infra.clickhouse.client import ClickHouseClient  # noqa: E402
from moviemotion.analytics.catalog import Screening, get_screening  # noqa: E402
from moviemotion.analytics.queries import ANY_REACTION, REACTIONS, run_query  # noqa: E402
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
UNMEASURED_COLOR = "#f4f4f4"  # seconds stored before migration 0004: reaction unknown
MOMENT_FONT = 8


@dataclass(frozen=True)
class ReportFiles:
    png: Path
    timeline_csv: Path
    scenes_csv: Path
    moments_csv: Path
    metrics_csv: Path
    norms_csv: Path


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


def label_rows(xs: list[float], widths: list[float], gap: float = 0.0) -> list[int]:
    """Row (0 = lowest) per label, in input order, so that no two labels in a row overlap: left to right, each label
    goes into the lowest row whose last label ends at least `gap` before it starts (a label spans x +- width / 2);
    with none free, a new row opens above."""
    if len(xs) != len(widths):
        raise ValueError(f"{len(xs)} positions but {len(widths)} widths")
    rows: list[int] = [0] * len(xs)
    right_edges: list[float] = []  # per row: where its last label ends
    for index in sorted(range(len(xs)), key=lambda i: xs[i]):
        left = xs[index] - widths[index] / 2
        row = next((r for r, edge in enumerate(right_edges) if edge + gap <= left), len(right_edges))
        if row == len(right_edges):
            right_edges.append(float("-inf"))
        right_edges[row] = xs[index] + widths[index] / 2
        rows[index] = row
    return rows


def percent(value: float) -> str:
    return f"{value:.0%}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def metrics_lines(metrics: list[dict], norms: list[dict], impact: list[dict], top: int = 3) -> list[str]:
    """The report's audience-metrics section as text lines (audience_metrics, screening_norms, scene_impact rows)."""
    by_label = {row["reaction"]: row for row in metrics}
    norm = {row["figure"]: row for row in norms}
    lines = []
    engagement = by_label.get(ANY_REACTION)
    if engagement:
        line = (f"Engagement {percent(engagement['mean_share'])} of measured viewers per second (peak {percent(engagement['peak_share'])} "
                f"at {mmss(engagement['peak_second'])}); {percent(engagement['ever_share'])} of {engagement['viewers']} viewers reacted at some point")
        if "engagement" in norm:
            n = norm["engagement"]
            line += (f". Norms: engagement at percentile {percent(n['percentile'])} of {plural(n['screenings'], 'screening')}, "
                     f"{percent(n['film_percentile'])} of this film's {plural(n['film_screenings'], 'screening')}")
        lines.append(line)
    shown = sorted((by_label[e] for e in REACTIONS if e in by_label and by_label[e]["ever_viewers"] > 0), key=lambda r: (-r["ever_share"], REACTIONS.index(r["reaction"])))
    if shown:
        lines.append("Reactions: " + "; ".join(
            f"{r['reaction']} shown by {percent(r['ever_share'])} (mean {r['mean_share']:.1%}, peak {percent(r['peak_share'])} at {mmss(r['peak_second'])})"
            for r in shown[:top]))
    if impact:
        lines.append("Peak-end impact per scene: " + "; ".join(f"{row['title']} {percent(row['peak_end'])}" for row in impact))
    return lines or ["No measured reactions (rows stored before migration 0004 carry no reaction)."]


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def draw_timeline(screening: Screening, timeline: list[dict], scenes: list[Scene], moments: list[dict], section: list[str] = (), smooth_s: int = 5):
    """The report figure: the stacked reaction shares (`timeline` rows are audience_timeline rows), scene titles,
    `moments` (resonant_moments rows) labelled without overlaps, and the text lines of `section` underneath.
    Returns (figure, moment label artists)."""
    seconds = [row["movie_second"] for row in timeline]
    stack = list(REACTIONS) + ["neutral"]  # reactions rise from the bottom, no reaction on top
    shares = [moving_average([row[f"share_{e}"] for row in timeline], smooth_s) for e in stack]
    labels, colors = [e.capitalize() for e in stack], [COLORS[e] for e in stack]
    if any(row["measured"] == 0 for row in timeline):
        shares.append(moving_average([float(row["measured"] == 0) for row in timeline], smooth_s))
        labels.append("Not measured")
        colors.append(UNMEASURED_COLOR)
    section = list(section)
    text_in = 0.2 * (len(section) + 1) if section else 0.0  # inches of text under the chart
    height = 6 + text_in
    fig, ax = plt.subplots(figsize=(14, height), dpi=110)
    fig.subplots_adjust(left=0.06, right=0.86, top=1 - 0.45 / height, bottom=(0.65 + text_in) / height)
    if section:
        fig.text(0.06, (0.1 + text_in) / height, "Audience metrics\n" + "\n".join(section), ha="left", va="top", fontsize=9)
    ax.stackplot(seconds, shares, labels=labels, colors=colors, alpha=0.9, linewidth=0)
    end = max(seconds[-1], scenes[-1].end_s if scenes else 0)
    ax.set_xlim(0, end)
    ax.axhline(1.0, color="#333333", linewidth=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=12, steps=[1, 2, 3, 5, 6, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: mmss(value)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:.0%}" if value <= 1.0 else ""))
    ax.set_xlabel("Movie time (mm:ss)")
    ax.set_ylabel(f"Share of attending audience ({smooth_s} s average)")
    when = screening.starts_at.strftime("%Y-%m-%d %H:%M UTC")
    ax.set_title(f"Timeline of feels: {screening.film_title} - screening {screening.screening_id} ({screening.theater_id}, {when})", fontsize=12)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="Reaction", frameon=False)
    # Moment labels: measured on the final layout, stacked into rows above the chart so that none overlap.
    texts = []
    for moment in moments:
        x = moment["movie_second"]
        color = COLORS[moment["emotion"]]
        ax.plot([x], [1.0], marker="v", markersize=8, color=color, markeredgecolor="black", clip_on=False)
        texts.append(ax.text(x, 1.0, f"{moment['emotion']} {mmss(x)}", ha="center", va="bottom", fontsize=MOMENT_FONT,
                             bbox={"boxstyle": "round,pad=0.2", "fc": color, "alpha": 0.35, "lw": 0}))
    renderer = fig.canvas.get_renderer()
    to_data = ax.transData.inverted()
    widths = []
    for text in texts:
        box = text.get_window_extent(renderer).transformed(to_data)
        widths.append(box.width)
    row_height = 0.075
    rows = label_rows([m["movie_second"] for m in moments], widths, gap=0.004 * end)
    for text, row in zip(texts, rows):
        text.set_y(1.025 + row * row_height)
    scene_y = 1.025 + (max(rows, default=-1) + 1) * row_height + row_height / 2
    ax.set_ylim(0, scene_y + row_height / 2)
    for scene in scenes:
        ax.axvline(scene.start_s, color="#333333", linewidth=0.8, linestyle="--")
        ax.text((scene.start_s + scene.end_s) / 2, scene_y, scene.title, ha="center", va="center", fontsize=9, fontweight="bold", color="#222222", clip_on=True)
    return fig, texts


def plot_timeline(screening: Screening, timeline: list[dict], scenes: list[Scene], moments: list[dict], path: Path, section: list[str] = (), smooth_s: int = 5) -> Path:
    """Draw the report figure (draw_timeline) into a PNG at `path`."""
    fig, _ = draw_timeline(screening, timeline, scenes, moments, section, smooth_s)
    fig.savefig(path)
    plt.close(fig)
    return path


REPORT_STEPS = 6


def build_report(client: ClickHouseClient, screening_id: str, out_dir: Path, top_k: int = 3, on_step: Callable[[], None] = lambda: None) -> ReportFiles:
    """Query the screening and write timeline.png, timeline.csv, scenes.csv, moments.csv, metrics.csv and norms.csv
    into out_dir. `on_step` is called after each of the REPORT_STEPS steps (progress bars)."""
    screening = get_screening(client, screening_id)
    timeline = run_query(client, "audience_timeline", screening=screening_id)
    if not timeline:
        raise EmptyScreening(f"screening {screening_id!r} has no audience data (no attending viewer seconds)")
    on_step()
    impact = {row["scene_no"]: row for row in run_query(client, "scene_impact", screening=screening_id)}
    scene_rows = [
        {**row, **{key: impact.get(row["scene_no"], {}).get(key, 0) for key in ("peak_engagement", "end_engagement", "peak_end")}}
        for row in run_query(client, "scene_summary", screening=screening_id)
    ]
    on_step()
    moments = run_query(client, "resonant_moments", screening=screening_id, k=top_k)
    on_step()
    metrics = run_query(client, "audience_metrics", screening=screening_id)
    norms = run_query(client, "screening_norms", screening=screening_id)
    on_step()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    section = metrics_lines(metrics, norms, list(impact.values()))
    png = plot_timeline(screening, timeline, current_scenes(client, screening.film_id), moments, out_dir / "timeline.png", section)
    on_step()
    files = ReportFiles(
        png=png,
        timeline_csv=write_csv(out_dir / "timeline.csv", [{"time": mmss(row["movie_second"]), **row} for row in timeline]),
        scenes_csv=write_csv(out_dir / "scenes.csv", scene_rows),
        moments_csv=write_csv(out_dir / "moments.csv", [{"time": mmss(row["movie_second"]), **row} for row in moments]),
        metrics_csv=write_csv(out_dir / "metrics.csv", metrics),
        norms_csv=write_csv(out_dir / "norms.csv", norms),
    )
    on_step()
    return files
