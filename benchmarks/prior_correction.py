"""What a post-hoc prior correction (logit adjustment, Menon et al. 2021) buys a shipped model, without training:
the model's probabilities are reweighted by the FER+ training prior to the power -tau and renormalized, which
lowers the pull of the frequent classes (neutral, happiness) towards the rare ones (disgust, fear, contempt).

    python -m benchmarks.prior_correction --model engines/models/emotion-ferplus-int8.onnx --tau 0 0.1 0.2 0.3 0.5

Prints, per tau, FER+ PublicTest (majority rule, 8 classes: accuracy, macro-F1, per-class recall) and the Yale
faces (the 105-face check and sadness; neutral kept = share of the 135 neutral Yale faces, glasses included, still
read as neutral). PublicTest is the validation split: PrivateTest is left for the one measurement of a shipped
file. Needs ../shared/data (FER2013, FER+ votes, yalefaces).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engines.eval_core import load_eval_faces, predict
from engines.ferplus import load_splits, majority_labels, prior_bias, training_prior
from engines.metrics import classification_report
from engines.model_files import INT8_MODEL
from engines.reference import DEFAULT_CACHE_DIR
from engines.select import load_engine
from engines.yale_faces import load_yale
from schemas.emotions import EMOTIONS

SADNESS, NEUTRAL = EMOTIONS.index("sadness"), EMOTIONS.index("neutral")


def corrected(probs: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """probs * prior^-tau, renormalized: the same as subtracting tau * log(prior) from the logits."""
    weighted = probs * np.exp(prior_bias(prior, tau))
    return weighted / weighted.sum(axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=INT8_MODEL)
    parser.add_argument("--tau", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.5])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    args = parser.parse_args()
    prior = training_prior(load_splits(args.cache_dir, progress=False)["Training"].votes)
    print("FER+ training prior: " + ", ".join(f"{name} {share:.4f}" for name, share in zip(EMOTIONS, prior)))
    faces = load_eval_faces("PublicTest", args.cache_dir, 48, progress=False)
    truth = majority_labels(faces.votes)
    scored = truth >= 0
    yale = load_yale(48, 64, extra=True, progress=False)
    yale_truth = np.array([EMOTIONS.index(label) for label in yale.labels])
    core = np.array([not name.endswith(("glasses", "noglasses")) for name in yale.names])
    with load_engine("onnxruntime", args.model) as engine:
        public = predict(engine.infer, faces.aligned, 64, "PublicTest", False)
        on_yale = predict(engine.infer, yale.aligned, 64, "Yale", False)
        print(f"{engine.model_version} ({args.model.name}), {scored.sum()} PublicTest faces, {core.sum()} + "
              f"{(~core).sum()} Yale faces")
    for tau in args.tau:
        report = classification_report(truth[scored], corrected(public, prior, tau)[scored].argmax(1), EMOTIONS)
        yale_pred = corrected(on_yale, prior, tau).argmax(1)
        right = yale_pred == yale_truth
        sad = int((right & (yale_truth == SADNESS))[core].sum())
        neutral_kept = right[yale_truth == NEUTRAL].mean()
        recalls = " ".join(f"{name[:4]} {recall:.2f}" for name, recall in zip(EMOTIONS, report.recall))
        print(f"tau {tau:.2f}: PublicTest {report.accuracy * 100:.2f} %, macro-F1 {report.macro_f1:.3f}, recall {recalls}"
              f" | Yale {right[core].mean() * 100:.1f} %, sadness {sad}/{(yale_truth[core] == SADNESS).sum()},"
              f" neutral kept {neutral_kept * 100:.0f} %")


if __name__ == "__main__":
    main()
