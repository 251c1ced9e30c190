"""`dominant` vs `reaction` on the Yale screening (issue #13): identity-consistent viewers through the real pipeline.

Generates the Yale screening (producers/yale_screening.py; images from ../shared/data/yalefaces), publishes every
camera with the real producer (YuNet, tracker, seat map) to Kafka, scores it with a `moviemotion worker` into
ClickHouse, then measures, for `dominant` and (where the worker stores it) `reaction`:
- expression segments: a segment agrees when the majority label of its seconds from SETTLE_S after onset to its
  end is the scripted emotion; overall and per class;
- false reactions: the share of neutral seconds after calibration whose label is not `neutral`, split into the
  plain `normal` face (kind neutral) and the side-light / glasses distractors, each per variant. "settled" leaves
  out the first SETTLE_S seconds after an expression ends (the smoother's lag, as at onset), "all" does not.
Writes every scripted second (truth, stored labels, probabilities and intensities) to a CSV for offline tuning.
Without a `reaction` column in viewer_seconds (schemas/clickhouse/0004_reactions.sql), or with it empty (a worker
that does not fill it), only `dominant` is reported.

By default it starts a private stack (Kafka broker on free ports + embedded store, in a temp dir); `--use-stack`
runs against the configured one (`moviemotion up`) with a fresh consumer group and screening id.
Run from the repository root: `python -m benchmarks.yale_reactions --help`.
"""
from __future__ import annotations

import csv
import tempfile
from collections import Counter, defaultdict
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click

from schemas.emotions import EMOTIONS
from infra.clickhouse.client import ClickHouseClient, connect
from moviemotion.pipeline_run import Progress, fresh_run, publish_video, start_worker, stop_worker, wait_until_scored
from schemas.settings import Settings, load_settings
from producers.camera_producer import CameraConfig
from producers.yale.render import YALE_DIR
from producers.yale_screening import YaleScreening, generate_yale_screening

PRODUCER_FPS = 5.0
SETTLE_S = 2  # seconds after an onset (or after an expression ends) the smoother needs to follow the face
EXPRESSION_CLASSES = ("happiness", "sadness", "surprise")
NEUTRAL_KINDS = ("neutral", "distractor")


@dataclass(frozen=True)
class TruthSecond:
    """One scripted second of one seat (a row of the Yale ground truth CSV)."""

    seat_id: str
    second: int
    emotion: str
    kind: str  # calibration, neutral, expression, distractor
    segment: int
    camera_id: str
    subject: str
    variant: str


@dataclass(frozen=True)
class StoredSecond:
    """One visible viewer-second as stored in viewer_seconds."""

    seat_id: str
    second: int
    dominant: str
    reaction: str | None  # None: no reaction column
    baseline_ready: bool
    intensity: float
    probs: tuple[float, ...]  # EMOTIONS order
    intensities: tuple[float, ...]


@dataclass(frozen=True)
class SegmentScore:
    seat_id: str
    emotion: str
    start: int
    end: int
    predicted: str | None  # majority label of the scored seconds; None: no stored second

    @property
    def agrees(self) -> bool:
        return self.predicted == self.emotion


@dataclass(frozen=True)
class FalseReactions:
    """Neutral seconds after calibration: how many were scored and how many carried a reaction."""

    seconds: int
    reacting: int

    @property
    def rate(self) -> float:
        return self.reacting / self.seconds if self.seconds else 0.0


Truth = dict[tuple[str, int], TruthSecond]
Labels = dict[tuple[str, int], str]


def read_truth(ground_truth_csv: Path) -> Truth:
    """(seat_id, second) -> the scripted second, from the Yale generator's ground truth CSV."""
    truth = {}
    with open(ground_truth_csv, newline="") as f:
        for row in csv.DictReader(f):
            second = TruthSecond(row["seat_id"], int(row["second"]), row["emotion"], row["kind"], int(row["segment"]),
                                 row["camera_id"], row["subject"], row["variant"])
            truth[(second.seat_id, second.second)] = second
    return truth


def _segments(truth: Truth) -> dict[tuple[str, int], list[TruthSecond]]:
    """(seat_id, segment index) -> its seconds in order."""
    segments: dict[tuple[str, int], list[TruthSecond]] = defaultdict(list)
    for key in sorted(truth):
        second = truth[key]
        segments[(second.seat_id, second.segment)].append(second)
    return segments


def score_expressions(truth: Truth, labels: Labels, settle_s: int = SETTLE_S) -> list[SegmentScore]:
    """Each expression segment: the majority label over its seconds from `settle_s` after onset to its end."""
    results = []
    for (seat_id, _), seconds in sorted(_segments(truth).items()):
        if seconds[0].kind != "expression":
            continue
        start, end = seconds[0].second, seconds[-1].second + 1
        votes = Counter(labels[(seat_id, s)] for s in range(start + settle_s, end) if (seat_id, s) in labels)
        results.append(SegmentScore(seat_id, seconds[0].emotion, start, end, votes.most_common(1)[0][0] if votes else None))
    return results


