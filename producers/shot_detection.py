"""Hard-cut detection on sampled frames: colour-histogram differences with an adaptive, local threshold.

Each sampled frame gets a signature: the colour histogram of a thumbnail whose brightness is normalised
(scaled to a fixed mean luma), so lights dimming or a flash inside a shot barely move it. The distance
between consecutive signatures is their total-variation distance (0 = same colours, 1 = disjoint).
Sample i starts a new shot when its distance is at least `min_distance` AND at least `peak_ratio` times
every distance within `window` samples on either side: a cut is one isolated spike, while a dissolve
or a fade spreads its change over several sampling intervals (at 2 frames/s, any transition of a second
or more) and camera or subject motion raises its whole neighbourhood.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

THUMB_WIDTH = 160
_BINS = 8  # per colour channel
_TARGET_LUMA = 128.0
_MIN_LUMA = 8.0  # darker frames are not brightened further (noise)


@dataclass(frozen=True)
class CutParams:
    min_distance: float = 0.25
    peak_ratio: float = 2.0
    window: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.min_distance <= 1:
            raise ValueError(f"min_distance must be in (0, 1], got {self.min_distance}")
        if self.peak_ratio < 1:
            raise ValueError(f"peak_ratio must be >= 1, got {self.peak_ratio}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")


def thumbnail(image: np.ndarray, width: int = THUMB_WIDTH) -> np.ndarray:
    """A small BGR copy (area-averaged, so grain and noise wash out)."""
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def signature(thumb: np.ndarray) -> np.ndarray:
    """Brightness-normalised colour histogram of a BGR thumbnail (_BINS**3 values summing to 1)."""
    luma = float(cv2.cvtColor(thumb, cv2.COLOR_BGR2GRAY).mean())
    gain = _TARGET_LUMA / max(luma, _MIN_LUMA)
    levelled = cv2.convertScaleAbs(thumb, alpha=gain)
    hist = cv2.calcHist([levelled], [0, 1, 2], None, [_BINS] * 3, [0, 256] * 3).ravel()
    return hist / max(float(hist.sum()), 1.0)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance between two signatures, in [0, 1]."""
    return float(0.5 * np.abs(a - b).sum())


def is_cut(value: float, neighbours: Sequence[float], params: CutParams) -> bool:
    """Whether a sample whose distance to its predecessor is `value` starts a new shot, given the distances
    of the samples within `window` of it."""
    return value >= params.min_distance and all(value >= params.peak_ratio * other for other in neighbours)


def _neighbours(distances: Sequence[float], i: int, window: int) -> list[float]:
    return [distances[j] for j in range(max(1, i - window), min(len(distances), i + window + 1)) if j != i]


def detect_cuts(distances: Sequence[float], params: CutParams = CutParams()) -> list[int]:
    """Indices of the samples that start a new shot (distances[i]: sample i-1 to i; distances[0] is ignored)."""
    return [i for i in range(1, len(distances)) if is_cut(distances[i], _neighbours(distances, i, params.window), params)]


class StreamingCuts:
    """`detect_cuts` one sample at a time: the decision for sample i is final once sample i + window is in."""

    def __init__(self, params: CutParams = CutParams()) -> None:
        self.params = params
        self._recent: deque[float] = deque(maxlen=2 * params.window + 1)
        self._pushed = 0
        self._decided = 0

    def push(self, value: float) -> list[bool]:
        """Add the next sample's distance; return the decisions (does it start a shot?) now final, in sample order."""
        self._recent.append(value)
        self._pushed += 1
        return self._decide(self._pushed - self.params.window)

    def finish(self) -> list[bool]:
        """Decisions for the last samples (their neighbourhood ends with the film)."""
        return self._decide(self._pushed)

    def _decide(self, until: int) -> list[bool]:
        # the recent distances, indexed by sample number like the list detect_cuts reads
        local = _Offset(self._pushed - len(self._recent), self._recent)
        decisions = []
        while self._decided < until:
            i = self._decided
            decisions.append(i > 0 and is_cut(local[i], _neighbours(local, i, self.params.window), self.params))
            self._decided += 1
        return decisions


class _Offset(Sequence[float]):
    """A deque read at absolute sample indices (only the indices it still holds are ever read)."""

    def __init__(self, first: int, values: deque[float]) -> None:
        self._first, self._values = first, values

    def __len__(self) -> int:
        return self._first + len(self._values)

    def __getitem__(self, index):  # type: ignore[override]
        return self._values[index - self._first]
