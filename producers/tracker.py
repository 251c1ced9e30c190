"""Stable track ids for faces across frames: greedy IoU matching with a centroid-distance fallback.

A detection keeps the id of the live track it overlaps most (IoU >= `min_iou`), or failing that
the nearest track whose centre is within `max_centre_shift` box widths; otherwise it starts a
new track. Tracks unseen for more than `max_missed` frames are forgotten. Ids start at 1 and
only grow, so replaying the same video gives the same ids.
"""
from __future__ import annotations

from dataclasses import dataclass

Box = tuple[float, float, float, float]  # x, y, w, h


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def centre(box: Box) -> tuple[float, float]:
    return box[0] + box[2] / 2.0, box[1] + box[3] / 2.0


def centre_shift(a: Box, b: Box) -> float:
    """Distance between box centres, in units of the mean box width."""
    (ax, ay), (bx, by) = centre(a), centre(b)
    width = max((a[2] + b[2]) / 2.0, 1e-9)
    return ((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5 / width


@dataclass
class _Track:
    track_id: int
    box: Box
    missed: int = 0


class IouTracker:
    """Assigns a track id to each detection box of each frame (call `update` once per frame)."""

    def __init__(self, min_iou: float = 0.3, max_centre_shift: float = 0.5, max_missed: int = 10) -> None:
        if not (0.0 < min_iou <= 1.0) or max_centre_shift < 0 or max_missed < 0:
            raise ValueError("need 0 < min_iou <= 1, max_centre_shift >= 0 and max_missed >= 0")
        self.min_iou = min_iou
        self.max_centre_shift = max_centre_shift
        self.max_missed = max_missed
        self._tracks: list[_Track] = []
        self._next_id = 1

    def update(self, boxes: list[Box]) -> list[int]:
        """Track ids for `boxes`, in the same order."""
        pairs = sorted(
            ((iou(box, track.box), -centre_shift(box, track.box), b, t)
             for b, box in enumerate(boxes) for t, track in enumerate(self._tracks)),
            reverse=True,
        )
        ids: list[int | None] = [None] * len(boxes)
        used: set[int] = set()
        for overlap, neg_shift, b, t in pairs:
            if ids[b] is not None or t in used:
                continue
            if overlap >= self.min_iou or -neg_shift <= self.max_centre_shift:
                ids[b] = self._tracks[t].track_id
                used.add(t)
                self._tracks[t].box = boxes[b]
                self._tracks[t].missed = 0
        for t, track in enumerate(self._tracks):
            if t not in used:
                track.missed += 1
        self._tracks = [track for track in self._tracks if track.missed <= self.max_missed]
        for b, box in enumerate(boxes):
            if ids[b] is None:
                ids[b] = self._next_id
                self._tracks.append(_Track(self._next_id, box))
                self._next_id += 1
        return [int(i) for i in ids]
