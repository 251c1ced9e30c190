"""The shared core of the accuracy and robustness reports: test faces, label protocols, models' probabilities.

`EvalFaces` holds one FER split's faces (aligned crops for the shipped model, raw FER2013 pixels for the
reference, FER+ votes, FER2013 labels); `protocols` labels them four ways (listed in `engines.evaluation`);
`run_models` / `predict` give each model's probabilities (`ScoredModel`) and `score` a model's report on a
protocol. Used by `engines.evaluation` (the CLI on top), `engines.robustness` and `engines.yale_faces`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas.emotions import EMOTIONS
from engines.ferplus import FER2013_LABELS, argmax_labels, load_splits, majority_labels, read_raw
from engines.metrics import ClassificationReport, classification_report
from engines.reference import ReferenceModel, build_reference_onnx, reference_input
from engines.select import load_engine

EVAL_SPLITS = ("PublicTest", "PrivateTest")


@dataclass(frozen=True)
class EvalFaces:
    """The faces of one split, in row order: aligned crops, raw FER2013 pixels, FER+ votes, FER2013 labels."""

    split: str
    aligned: np.ndarray
    raw: np.ndarray
    votes: np.ndarray
    fer2013_label: np.ndarray

    def __len__(self) -> int:
        return len(self.aligned)


@dataclass(frozen=True)
class Protocol:
    """A labelling of the faces: class names and one label index per face (-1 = not scored)."""

    name: str
    description: str
    classes: tuple[str, ...]
    labels: np.ndarray


@dataclass(frozen=True)
class ScoredModel:
    """One model's probabilities on the faces, with the class order they are in."""

    role: str  # "shipped" or "reference"
    model_version: str
    path: str
    framing: str
    classes: tuple[str, ...]
    probs: np.ndarray


def load_eval_faces(split: str, cache_dir: Path, input_size: int, limit: int | None = None, progress: bool = True) -> EvalFaces:
    """The split's faces (the first `limit` rows if given), aligned at `input_size` and raw."""
    if split not in EVAL_SPLITS:
        raise ValueError(f"split must be one of {', '.join(EVAL_SPLITS)}, got {split!r}")
    faces = load_splits(cache_dir, size=input_size, progress=progress)[split]
    raw, _votes, labels, usage = read_raw()
    raw, labels = raw[usage == split], labels[usage == split]
    if len(raw) != len(faces) or not np.array_equal(labels, faces.fer2013_label):
        raise ValueError(f"the aligned cache in {cache_dir} does not match the FER2013 rows of {split}; delete it")
    n = len(faces) if limit is None else min(limit, len(faces))
    return EvalFaces(split, faces.pixels[:n], raw[:n], faces.votes[:n], faces.fer2013_label[:n])


def protocols(faces: EvalFaces) -> list[Protocol]:
    """The four labellings of the faces (listed in `engines.evaluation`'s docstring)."""
    majority = majority_labels(faces.votes)
    seven = tuple(name for name in EMOTIONS if name != "contempt")
    # EMOTIONS index -> index in `seven`; contempt and the trailing entry (reached by label -1) map to -1.
    to_seven = np.array([seven.index(name) if name in seven else -1 for name in EMOTIONS] + [-1])
    return [
        Protocol("ferplus-majority", "FER+ majority rule, 8 classes", EMOTIONS, majority),
        Protocol("ferplus-argmax", "FER+ plain argmax rule, 8 classes", EMOTIONS, argmax_labels(faces.votes)),
        Protocol("ferplus-majority-7", "FER+ majority rule, contempt-labelled faces excluded, 7 classes", seven, to_seven[majority]),
        Protocol("fer2013", "FER2013 original labels, 7 classes", FER2013_LABELS, faces.fer2013_label),
    ]


def project(probs: np.ndarray, model_classes: tuple[str, ...], classes: tuple[str, ...]) -> np.ndarray | None:
    """The columns of `probs` for `classes`, by name; None if the model lacks one of them."""
    if not set(classes) <= set(model_classes):
        return None
    return probs[:, [model_classes.index(name) for name in classes]]


def score(model: ScoredModel, protocol: Protocol) -> ClassificationReport | None:
    """The model's report on the protocol's scored faces; None if it cannot predict all its classes."""
    probs = project(model.probs, model.classes, protocol.classes)
    if probs is None:
        return None
    keep = protocol.labels >= 0
    return classification_report(protocol.labels[keep], probs[keep].argmax(1), protocol.classes)


def predict(infer: Callable[[np.ndarray], np.ndarray], faces: np.ndarray, batch: int, desc: str, progress: bool) -> np.ndarray:
    """Run `infer` over `faces` in batches, with a progress bar."""
    from tqdm import tqdm

    chunks = []
    with tqdm(total=len(faces), desc=desc, unit="face", disable=not progress) as bar:
        for start in range(0, len(faces), batch):
            chunks.append(infer(faces[start : start + batch]))
            bar.update(len(chunks[-1]))
    return np.concatenate(chunks)


def run_models(faces: EvalFaces, model_path: Path, backend: str, reference_hdf5: Path | None, cache_dir: Path, batch: int, progress: bool) -> list[ScoredModel]:
    """Probabilities of the shipped model (aligned crops) and, unless None, the reference (raw framing)."""
    with load_engine(backend, model_path) as engine:
        models = [ScoredModel("shipped", engine.model_version, str(model_path), f"aligned crops (align_face) on {engine.backend}",
                              tuple(engine.metadata.classes), predict(engine.infer, faces.aligned, batch, "shipped model", progress))]
    if reference_hdf5 is not None:
        onnx_path = build_reference_onnx(reference_hdf5, cache_dir)
        ref = ReferenceModel(onnx_path)
        framed = reference_input(faces.raw, ref.input_size)
        models.append(ScoredModel("reference", ref.model_version, str(reference_hdf5), f"raw FER2013 48x48 resized to {ref.input_size}x{ref.input_size}",
                                  ref.classes, predict(ref.infer, framed, batch, "reference model", progress)))
    return models
