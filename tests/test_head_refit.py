"""Refitting a float model's last layer (engines/training/head.py) on real FER+ faces and the shipped model: the fit
lowers its loss, the written file runs on ONNX Runtime with exactly the new head and keeps the metadata contract,
and an INT8 file is refused by name. Numpy and ONNX Runtime only: runs in CI."""
from __future__ import annotations

import numpy as np
import pytest

from engines.ferplus import soft_targets, training_prior
from engines.model_files import INT8_MODEL
from engines.model_meta import read_metadata
from engines.onnx_engine import OnnxRuntimeEngine
from engines.training.head import FeatureModel, fit_head, write_head

FACES = 600


def soft_cross_entropy(features, targets, weight, bias):
    logits = features @ weight.T + bias
    logits = logits - logits.max(1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return float(-(targets * log_p).sum(1).mean())


def test_a_refitted_head_fits_better_and_is_written_into_a_working_model(shipped_model, training_faces,
                                                                          public_test_faces, tmp_path):
    model = FeatureModel(shipped_model)
    targets, usable = soft_targets(training_faces.votes[:FACES])
    faces = training_faces.pixels[:FACES][usable]
    features, targets = model.features(faces), targets[usable]
    assert features.shape == (len(faces), model.weight.shape[1])
    prior = training_prior(training_faces.votes)
    weight, bias = fit_head(features, targets, (model.weight, model.bias), prior, power=0.0, l2=0.0, steps=200)
    before = soft_cross_entropy(features, targets, model.weight, model.bias)
    after = soft_cross_entropy(features, targets, weight, bias)
    assert after < before - 0.01, (before, after)

    out = write_head(model, weight, bias, tmp_path / "refit.onnx", version="9.9.9-refit")
    meta = read_metadata(out)
    assert meta.model_version == "9.9.9-refit"
    assert meta.classes == read_metadata(shipped_model).classes and meta.input_size == 48
    probe = public_test_faces.pixels[:64]
    logits = model.features(probe) @ weight.T + bias
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    with OnnxRuntimeEngine(out, threads=2) as engine:
        np.testing.assert_allclose(engine.infer(probe), expected, atol=1e-5)


def test_an_int8_file_has_no_float_head_to_refit():
    with pytest.raises(ValueError, match=r"emotion-ferplus-int8\.onnx: no float Gemm head to refit"):
        FeatureModel(INT8_MODEL)


def test_the_shifted_copies_come_from_trainings_domain_augmentation_and_repeat_with_their_seed(training_faces):
    pytest.importorskip("torch", reason="the domain-shift augmentation needs torch (pip install -e '.[train]')")
    from engines.training.head import domain_shifted

    faces = training_faces.pixels[:40]
    first, again, other = domain_shifted(faces, seed=7), domain_shifted(faces, seed=7), domain_shifted(faces, seed=8)
    assert first.shape == (40, 1, 48, 48) and first.dtype == np.float32
    assert first.min() >= -1.0 and first.max() <= 1.0
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    clean = faces.astype(np.float32)[:, None] / 127.5 - 1.0
    assert np.abs(first - clean).mean() > 0.05  # not the clean faces
