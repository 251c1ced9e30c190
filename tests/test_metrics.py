"""Metrics on inputs small enough to check by hand, plus invariants on random labels."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.image import imread

from engines.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    macro_f1,
    precision_recall_f1,
    render_confusion,
    render_per_class,
    save_confusion_png,
)

# 5 faces, 3 classes: class 0 half right, class 1 all right, class 2 never predicted.
Y_TRUE = np.array([0, 0, 1, 1, 2])
Y_PRED = np.array([0, 1, 1, 1, 0])


def test_confusion_matrix_rows_are_true_columns_predicted():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert cm.dtype == np.int64


def test_accuracy_precision_recall_f1_by_hand():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert accuracy(cm) == pytest.approx(3 / 5)
    precision, recall, f1 = precision_recall_f1(cm)
    assert precision == pytest.approx([1 / 2, 2 / 3, 0.0])  # class 2: never predicted -> 0
    assert recall == pytest.approx([1 / 2, 1.0, 0.0])
    assert f1 == pytest.approx([1 / 2, 0.8, 0.0])  # 2 * (2/3 * 1) / (2/3 + 1) = 0.8
    assert macro_f1(cm) == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_macro_f1_ignores_classes_absent_from_labels_and_predictions():
    three = confusion_matrix(Y_TRUE, Y_PRED, 3)
    five = confusion_matrix(Y_TRUE, Y_PRED, 5)
    assert five.shape == (5, 5)
    assert macro_f1(five) == pytest.approx(macro_f1(three))
    assert accuracy(five) == pytest.approx(accuracy(three))


def test_perfect_and_empty_predictions():
    labels = np.array([2, 0, 1, 1])
    cm = confusion_matrix(labels, labels, 3)
    assert accuracy(cm) == 1.0 and macro_f1(cm) == 1.0
    empty = confusion_matrix(np.array([], dtype=int), np.array([], dtype=int), 3)
    assert empty.sum() == 0 and accuracy(empty) == 0.0 and macro_f1(empty) == 0.0


def test_bad_labels_are_refused():
    with pytest.raises(ValueError, match="matching 1-D"):
        confusion_matrix(np.array([0, 1]), np.array([0]), 2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        confusion_matrix(np.array([0, 2]), np.array([0, 1]), 2)
    with pytest.raises(ValueError, match="predictions must lie"):
        confusion_matrix(np.array([0, 1]), np.array([-1, 1]), 2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=60))
def test_invariants_on_random_labels(pairs):
    y_true, y_pred = (np.array(col) for col in zip(*pairs))
    report = classification_report(y_true, y_pred, ("a", "b", "c", "d", "e"))
    assert report.count == len(pairs)
    assert report.support.tolist() == np.bincount(y_true, minlength=5).tolist()
    assert report.confusion.sum(0).tolist() == np.bincount(y_pred, minlength=5).tolist()
    assert report.accuracy == pytest.approx(np.mean(y_true == y_pred))
    assert 0.0 <= report.macro_f1 <= 1.0
    assert np.all((report.f1 >= 0) & (report.f1 <= 1))


def test_report_dict_and_text_tables():
    report = classification_report(Y_TRUE, Y_PRED, ("neutral", "happiness", "surprise"))
    d = report.to_dict()
    assert d["count"] == 5 and d["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert d["per_class"]["happiness"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8), "support": 2}
    table = render_per_class(report)
    assert "happiness      0.667   1.000  0.800        2" in table
    assert "accuracy 0.6000" in table
    lines = render_confusion(report.confusion, report.classes).splitlines()
    assert lines[2].split() == ["neutral", "1", "1", "0"]
    assert lines[4].split() == ["surprise", "1", "0", "0"]


def test_confusion_png_is_a_readable_image(tmp_path):
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    path = save_confusion_png(cm, ("neutral", "happiness", "surprise"), tmp_path / "sub" / "cm.png", "hand example")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0  # not a blank canvas
