"""What retraining only a shipped model's final linear layer buys (classifier re-training, Kang et al. 2020,
"Decoupling representation and classifier"): are the rare classes (disgust, fear, contempt) lost in the features,
or only in the head that reads them?

    python -m benchmarks.classifier_retrain --model engines/models/emotion-ferplus.onnx

Reads the float ONNX file's penultimate features (the input of its last `Gemm`) for the FER+ Training faces and
their mirror images, fits a new head on the FER+ vote distributions for each setting (`engines.training.head`:
soft cross-entropy, class weights prior^-power, L2 on the weights, started from the shipped head), and prints
PublicTest (majority rule, 8 classes: accuracy, macro-F1, per-class recall) and the Yale 105-face check for the
shipped head and each new one, with the post-hoc prior correction tau on top. PublicTest is the selection split;
PrivateTest is never read. `python -m engines.training.head` then writes the chosen head into a model file.
Needs ../shared/data (no torch).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engines.ferplus import load_splits, majority_labels, prior_bias, training_prior
from engines.metrics import classification_report
from engines.model_files import DEFAULT_MODEL
from engines.reference import DEFAULT_CACHE_DIR
from engines.training.head import FeatureModel, fit_head, training_features
from engines.yale_faces import load_yale
from schemas.emotions import EMOTIONS

SADNESS = EMOTIONS.index("sadness")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="a float ONNX file (not the INT8 one)")
    parser.add_argument("--power", type=float, nargs="+", default=[0.0, 0.25, 0.5], help="class weights prior^-power")
    parser.add_argument("--l2", type=float, nargs="+", default=[1e-4, 1e-3])
    parser.add_argument("--tau", type=float, nargs="+", default=[0.0, 0.1, 0.2], help="post-hoc prior correction")
    parser.add_argument("--shifted-copies", type=int, default=0,
                        help="domain-shifted copies of the training faces to fit on as well (needs torch)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    args = parser.parse_args()

    model = FeatureModel(args.model)
    splits = load_splits(args.cache_dir, size=model.metadata.input_size, progress=False)
    prior = training_prior(splits["Training"].votes)
    train_x, train_y = training_features(model, splits["Training"], args.shifted_copies)
    public_truth = majority_labels(splits["PublicTest"].votes)
    scored = public_truth >= 0
    public_x = model.features(splits["PublicTest"].pixels[scored])
    yale = load_yale(48, 64, progress=False)
    yale_x = model.features(yale.aligned)
    yale_truth = np.array([EMOTIONS.index(label) for label in yale.labels])
    print(f"{args.model.name}: {len(train_x)} training features (mirrors and {args.shifted_copies} shifted copies "
          f"included), {scored.sum()} PublicTest faces, "
          f"{len(yale_x)} Yale faces")

    def show(name: str, weight: np.ndarray, bias: np.ndarray) -> None:
        report = classification_report(public_truth[scored], (public_x @ weight.T + bias).argmax(1), EMOTIONS)
        yale_pred = (yale_x @ weight.T + bias).argmax(1)
        sad = int(((yale_pred == yale_truth) & (yale_truth == SADNESS)).sum())
        recalls = " ".join(f"{emotion[:4]} {recall:.2f}" for emotion, recall in zip(EMOTIONS, report.recall))
        print(f"{name:<38} PublicTest {report.accuracy * 100:.2f} %, macro-F1 {report.macro_f1:.3f}, recall {recalls}"
              f" | Yale {(yale_pred == yale_truth).mean() * 100:.1f} %, sadness {sad}/15")

    show("shipped head", model.weight, model.bias + model.extra_bias)
    for power in args.power:
        for l2 in args.l2:
            weight, bias = fit_head(train_x, train_y, (model.weight, model.bias), prior, power, l2)
            for tau in args.tau:
                show(f"new head: power {power:g}, l2 {l2:g}, tau {tau:g}", weight, bias + prior_bias(prior, tau))


if __name__ == "__main__":
    main()
