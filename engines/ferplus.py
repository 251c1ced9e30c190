"""FER2013 pixels joined with FER+ votes: splits, soft targets and the FER+ "majority" label rule.

Used by training and evaluation alike; faces go through the one preprocessing path
(`engines.preprocessing.align_face`, landmarks from YuNet) and the aligned set is cached.
"""
from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas.emotions import EMOTIONS, NUM_EMOTIONS

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FER2013_CSV = SHARED_DATA / "fer2013" / "fer2013.csv.gz"
FERPLUS_CSV = SHARED_DATA / "ferplus" / "fer2013new.csv"
# FER2013's original 7 labels, by index, named as in EMOTIONS.
FER2013_LABELS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
SPLITS = ("Training", "PublicTest", "PrivateTest")


@dataclass(frozen=True)
class FaceSet:
    """Faces of one split: aligned pixels (N, S, S) uint8, FER+ votes (N, 10), FER2013 label (N,)."""

    pixels: np.ndarray
    votes: np.ndarray  # columns: the 8 EMOTIONS, then unknown, NF
    fer2013_label: np.ndarray  # index into FER2013_LABELS

    def __len__(self) -> int:
        return len(self.pixels)

    def subset(self, mask: np.ndarray) -> "FaceSet":
        return FaceSet(self.pixels[mask], self.votes[mask], self.fer2013_label[mask])


def soft_targets(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vote distributions over the 8 emotions, and the mask of usable rows.

    A row is usable when its top vote is one of the 8 emotions (not `unknown` or `NF`).
    """
    votes = votes.astype(np.float32)
    usable = (votes.sum(1) > 0) & (votes.argmax(1) < NUM_EMOTIONS)
    emo = votes[:, :NUM_EMOTIONS]
    total = emo.sum(1, keepdims=True)
    targets = np.divide(emo, total, out=np.zeros_like(emo), where=total > 0)
    return targets, usable & (total[:, 0] > 0)


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """FER+ "majority" rule: drop single votes as noise; keep a face only if its top emotion
    holds more than half of the remaining votes and is not unknown/NF. Returns -1 for dropped."""
    v = votes.astype(np.int64).copy()
    v[v == 1] = 0
    top = v.argmax(1)
    remaining = v.sum(1)
    keep = (remaining > 0) & (v[np.arange(len(v)), top] * 2 > remaining) & (top < NUM_EMOTIONS)
    return np.where(keep, top, -1)


def argmax_labels(votes: np.ndarray) -> np.ndarray:
    """The plain rule: the top emotion vote (ties to the first), -1 if unknown/NF wins."""
    top = votes.argmax(1)
    return np.where((votes.sum(1) > 0) & (top < NUM_EMOTIONS), top, -1)


def fer2013_label_to_emotion_index() -> np.ndarray:
    """Map FER2013's 7 label indices to EMOTIONS indices."""
    return np.array([EMOTIONS.index(name) for name in FER2013_LABELS])


def read_raw(fer_csv: Path = FER2013_CSV, ferplus_csv: Path = FERPLUS_CSV):
    """All rows: raw 48x48 pixels, votes, FER2013 labels, usage strings (same row order)."""
    if not fer_csv.is_file() or not ferplus_csv.is_file():
        raise FileNotFoundError(f"FER2013/FER+ data not found under {fer_csv.parent.parent}")
    pixels, labels, usage = [], [], []
    with gzip.open(fer_csv, "rt") as f:
        reader = csv.reader(f)
        next(reader)
        for emotion, pix, use in reader:
            pixels.append(np.array(pix.split(), dtype=np.uint8).reshape(48, 48))
            labels.append(int(emotion))
            usage.append(use)
    votes = []
    with open(ferplus_csv, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            votes.append([int(x) for x in row[2:12]])
    if len(votes) != len(pixels):
        raise ValueError(f"FER+ has {len(votes)} rows, FER2013 has {len(pixels)}")
    return np.stack(pixels), np.array(votes, dtype=np.int16), np.array(labels), np.array(usage)


def align_all(pixels: np.ndarray, size: int, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Run every FER face through YuNet + align_face; faces YuNet misses are only resized.

    Returns the aligned faces and a mask of which ones had landmarks.
    """
    import cv2
    from tqdm import tqdm

    from engines.face_detector import FaceDetector
    from engines.preprocessing import align_face, resize_crop

    upscale, pad = 4, 48
    detector = FaceDetector(score_threshold=0.5)
    out = np.empty((len(pixels), size, size), dtype=np.uint8)
    found = np.zeros(len(pixels), dtype=bool)
    for i, face in enumerate(tqdm(pixels, desc="align FER faces", disable=not progress)):
        big = cv2.resize(face, (48 * upscale, 48 * upscale), interpolation=cv2.INTER_CUBIC)
        big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        best = detector.detect_best(big)
        if best is not None:
            out[i] = align_face(big, best.landmarks, size)
            found[i] = True
        else:
            out[i] = resize_crop(face, size)
    return out, found


def load_splits(cache_dir: Path, size: int = 48, progress: bool = True) -> dict[str, FaceSet]:
    """Aligned faces per split, cached as one .npz per input size."""
    cache = Path(cache_dir) / f"ferplus_aligned_{size}.npz"
    if cache.is_file():
        data = np.load(cache)
        aligned, votes, labels, usage = data["aligned"], data["votes"], data["labels"], data["usage"]
    else:
        raw, votes, labels, usage = read_raw()
        aligned, found = align_all(raw, size, progress)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, aligned=aligned, votes=votes, labels=labels, usage=usage, found=found)
    return {
        split: FaceSet(aligned[usage == split], votes[usage == split], labels[usage == split])
        for split in SPLITS
    }


def training_prior(training_votes: np.ndarray) -> np.ndarray:
    """Share of each class among the FER+ Training faces (majority rule), from their votes (the Training
    `FaceSet`'s `votes`: the caller has the split loaded already)."""
    labels = majority_labels(training_votes)
    labels = labels[labels >= 0]
    return np.bincount(labels, minlength=len(EMOTIONS)) / len(labels)


def prior_bias(prior: np.ndarray, tau: float) -> np.ndarray:
    """-tau * log(prior): added to the logits, the same as multiplying probabilities by prior^-tau (Menon et al.
    2021, post-hoc logit adjustment)."""
    if tau < 0:
        raise ValueError(f"prior correction tau must be >= 0, got {tau}")
    return -tau * np.log(np.asarray(prior, dtype=np.float64) + 1e-6)