def agreement(results: list[SegmentScore]) -> float:
    return sum(r.agrees for r in results) / len(results) if results else 0.0


def agreement_by_class(results: list[SegmentScore]) -> dict[str, tuple[int, int]]:
    """emotion -> (segments that agree, segments)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for result in results:
        counts[result.emotion][0] += result.agrees
        counts[result.emotion][1] += 1
    return {emotion: (agree, total) for emotion, (agree, total) in sorted(counts.items())}


def seconds_after_expression(truth: Truth) -> dict[tuple[str, int], int]:
    """(seat_id, second) -> whole seconds since the seat's last expression segment ended (absent: none before)."""
    since: dict[tuple[str, int], int] = {}
    last_end: dict[str, int] = {}
    for key in sorted(truth):
        second = truth[key]
        if second.kind == "expression":
            last_end[second.seat_id] = second.second + 1
        elif second.seat_id in last_end:
            since[key] = second.second - last_end[second.seat_id]
    return since


def false_reactions(truth: Truth, labels: Labels, select: Callable[[TruthSecond], bool],
                    settle_s: int = SETTLE_S) -> FalseReactions:
    """Among the selected neutral seconds after calibration that have a label, those whose label is not neutral.
    Seconds less than `settle_s` after an expression ended are left out (settle_s=0 keeps every second)."""
    since = seconds_after_expression(truth)
    scored = reacting = 0
    for key, second in truth.items():
        if second.kind not in NEUTRAL_KINDS or not select(second) or key not in labels:
            continue
        if since.get(key, settle_s) < settle_s:
            continue
        scored += 1
        reacting += labels[key] != "neutral"
    return FalseReactions(scored, reacting)


def has_reaction_column(client: ClickHouseClient) -> bool:
    return client.query("SELECT count() FROM system.columns WHERE database = currentDatabase() "
                        "AND table = 'viewer_seconds' AND name = 'reaction'")[0][0] > 0


def stored_seconds(client: ClickHouseClient, screening_id: str) -> tuple[dict[tuple[str, int], StoredSecond], bool]:
    """The screening's visible viewer-seconds, and whether viewer_seconds has the `reaction` column."""
    with_reaction = has_reaction_column(client)
    columns = ", ".join(["seat_id", "movie_second", "dominant", "reaction" if with_reaction else "''",
                         "baseline_ready", "intensity"] + [f"p_{e}" for e in EMOTIONS] + [f"i_{e}" for e in EMOTIONS])
    rows = client.query(f"SELECT {columns} FROM viewer_seconds WHERE screening_id = %(s)s AND visible = 1",
                        {"s": screening_id})
    n = len(EMOTIONS)
    stored = {
        (seat, int(second)): StoredSecond(seat, int(second), dominant, reaction if with_reaction else None,
                                          bool(ready), float(intensity), tuple(map(float, rest[:n])),
                                          tuple(map(float, rest[n:])))
        for seat, second, dominant, reaction, ready, intensity, *rest in rows
    }
    return stored, with_reaction


def run_through_pipeline(settings: Settings, screening: YaleScreening, screening_id: str, log_dir: Path,
                         timeout_s: float, on_progress: Callable[[Progress], None] = lambda p: None) -> int:
    """Publish every camera of the screening (real producer, PRODUCER_FPS) and wait until a worker has scored
    every face; returns the number of faces published. `settings` should be a fresh run (`fresh_run`)."""
    worker = start_worker(settings, log_dir / "worker.log")
    try:
        published = 0
        for video in screening.cameras:
            config = CameraConfig(screening_id, screening.theater_id, video.camera_id)
            published += publish_video(settings, video.video_path, video.seat_map_path, config, PRODUCER_FPS).published
        with connect(settings) as client:
            wait_until_scored(client, screening_id, published, timeout_s, on_progress, worker)
    finally:
        stop_worker(worker)
    return published


def write_seconds_csv(path: Path, truth: Truth, stored: dict[tuple[str, int], StoredSecond]) -> None:
    """One row per scripted second: the truth, then what was stored (empty where nothing was)."""
    since = seconds_after_expression(truth)
    segments = _segments(truth)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seat_id", "camera_id", "subject", "second", "kind", "variant", "segment", "since_onset_s",
                         "since_expression_end_s", "emotion", "stored", "baseline_ready", "dominant", "reaction",
                         "intensity"] + [f"p_{e}" for e in EMOTIONS] + [f"i_{e}" for e in EMOTIONS])
        for key in sorted(truth):
            t, s = truth[key], stored.get(key)
            onset = segments[(t.seat_id, t.segment)][0].second
            row = [t.seat_id, t.camera_id, t.subject, t.second, t.kind, t.variant, t.segment, t.second - onset,
                   since.get(key, ""), t.emotion, int(s is not None)]
            if s is None:
                row += [""] * (4 + 2 * len(EMOTIONS))
            else:
                row += [int(s.baseline_ready), s.dominant, s.reaction or "", f"{s.intensity:.4f}"]
                row += [f"{v:.4f}" for v in s.probs] + [f"{v:.4f}" for v in s.intensities]
            writer.writerow(row)


