"""How well the stored per-second events follow the sample screening's scripted ground truth.

A scripted segment is a run of seconds in which one seat shows one emotion. The pipeline gets
a segment right when the most common dominant (smoothed) emotion over the segment's seconds,
the first `lag_s` seconds left out for the smoother to catch up, is the scripted one.
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Segment:
    seat_id: str
    emotion: str
    start: int  # first movie second
    end: int  # last movie second + 1


@dataclass(frozen=True)
class SegmentResult:
    segment: Segment
    predicted: str | None  # None: no visible event in the segment


def read_segments(ground_truth_csv: Path, label: str = "emotion") -> list[Segment]:
    """Runs of (seat, label) over consecutive visible seconds, from the generator's CSV. `label`: the column to read:
    `emotion` (what the face shows: scores `dominant`) or `reaction` (what the viewer shows above their own resting
    face: scores `reaction`)."""
    by_seat: dict[str, list[tuple[int, str]]] = {}
    with open(ground_truth_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["visible"] == "1":
                by_seat.setdefault(row["seat_id"], []).append((int(row["second"]), row[label]))
    segments = []
    for seat, seconds in by_seat.items():
        seconds.sort()
        start, emotion, previous = seconds[0][0], seconds[0][1], seconds[0][0]
        for second, label in seconds[1:] + [(None, None)]:
            if second != previous + 1 or label != emotion:
                segments.append(Segment(seat, emotion, start, previous + 1))
                if second is None:
                    break
                start, emotion = second, label
            previous = second
    return segments


def visible_seconds(ground_truth_csv: Path) -> dict[str, set[int]]:
    """Seat -> the movie seconds in which the script shows that seat's face."""
    seen: dict[str, set[int]] = {}
    with open(ground_truth_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["visible"] == "1":
                seen.setdefault(row["seat_id"], set()).add(int(row["second"]))
    return seen


def score_segments(segments: list[Segment], dominant: dict[tuple[str, int], str], lag_s: int = 1) -> list[SegmentResult]:
    """`dominant` maps (seat_id, movie_second) -> the stored dominant emotion of visible seconds."""
    results = []
    for seg in segments:
        first = seg.start + min(lag_s, seg.end - seg.start - 1)
        votes = Counter(dominant[(seg.seat_id, s)] for s in range(first, seg.end) if (seg.seat_id, s) in dominant)
        results.append(SegmentResult(seg, votes.most_common(1)[0][0] if votes else None))
    return results


def agreement(results: list[SegmentResult]) -> float:
    return sum(r.predicted == r.segment.emotion for r in results) / len(results) if results else 0.0
