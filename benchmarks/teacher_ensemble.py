"""How good are the teachers a student would be distilled from, each alone and as the ensemble it learns from?

    python -m benchmarks.teacher_ensemble runs/gpu1/teacher-w96a.pt runs/gpu1/teacher-w96b.pt runs/gpu1/teacher-w64.pt

Each teacher (a training checkpoint, e.g. a `best.pt` the GPU kit returns, or an ONNX model file taking training's
48 px pm1 input) and the ensemble of all of them (mean log-probabilities: what `engines.training.train --teacher`
distils towards, `engines.training.teachers`) are scored on FER+ PublicTest (majority rule, 8 classes: accuracy,
macro-F1, disgust / fear / contempt recall) and on the Yale 105-face check through the product path (accuracy,
sadness recall). PublicTest is the selection split; PrivateTest is never read. Needs torch and ../shared/data.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from engines.ferplus import load_splits, majority_labels
from engines.metrics import ClassificationReport, classification_report
from engines.reference import DEFAULT_CACHE_DIR
from engines.training.teachers import TeacherEnsemble, load_teachers
from engines.training.train import to_input
from engines.yale_faces import load_yale
from schemas.emotions import EMOTIONS

RARE = ("disgust", "fear", "contempt")


def predictions(teacher: TeacherEnsemble, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    return torch.cat([teacher(x[i : i + batch]) for i in range(0, len(x), batch)]).argmax(1).numpy()


def line(name: str, public: ClassificationReport, yale: ClassificationReport) -> str:
    rare = " / ".join(f"{public.recall[EMOTIONS.index(c)]:.2f}" for c in RARE)
    sad = yale.confusion[EMOTIONS.index("sadness")]
    return (f"{name:<32} {public.accuracy:8.2%} {public.macro_f1:9.3f}   {rare:<18} {yale.accuracy:7.1%} "
            f"{sad[EMOTIONS.index('sadness')]:>4d}/{sad.sum()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("teachers", type=Path, nargs="+", help="training checkpoints (best.pt) and/or .onnx files")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    public = load_splits(args.cache_dir, progress=False)["PublicTest"]
    truth = majority_labels(public.votes)
    scored = truth >= 0
    public_x, public_truth = to_input(public.pixels[scored]), truth[scored]
    yale = load_yale(48, 64, progress=False)
    yale_x, yale_truth = to_input(yale.aligned), np.array([EMOTIONS.index(label) for label in yale.labels])

    ensemble = load_teachers(args.teachers, args.threads)
    print(f"{scored.sum()} PublicTest faces, {len(yale_truth)} Yale faces")
    print(f"{'teacher':<32} {'PublicTest':>8} {'macro-F1':>9}   {'disgust/fear/contempt':<18} {'Yale':>7} {'sad':>7}")
    named = [(path.parent.name if path.name == "best.pt" else path.stem, TeacherEnsemble([teacher]))
             for path, teacher in zip(args.teachers, ensemble.teachers)]
    for name, teacher in named + ([("ensemble", ensemble)] if len(named) > 1 else []):
        print(line(name, classification_report(public_truth, predictions(teacher, public_x), EMOTIONS),
                   classification_report(yale_truth, predictions(teacher, yale_x), EMOTIONS)), flush=True)


if __name__ == "__main__":
    main()
