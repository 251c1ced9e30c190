"""The Yale faces through the product path, scored per model (the robustness report's Yale part).

The product team's 4-class check (../shared/data/yalefaces/SOURCE.md): 15 people x {normal, centerlight,
leftlight, rightlight -> neutral; happy -> happiness; sad -> sadness; surprised -> surprise} = 105 faces; with
`extra`, glasses/noglasses as neutral too (135). Each full 320x243 image goes through YuNet (the camera
producer's detector settings, best-scoring face) + `align_face` for the shipped model; the reference gets the
YuNet box enlarged 1.25x to a square, resized to 64x64 (its authors' demo crops a detector box with a margin).
A prediction is the model's argmax over all its classes, as the product reads it. Known quirk: subject04.sad is
a copy of subject04.normal (kept, as the product team counts it). The images are research-use only: read from
../shared, never copied into the repository.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.eval_core import ScoredModel, predict
from engines.ferplus import SHARED_DATA
from engines.metrics import ClassificationReport, classification_report

YALE_DIR = SHARED_DATA / "yalefaces"
YALE_SUBJECTS = tuple(f"subject{i:02d}" for i in range(1, 16))
# The product team's 105-face check, variant -> FER+ class.
YALE_VARIANTS = {"normal": "neutral", "centerlight": "neutral", "leftlight": "neutral", "rightlight": "neutral",
                 "happy": "happiness", "sad": "sadness", "surprised": "surprise"}
YALE_EXTRA_NEUTRAL = {"glasses": "neutral", "noglasses": "neutral"}
YALE_CLASSES = ("neutral", "happiness", "sadness", "surprise")
REFERENCE_BOX_SCALE = 1.25


class YaleMissing(FileNotFoundError):
    """The Yale faces are not in ../shared (research-use images, never in the repository)."""


@dataclass(frozen=True)
class YaleFaces:
    """Yale images through the product path: names, true class names, aligned crops, reference crops."""

    names: tuple[str, ...]
    labels: tuple[str, ...]
    aligned: np.ndarray
    framed: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


def yale_images(yale_dir: Path = YALE_DIR, extra: bool = False) -> list[tuple[str, str, Path]]:
    """(name, class, path) of the product team's 105 Yale faces, plus glasses/noglasses if `extra`."""
    variants = {**YALE_VARIANTS, **(YALE_EXTRA_NEUTRAL if extra else {})}
    items = [(f"{s}.{v}", label, Path(yale_dir) / f"{s}.{v}.jpeg") for s in YALE_SUBJECTS for v, label in variants.items()]
    missing = [str(p) for _, _, p in items if not p.is_file()]
    if missing:
        raise YaleMissing(f"{len(missing)} Yale images missing (e.g. {missing[0]}); expected them in {yale_dir}")
    return items


def reference_crop(image: np.ndarray, bbox: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Gray square crop around a detector box, `REFERENCE_BOX_SCALE` x its longer side, resized bilinearly to
    `size` (as the reference authors' demo resizes its detector crops)."""
    import cv2

    from engines.preprocessing import to_gray

    gray = to_gray(image)
    x, y, w, h = bbox
    side = REFERENCE_BOX_SCALE * max(w, h)
    scale = size / side
    # Map the square (cx - side/2, cy - side/2, side, side) onto (0, 0, size, size); borders replicated.
    matrix = np.array([[scale, 0, -scale * (x + w / 2 - side / 2)], [0, scale, -scale * (y + h / 2 - side / 2)]])
    return cv2.warpAffine(gray, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def load_yale(size: int, reference_size: int, yale_dir: Path = YALE_DIR, extra: bool = False, progress: bool = True) -> YaleFaces:
    """The Yale faces through YuNet (best face) + `align_face`, and the reference's crops of the same box."""
    import cv2
    from tqdm import tqdm

    from engines.face_detector import FaceDetector
    from engines.preprocessing import align_face

    detector = FaceDetector()  # the camera producer's settings
    names, labels, aligned, framed = [], [], [], []
    for name, label, path in tqdm(yale_images(yale_dir, extra), desc="Yale faces", disable=not progress):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise YaleMissing(f"cannot read {path}")
        best = detector.detect_best(image)
        if best is None:
            raise ValueError(f"YuNet finds no face in {path}")
        names.append(name)
        labels.append(label)
        aligned.append(align_face(image, best.landmarks, size))
        framed.append(reference_crop(image, best.bbox, reference_size))
    return YaleFaces(tuple(names), tuple(labels), np.stack(aligned), np.stack(framed))


@dataclass(frozen=True)
class YaleResult:
    """One Yale set scored: per model, its report and its predicted class name per face."""

    faces: YaleFaces
    reports: dict[str, ClassificationReport]
    predicted: dict[str, tuple[str, ...]]


def score_yale(yale: YaleFaces, models: list[ScoredModel]) -> YaleResult:
    """Per model: its argmax over all its classes against the Yale class (square confusion over its classes)."""
    reports, predicted = {}, {}
    for model in models:
        truth = np.array([model.classes.index(label) for label in yale.labels])
        pred = model.probs.argmax(1)
        reports[model.role] = classification_report(truth, pred, model.classes)
        predicted[model.role] = tuple(model.classes[i] for i in pred)
    return YaleResult(yale, reports, predicted)


def yale_models(yale: YaleFaces, model_path: Path, backend: str, reference_onnx: Path | None, batch: int, progress: bool) -> list[ScoredModel]:
    """Both models' probabilities on the Yale crops (shipped: aligned; reference: its box crop)."""
    from engines.reference import ReferenceModel
    from engines.select import load_engine

    with load_engine(backend, model_path) as engine:
        models = [ScoredModel("shipped", engine.model_version, str(model_path), f"YuNet + align_face on {engine.backend}",
                              tuple(engine.metadata.classes), predict(engine.infer, yale.aligned, batch, "shipped on Yale", progress))]
    if reference_onnx is not None:
        ref = ReferenceModel(reference_onnx)
        models.append(ScoredModel("reference", ref.model_version, str(reference_onnx), "YuNet box x1.25, square, 64x64",
                                  ref.classes, predict(ref.infer, yale.framed, batch, "reference on Yale", progress)))
    return models


def recall_of(report: ClassificationReport, classes: tuple[str, ...]) -> dict[str, float | None]:
    """Recall per named class (None where the model has no such class or it has no support)."""
    out = {}
    for name in classes:
        if name not in report.classes or report.support[report.classes.index(name)] == 0:
            out[name] = None
        else:
            out[name] = float(report.recall[report.classes.index(name)])
    return out
