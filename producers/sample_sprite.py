"""The sample screening's sprite (producers/sample/faces.npz): a few FER+ PrivateTest faces per emotion.

Committed so the demo runs from a fresh clone; `rebuild_sprite` regenerates it from the shared
FER2013/FER+ data. A face qualifies when FER+'s majority label is the emotion with at least
`min_votes` of 10 annotator votes, and YuNet finds it in every seat of a rendered test frame.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from schemas.emotions import EMOTIONS
from producers.sample_render import SAMPLE_DIR, FrameRenderer, Script, upscale_face

SPRITE_PATH = SAMPLE_DIR / "faces.npz"
MIN_DETECTION_SCORE = 0.8


def load_sprite(path: Path = SPRITE_PATH) -> dict[str, list[np.ndarray]]:
    """Faces by emotion name, from the sprite file."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"sample sprite not found: {path} (rebuild it with --rebuild-sprite)")
    data = np.load(path)
    faces, labels = data["faces"], data["labels"]
    return {emotion: [faces[i] for i in np.flatnonzero(labels == k)] for k, emotion in enumerate(EMOTIONS)}


def _detected_in_every_seat(renderer: FrameRenderer, detector, face: np.ndarray, trials: int = 3) -> bool:
    script = renderer.script
    patch = upscale_face(script, face)
    for trial in range(trials):
        frame = renderer.compose([patch] * len(script.seats), np.random.default_rng([script.seed, 1, trial]))
        seats_hit = {
            int((d.bbox[0] + d.bbox[2] / 2) // script.tile)
            for d in detector.detect(frame)
            if d.score >= MIN_DETECTION_SCORE
        }
        if seats_hit != set(range(len(script.seats))):
            return False
    return True


def rebuild_sprite(script: Script, path: Path = SPRITE_PATH, per_emotion: int = 4, min_votes: int = 7,
                   progress: bool = True) -> Path:
    """Pick `per_emotion` faces per emotion from FER+ PrivateTest and write the sprite .npz.

    Emotions with too few qualifying faces at `min_votes` fall back one vote at a time (down to 5).
    """
    from tqdm import tqdm

    from engines.face_detector import FaceDetector
    from engines.ferplus import majority_labels, read_raw

    pixels, votes, _, usage = read_raw()
    rows = np.flatnonzero(usage == "PrivateTest")
    majority = majority_labels(votes[rows])
    renderer = FrameRenderer(script, {})
    detector = FaceDetector()
    chosen: list[int] = []
    labels: list[int] = []
    for k, emotion in enumerate(tqdm(EMOTIONS, desc="sprite", disable=not progress)):
        picked: list[int] = []
        for threshold in range(min_votes, 4, -1):
            candidates = rows[(majority == k) & (votes[rows, k] >= threshold)]
            candidates = candidates[np.argsort(-votes[candidates, k], kind="stable")]
            for row in candidates:
                if row not in picked and _detected_in_every_seat(renderer, detector, pixels[row]):
                    picked.append(int(row))
                if len(picked) == per_emotion:
                    break
            if len(picked) == per_emotion:
                break
        if not picked:
            raise RuntimeError(f"no detectable FER+ PrivateTest face for {emotion}")
        chosen += picked
        labels += [k] * len(picked)
    chosen_rows = np.array(chosen)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, faces=pixels[chosen_rows], labels=np.array(labels, dtype=np.int8), votes=votes[chosen_rows],
                        fer2013_rows=chosen_rows)
    return Path(path)
