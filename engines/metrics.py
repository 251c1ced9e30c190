"""Classification metrics as pure functions: confusion matrix, accuracy, per-class precision/recall/F1,
macro-F1, text tables, and a confusion-matrix PNG.

Conventions (as scikit-learn's defaults): confusion rows are true classes, columns predictions;
a class never predicted has precision 0, a class never present has recall 0; macro-F1 averages
F1 over the classes that occur in the labels or the predictions (a class absent from both says
nothing about the model and is left out).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 (C, C) counts: [true class, predicted class]."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"labels and predictions must be matching 1-D arrays, got {y_true.shape} and {y_pred.shape}")
    for name, arr in (("labels", y_true), ("predictions", y_pred)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes}), got range [{arr.min()}, {arr.max()}]")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes).astype(np.int64)


def accuracy(cm: np.ndarray) -> float:
    """Share of correct predictions (the diagonal); 0.0 for an empty matrix."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else 0.0


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise (den broadcasts), 0 where den is 0."""
    num, den = num.astype(np.float64), den.astype(np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast_shapes(num.shape, den.shape)), where=den > 0)


def precision_recall_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 (float64 (C,) each); 0 where undefined."""
    tp = np.diag(cm)
    precision = _safe_div(tp, cm.sum(0))
    recall = _safe_div(tp, cm.sum(1))
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return precision, recall, f1


def macro_f1(cm: np.ndarray) -> float:
    """Mean F1 over the classes that occur as a label or a prediction; 0.0 if none do."""
    occurs = (cm.sum(0) + cm.sum(1)) > 0
    return float(precision_recall_f1(cm)[2][occurs].mean()) if occurs.any() else 0.0


@dataclass(frozen=True)
class ClassificationReport:
    """Everything one evaluation says: counts and the metrics derived from them."""

    classes: tuple[str, ...]
    confusion: np.ndarray  # int64 (C, C), [true, predicted]
    accuracy: float
    macro_f1: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    @property
    def support(self) -> np.ndarray:
        return self.confusion.sum(1)

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "classes": list(self.classes),
            "per_class": {
                name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                for name, p, r, f, s in zip(self.classes, self.precision, self.recall, self.f1, self.support)
            },
            "confusion": self.confusion.tolist(),
        }


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> ClassificationReport:
    """All metrics for integer labels/predictions indexing `classes`."""
    cm = confusion_matrix(y_true, y_pred, len(classes))
    precision, recall, f1 = precision_recall_f1(cm)
    return ClassificationReport(tuple(classes), cm, accuracy(cm), macro_f1(cm), precision, recall, f1)


def render_confusion(cm: np.ndarray, classes: tuple[str, ...]) -> str:
    """Fixed-width text table; rows are true classes, columns predictions (abbreviated names)."""
    short = [name[:8] for name in classes]
    width = max(8, len(str(cm.max())) if cm.size else 1)
    head = " " * 10 + " ".join(f"{s:>{width}}" for s in short)
    rows = [f"{name[:10]:<10}" + " ".join(f"{v:>{width}d}" for v in row) for name, row in zip(classes, cm)]
    return "\n".join(["true \\ predicted", head, *rows])


def render_per_class(report: ClassificationReport) -> str:
    """Text table of precision/recall/F1/support per class, then accuracy and macro-F1."""
    lines = [f"{'class':<10} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"]
    for name, p, r, f, s in zip(report.classes, report.precision, report.recall, report.f1, report.support):
        lines.append(f"{name[:10]:<10} {p:>9.3f} {r:>7.3f} {f:>6.3f} {s:>8d}")
    lines.append(f"accuracy {report.accuracy:.4f}  macro-F1 {report.macro_f1:.4f}  (n={report.count})")
    return "\n".join(lines)


def save_confusion_png(cm: np.ndarray, classes: tuple[str, ...], path: Path, title: str,
                       true_classes: tuple[str, ...] | None = None) -> Path:
    """Row-normalised confusion heat map with counts, written as PNG (matplotlib, Agg backend).
    `true_classes`: only these rows (by name), for a test set that holds a few of the model's classes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = list(classes) if true_classes is None else list(true_classes)
    missing = set(rows) - set(classes)
    if missing:
        raise ValueError(f"true_classes {sorted(missing)} are not among {list(classes)}")
    cm = cm[[classes.index(name) for name in rows]]
    rates = _safe_div(cm, cm.sum(1, keepdims=True))
    fig = Figure(figsize=(1.0 + 0.8 * len(classes), 0.8 + 0.7 * len(rows)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(np.arange(len(classes)), labels=classes, rotation=45, ha="right")
    ax.set_yticks(np.arange(len(rows)), labels=rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]}", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
