"""Replay stored frame scores through the per-person state under several reaction settings, and print how each
setting's `reaction` (and the raw `dominant`) agrees with a screening's script.

    python -m benchmarks.reaction_replay --screening ID --ground-truth ground_truth.csv \\
        --threshold 0.06 0.08 0.10 0.12 --onset-seconds 1 2

`--screening`: read that screening's `frame_scores` from the configured store (MOVIEMOTION_* settings, as the CLI);
or `--frames`: the same rows as a CSV file with a header row. `--ground-truth`: the generator's CSV (seat_id, second,
emotion, visible, and `reaction`, the expected reaction). This is how the reaction
threshold is calibrated (docs/emotion-metrics.md) and how it is re-checked when a new model ships: the model's
probabilities are replayed, not re-scored, so a grid of settings takes seconds.
"""
from __future__ import annotations

import argparse
import csv
import itertools
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from schemas.emotions import EMOTIONS
from moviemotion.ground_truth import Segment, read_segments, score_segments
from stream_processors.config import StateConfig
from stream_processors.person_state import PersonState, ScoredFrame

LAG_S = 2  # seconds after a segment's onset left out (the held-out protocol: "2 s after onset to the end")


@dataclass(frozen=True)
class Figures:
    expression_segments: float  # share of non-neutral scripted segments whose majority label is the scripted one
    expression_count: int
    neutral_false_rate: float  # share of scripted no-reaction seconds (baseline ready) labelled as a reaction
    neutral_seconds: int


def read_frames(path: Path) -> dict[str, list[ScoredFrame]]:
    with open(path, newline="") as f:
        return frames_by_person(csv.DictReader(f))


def stored_frames(screening_id: str) -> dict[str, list[ScoredFrame]]:
    from infra.clickhouse.client import connect
    from schemas.settings import load_settings

    with connect(load_settings()) as client:
        columns = [name for name, *_ in client.query("DESCRIBE TABLE frame_scores")]
        rows = client.query("SELECT * FROM frame_scores WHERE screening_id = %(s)s", {"s": screening_id})
    return frames_by_person(dict(zip(columns, row)) for row in rows)


def frames_by_person(rows) -> dict[str, list[ScoredFrame]]:
    frames: dict[str, list[ScoredFrame]] = defaultdict(list)
    for row in rows:
        probs = np.array([float(row[f"p_{e}"]) for e in EMOTIONS])
        frames[row["person_key"]].append(ScoredFrame(
            person_key=row["person_key"], movie_ts=float(row["movie_ts"]), captured_us=int(row["captured_us"]),
            probs=probs / probs.sum(), yaw_deg=float(row["yaw"]), pitch_deg=float(row["pitch"]),
            screening_id=row["screening_id"], theater_id=row["theater_id"], camera_id=row["camera_id"],
            seat_id=row["seat_id"], model_version=row["model_version"]))
    for person in frames.values():
        person.sort(key=lambda frame: frame.movie_ts)
    return frames


def replay(frames: dict[str, list[ScoredFrame]], config: StateConfig) -> dict[tuple[str, int], tuple[str, str, bool]]:
    """(seat, second) -> (dominant, reaction, baseline_ready) of every visible second."""
    labels = {}
    for person_frames in frames.values():
        state = PersonState(config)
        summaries = [s for frame in person_frames for s in state.update(frame)] + state.flush()
        for s in summaries:
            if s.visible:
                labels[(s.seat_id, s.movie_second)] = (s.dominant, s.reaction, s.baseline_ready)
    return labels


def figures(segments: list[Segment], labels: dict[tuple[str, int], tuple[str, str, bool]], which: int) -> Figures:
    chosen = {key: value[which] for key, value in labels.items()}
    expression = [seg for seg in segments if seg.emotion != "neutral"]
    results = score_segments(expression, chosen, lag_s=LAG_S)
    right = sum(r.predicted == r.segment.emotion for r in results)
    neutral = [(seg.seat_id, s) for seg in segments if seg.emotion == "neutral" for s in range(seg.start, seg.end)]
    ready = [key for key in neutral if key in labels and labels[key][2]]
    false = sum(chosen[key] != "neutral" for key in ready)
    return Figures(right / max(len(results), 1), len(results), false / max(len(ready), 1), len(ready))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--screening", help="read this screening's frame_scores from the store")
    source.add_argument("--frames", type=Path, help="frame_scores rows as CSV with a header row")
    p.add_argument("--ground-truth", type=Path, required=True)
    p.add_argument("--threshold", type=float, nargs="+", default=[StateConfig.reaction_threshold])
    p.add_argument("--margin", type=float, nargs="+", default=[StateConfig.reaction_margin])
    p.add_argument("--onset-seconds", type=int, nargs="+", default=[StateConfig.reaction_onset_seconds])
    p.add_argument("--release", type=float, nargs="+", default=[StateConfig.reaction_release])
    args = p.parse_args(argv)

    frames = stored_frames(args.screening) if args.screening else read_frames(args.frames)
    segments = read_segments(args.ground_truth, label="reaction")
    base = StateConfig()
    print(f"{sum(map(len, frames.values()))} frames of {len(frames)} viewers; {len(segments)} scripted segments "
          f"(expected reaction), agreement from {LAG_S} s after onset")
    dominant = figures(segments, replay(frames, base), which=0)
    print(f"dominant: expression segments {dominant.expression_segments:.1%} of {dominant.expression_count}, "
          f"neutral seconds labelled non-neutral {dominant.neutral_false_rate:.1%} of {dominant.neutral_seconds}")
    print("threshold margin onset release | expression segments | false reactions on neutral seconds")
    for threshold, margin, onset, release in itertools.product(args.threshold, args.margin, args.onset_seconds, args.release):
        config = replace(base, reaction_threshold=threshold, reaction_margin=margin, reaction_onset_seconds=onset,
                         reaction_release=release)
        got = figures(segments, replay(frames, config), which=1)
        print(f"{threshold:9.3f} {margin:6.3f} {onset:5d} {release:7.2f} | {got.expression_segments:6.1%} of "
              f"{got.expression_count:<4d}      | {got.neutral_false_rate:6.1%} of {got.neutral_seconds}")


if __name__ == "__main__":
    main()
