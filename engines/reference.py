"""The baseline: oarriaga's Keras mini-Xception (FER2013, 7 classes) ported to ONNX without TensorFlow.

`build_reference_onnx` reads the Keras 2 .hdf5 with h5py (model config JSON + weights) and writes an
equivalent ONNX graph made with `onnx.helper`: Conv (Keras channels-last kernels transposed to OIHW),
SeparableConv2D as a depthwise grouped Conv + pointwise Conv, BatchNormalization, Relu, MaxPool, Add,
GlobalAveragePool, Softmax; Keras/TF 'same' padding is ONNX `SAME_UPPER` (odd padding goes after).
The graph takes float32 (N, 1, 64, 64) already scaled to [-1, 1] (x/255*2-1, the authors'
`preprocess_input`) and returns softmax probabilities in FER2013 order. It carries the shipped model's
metadata_props convention (classes, input_size, input_scale, model_version), with its own 7 classes.

Its framing is FER2013's own: the raw 48x48 FER2013 pixels resized to 64x64 (bilinear, as the authors'
data loader does), not our aligned crops — `reference_input` does that. The built file is cached
(never shipped, never committed); the .hdf5 lives in /work/shared/models/reference (MIT license).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.engine import check_batch
from engines.ferplus import FER2013_LABELS, SHARED_DATA
from engines.model_meta import scale_input

REFERENCE_DIR = SHARED_DATA.parent / "models" / "reference"
REFERENCE_HDF5 = REFERENCE_DIR / "fer2013_mini_XCEPTION.102-0.66.hdf5"
REFERENCE_VERSION = "reference-mini-xception"
REFERENCE_INPUT_SCALE = "pm1"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[1] / ".cache"
ONNX_NAME = "reference_mini_xception.onnx"


@dataclass(frozen=True)
class KerasLayer:
    """One layer of a Keras functional model: class, name, config, input layer names, weights."""

    kind: str
    name: str
    config: dict
    inputs: tuple[str, ...]
    weights: dict[str, np.ndarray]


def read_keras_hdf5(path: Path) -> tuple[list[KerasLayer], tuple[int, int, int]]:
    """Layers in graph order and the (H, W, C) input shape of a Keras 2 functional-model .hdf5."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference model not found: {path}")
    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs or "model_weights" not in f:
            raise ValueError(f"{path} is not a Keras model file (no model_config / model_weights)")
        config = json.loads(f.attrs["model_config"])
        if config.get("class_name") != "Model":
            raise ValueError(f"{path}: expected a Keras functional Model, got {config.get('class_name')}")
        groups = f["model_weights"]
        layers = []
        for spec in config["config"]["layers"]:
            name = spec["name"]
            weights = {}
            if name in groups:
                group = groups[name]
                for wname in group.attrs.get("weight_names", []):
                    wname = wname.decode() if isinstance(wname, bytes) else wname
                    key = wname.split("/")[-1].split(":")[0]
                    weights[key] = np.asarray(group[wname], dtype=np.float32)
            inputs = tuple(node[0] for node in spec["inbound_nodes"][0]) if spec["inbound_nodes"] else ()
            layers.append(KerasLayer(spec["class_name"], name, spec["config"], inputs, weights))
    input_layer = next(layer for layer in layers if layer.kind == "InputLayer")
    height, width, channels = input_layer.config["batch_input_shape"][1:]
    return layers, (height, width, channels)


def _conv_attrs(config: dict) -> dict:
    """ONNX Conv/MaxPool attributes for a Keras layer's strides and padding (channels-last)."""
    if config.get("data_format", "channels_last") != "channels_last":
        raise ValueError(f"unsupported data_format {config['data_format']}")
    if tuple(config.get("dilation_rate", (1, 1))) != (1, 1):
        raise ValueError("dilated convolutions are not supported")
    padding = config["padding"]
    if padding not in ("same", "valid"):
        raise ValueError(f"unsupported padding {padding!r}")
    return {"strides": list(config["strides"]), "auto_pad": "SAME_UPPER" if padding == "same" else "VALID"}


def _activation(kind: str, source: str, name: str, nodes: list) -> str:
    """Append a Keras activation after `source`; returns the output name."""
    from onnx import helper

    if kind == "linear":
        return source
    if kind == "relu":
        nodes.append(helper.make_node("Relu", [source], [name], name=name))
    elif kind == "softmax":
        nodes.append(helper.make_node("Softmax", [source], [name], name=name, axis=-1))
    else:
        raise ValueError(f"unsupported activation {kind!r}")
    return name