def report_lines(truth: Truth, labels_by_name: dict[str, Labels]) -> list[str]:
    """The figures, one block per label."""
    lines = []
    distractors = sorted({t.variant for t in truth.values() if t.kind == "distractor"})
    for name, labels in labels_by_name.items():
        results = score_expressions(truth, labels)
        classes = ", ".join(f"{e} {a}/{n}" for e, (a, n) in agreement_by_class(results).items())
        lines.append(f"{name}:")
        lines.append(f"  expression segments agree {sum(r.agrees for r in results)}/{len(results)} "
                     f"({agreement(results):.1%}): {classes}")
        for settle_s, title in ((SETTLE_S, f"settled (first {SETTLE_S} s after an expression left out)"), (0, "all")):
            parts = {
                "neutral+distractor": false_reactions(truth, labels, lambda t: True, settle_s),
                "neutral (normal face)": false_reactions(truth, labels, lambda t: t.kind == "neutral", settle_s),
                "distractor": false_reactions(truth, labels, lambda t: t.kind == "distractor", settle_s),
            }
            for variant in distractors:
                parts[variant] = false_reactions(truth, labels, lambda t, v=variant: t.variant == v and t.kind == "distractor",
                                                 settle_s)
            lines.append(f"  false reactions, {title}: " + ", ".join(
                f"{part} {f.reacting}/{f.seconds} ({f.rate:.1%})" for part, f in parts.items()))
    return lines


@click.command()
@click.argument("csv_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--use-stack", is_flag=True, help="Use the configured stack (`moviemotion up`) instead of a private one.")
@click.option("--screening-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Generate the Yale screening here (default: a temp dir).")
@click.option("--yale-dir", type=click.Path(file_okay=False, path_type=Path), default=YALE_DIR, show_default=True,
              help="The Yale faces (research use only; read in place).")
@click.option("--timeout", type=click.FloatRange(min=10), default=900, show_default=True,
              help="Seconds to wait for every face to be scored.")
def main(csv_path: Path, use_stack: bool, screening_dir: Path | None, yale_dir: Path, timeout: float) -> None:
    """Run the Yale screening (all 15 seats) through the pipeline; print dominant vs reaction figures and write
    the per-second rows to CSV_PATH."""
    from tqdm import tqdm

    from benchmarks.pipeline_throughput import private_stack

    with tempfile.TemporaryDirectory(prefix="yale-reactions-") as tmp:
        work = Path(tmp)
        try:
            screening = generate_yale_screening(screening_dir or work / "screening", yale_dir, progress=True)
        except (FileNotFoundError, ValueError, RuntimeError) as exc:
            raise click.ClickException(str(exc)) from None
        truth = read_truth(screening.ground_truth_path)  # before the temp dir goes
        with (nullcontext(load_settings()) if use_stack else private_stack(work)) as base:
            settings = fresh_run(base, "yale")
            screening_id = settings.processor_group
            with tqdm(desc="scored", unit="face") as bar:
                def show(progress: Progress) -> None:
                    bar.total = progress.frames_expected
                    bar.update(progress.frames_stored - bar.n)
                    bar.set_postfix_str(f"viewers complete {progress.viewers_complete}/{progress.viewers}")

                published = run_through_pipeline(settings, screening, screening_id, work / "logs", timeout, show)
            with connect(settings) as client:
                stored, with_reaction = stored_seconds(client, screening_id)
    write_seconds_csv(csv_path, truth, stored)
    labels = {"dominant": {key: s.dominant for key, s in stored.items()}}
    filled = with_reaction and any(s.reaction for s in stored.values())
    if filled:
        labels["reaction"] = {key: s.reaction for key, s in stored.items()}
    missing = sum(key not in stored for key in truth)
    click.echo(f"Yale screening {screening_id}: {len(screening.seats)} seats, {screening.duration_s:g} s, "
               f"{PRODUCER_FPS:g} fps; {published} faces scored; {len(stored)} visible viewer-seconds stored, "
               f"{missing} scripted seconds without one")
    if not filled:
        click.echo("reaction: not reported (" + ("viewer_seconds has no reaction column" if not with_reaction
                                                 else "the worker stored no reaction labels") + ")")
    for line in report_lines(truth, labels):
        click.echo(line)
    click.echo(f"per-second rows: {csv_path}")


if __name__ == "__main__":
    main()
