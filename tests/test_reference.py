"""The Keras mini-Xception ported to ONNX: structure, metadata, probabilities, and accuracy on PublicTest."""
import h5py
import numpy as np
import onnx
import pytest

from engines.ferplus import FER2013_LABELS, read_raw
from engines.reference import (
    ONNX_NAME,
    REFERENCE_HDF5,
    REFERENCE_VERSION,
    ReferenceModel,
    build_reference_onnx,
    read_keras_hdf5,
    reference_input,
)


@pytest.fixture(scope="module")
def reference_onnx(tmp_path_factory):
    return build_reference_onnx(REFERENCE_HDF5, tmp_path_factory.mktemp("reference"))


@pytest.fixture(scope="module")
def public_test_500():
    raw, _votes, labels, usage = read_raw()
    public = usage == "PublicTest"
    return raw[public][:500], labels[public][:500]


def test_hdf5_config_is_what_the_port_assumes():
    layers, input_shape = read_keras_hdf5(REFERENCE_HDF5)
    assert input_shape == (64, 64, 1)
    kinds = {layer.kind for layer in layers}
    assert kinds == {"InputLayer", "Conv2D", "BatchNormalization", "Activation", "SeparableConv2D", "MaxPooling2D", "Add", "GlobalAveragePooling2D"}
    assert layers[-1].config["activation"] == "softmax"
    adds = [layer for layer in layers if layer.kind == "Add"]
    assert len(adds) == 4 and all(len(layer.inputs) == 2 for layer in adds)


def test_built_model_is_valid_onnx_with_metadata(reference_onnx):
    model = onnx.load(reference_onnx)
    onnx.checker.check_model(model)
    props = {p.key: p.value for p in model.metadata_props}
    assert props == {"classes": ",".join(FER2013_LABELS), "input_size": "64", "input_scale": "pm1", "model_version": REFERENCE_VERSION}
    assert reference_onnx.name == ONNX_NAME
    # Every Keras weight array became an initializer (BN: 4 each; separable: 2; conv: kernel [+ bias]).
    with h5py.File(REFERENCE_HDF5) as f:
        keras_arrays = sum(len(f["model_weights"][name].attrs["weight_names"]) for name in f["model_weights"])
    assert len(model.graph.initializer) == keras_arrays


def test_build_is_cached(reference_onnx):
    before = reference_onnx.stat().st_mtime_ns
    assert build_reference_onnx(REFERENCE_HDF5, reference_onnx.parent) == reference_onnx
    assert reference_onnx.stat().st_mtime_ns == before


def test_probabilities_and_accuracy_on_public_test(reference_onnx, public_test_500):
    raw, labels = public_test_500
    model = ReferenceModel(reference_onnx)
    assert model.classes == FER2013_LABELS and model.input_size == 64
    probs = model.infer(reference_input(raw))
    assert probs.shape == (500, 7) and probs.dtype == np.float32
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5) and probs.min() >= 0.0
    acc = float((probs.argmax(1) == labels).mean())
    assert acc >= 0.60, f"reference accuracy {acc:.3f} on 500 PublicTest faces: the port is off"
    # Batch composition does not change a face's result.
    assert np.allclose(model.infer(reference_input(raw[:1]))[0], probs[0], atol=1e-5)


def test_bad_inputs_are_refused(reference_onnx, tmp_path):
    model = ReferenceModel(reference_onnx)
    with pytest.raises(ValueError, match="shape"):
        model.infer(np.zeros((2, 48, 48), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        model.infer(np.zeros((2, 64, 64), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        reference_input(np.zeros((2, 48, 48), np.float32))
    with pytest.raises(FileNotFoundError):
        build_reference_onnx(tmp_path / "missing.hdf5", tmp_path)
    not_keras = tmp_path / "plain.hdf5"
    with h5py.File(not_keras, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="not a Keras model"):
        build_reference_onnx(not_keras, tmp_path)