def keras_to_onnx(layers: list[KerasLayer], input_shape: tuple[int, int, int]):
    """An onnx.ModelProto equivalent to the Keras layers (NCHW input, dynamic batch)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    height, width, channels = input_shape
    nodes, inits = [], []
    out: dict[str, str] = {}  # Keras layer name -> ONNX tensor name of its output
    depth: dict[str, int] = {}  # Keras layer name -> its output channels

    def init(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    for layer in layers:
        c, n, w = layer.config, layer.name, layer.weights
        src = [out[i] for i in layer.inputs]
        depth[n] = c["filters"] if "filters" in c else depth[layer.inputs[0]] if layer.inputs else channels
        if layer.kind == "InputLayer":
            out[n] = "input"
            continue
        if layer.kind == "Conv2D":
            ins = [src[0], init(f"{n}.W", w["kernel"].transpose(3, 2, 0, 1))]
            if c.get("use_bias", True):
                ins.append(init(f"{n}.B", w["bias"]))
            nodes.append(helper.make_node("Conv", ins, [n], name=n, kernel_shape=list(c["kernel_size"]), **_conv_attrs(c)))
            res = _activation(c["activation"], n, f"{n}.act", nodes)
        elif layer.kind == "SeparableConv2D":
            dw = w["depthwise_kernel"]  # (kh, kw, in, mult) -> (in*mult, 1, kh, kw); output channel i*mult+m
            kh, kw, cin, mult = dw.shape
            dw_onnx = dw.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
            nodes.append(helper.make_node(
                "Conv", [src[0], init(f"{n}.dw.W", dw_onnx)], [f"{n}.dw"], name=f"{n}.dw",
                kernel_shape=[kh, kw], group=cin, **_conv_attrs(c)))
            ins = [f"{n}.dw", init(f"{n}.pw.W", w["pointwise_kernel"].transpose(3, 2, 0, 1))]
            if c.get("use_bias", True):
                ins.append(init(f"{n}.B", w["bias"]))
            nodes.append(helper.make_node("Conv", ins, [n], name=n, kernel_shape=[1, 1]))
            res = _activation(c["activation"], n, f"{n}.act", nodes)
        elif layer.kind == "BatchNormalization":
            if c["axis"] not in (-1, 3):
                raise ValueError(f"{n}: BatchNormalization on axis {c['axis']} is not supported")
            size = len(w["moving_mean"])
            gamma = w.get("gamma", np.ones(size, np.float32))
            beta = w.get("beta", np.zeros(size, np.float32))
            ins = [src[0], init(f"{n}.scale", gamma), init(f"{n}.bias", beta),
                   init(f"{n}.mean", w["moving_mean"]), init(f"{n}.var", w["moving_variance"])]
            nodes.append(helper.make_node("BatchNormalization", ins, [n], name=n, epsilon=float(c["epsilon"])))
            res = n
        elif layer.kind == "Activation":
            res = _activation(c["activation"], src[0], n, nodes)
        elif layer.kind == "MaxPooling2D":
            nodes.append(helper.make_node("MaxPool", [src[0]], [n], name=n, kernel_shape=list(c["pool_size"]), **_conv_attrs(c)))
            res = n
        elif layer.kind == "Add":
            nodes.append(helper.make_node("Sum", src, [n], name=n))
            res = n
        elif layer.kind == "GlobalAveragePooling2D":
            nodes.append(helper.make_node("GlobalAveragePool", [src[0]], [f"{n}.pool"], name=f"{n}.pool"))
            nodes.append(helper.make_node("Flatten", [f"{n}.pool"], [n], name=n, axis=1))
            res = n
        else:
            raise ValueError(f"unsupported Keras layer {layer.kind} ({n})")
        out[n] = res

    num_classes = depth[layers[-1].name]
    nodes.append(helper.make_node("Identity", [out[layers[-1].name]], ["probabilities"], name="output"))
    graph = helper.make_graph(
        nodes, "reference_mini_xception",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", channels, height, width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", num_classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="moviemotion.reference")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_reference_onnx(hdf5: Path = REFERENCE_HDF5, cache_dir: Path = DEFAULT_CACHE_DIR, force: bool = False) -> Path:
    """Convert the Keras .hdf5 to `cache_dir`/ONNX_NAME; reused unless missing, older than the .hdf5
    or this converter, or `force`."""
    import onnx

    hdf5, out = Path(hdf5), Path(cache_dir) / ONNX_NAME
    newest_source = max(hdf5.stat().st_mtime if hdf5.is_file() else 0.0, Path(__file__).stat().st_mtime)
    if not force and out.is_file() and hdf5.is_file() and out.stat().st_mtime >= newest_source:
        return out
    layers, input_shape = read_keras_hdf5(hdf5)
    model = keras_to_onnx(layers, input_shape)
    if input_shape[2] != 1 or input_shape[0] != input_shape[1]:
        raise ValueError(f"expected a square gray input, got {input_shape}")
    num_classes = model.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    if num_classes != len(FER2013_LABELS):
        raise ValueError(f"expected {len(FER2013_LABELS)} FER2013 classes, the model has {num_classes}")
    onnx.helper.set_model_props(model, {
        "classes": ",".join(FER2013_LABELS),
        "input_size": str(input_shape[0]),
        "input_scale": REFERENCE_INPUT_SCALE,
        "model_version": REFERENCE_VERSION,
    })
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")  # atomic replace: concurrent builders never see half a file
    onnx.save(model, tmp)
    tmp.replace(out)
    return out


def reference_input(raw48: np.ndarray, size: int = 64) -> np.ndarray:
    """Raw FER2013 faces uint8 (N, 48, 48) -> the reference's framing, uint8 (N, size, size)."""
    import cv2

    if raw48.ndim != 3 or raw48.dtype != np.uint8:
        raise ValueError(f"expected uint8 (N, H, W) faces, got {raw48.dtype} {raw48.shape}")
    return np.stack([cv2.resize(face, (size, size), interpolation=cv2.INTER_LINEAR) for face in raw48]) if len(raw48) else np.empty((0, size, size), np.uint8)


class ReferenceModel:
    """The reference on ONNX Runtime (CPU): `infer(uint8 (N, S, S)) -> float32 (N, 7)`, FER2013 order."""

    backend = "onnxruntime"

    def __init__(self, model_path: Path | None = None, threads: int = 2):
        import onnx
        import onnxruntime as ort

        path = Path(model_path) if model_path else build_reference_onnx()
        props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
        missing = {"classes", "input_size", "input_scale", "model_version"} - props.keys()
        if missing:
            raise ValueError(f"{path}: metadata_props lacks {sorted(missing)}")
        self.classes = tuple(props["classes"].split(","))
        self.input_size = int(props["input_size"])
        self.input_scale = props["input_scale"]
        self.model_version = props["model_version"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.input_size)
        return self._session.run(None, {self._input: scale_input(batch, self.input_scale)})[0]
