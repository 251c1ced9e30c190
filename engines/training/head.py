"""Refit the last linear layer of a float ONNX emotion model (classifier re-training, Kang et al. 2020, "Decoupling
representation and classifier"): the network stays as trained, only the `Gemm` that reads its penultimate features
is fitted again on the FER+ Training faces (their mirror images, and by default one copy through training's
domain-shift augmentation, so that the head keeps the network's robustness), with class weights against the
rare-class neglect and the post-hoc prior correction folded into the new bias. The fit is numpy; the shifted copies
need torch. A few minutes on 2 cores.

    python -m engines.training.head --model runs/student.onnx --out runs/student-refit.onnx --version 2.1.0 \\
        --power 0.25 --l2 1e-4 --tau 0 --shifted-copies 1      # the defaults: model 2.0.1's head

Choose the settings on PublicTest with `python -m benchmarks.classifier_retrain` first; quantize the written file
with `engines.quantize` as any exported one. A quantized (INT8) file has no float head to refit and is refused.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.ferplus import FaceSet, load_splits, prior_bias, soft_targets, training_prior
from engines.model_meta import metadata_from_props, scale_input
from engines.reference import DEFAULT_CACHE_DIR

PRIOR_BIAS_NAME = "logit_bias"  # the separate prior-correction Add of files exported before the fold into the Gemm


@dataclass(frozen=True)
class HeadSettings:
    """power: class weights prior^-power (0: none); l2: weight decay of the new weights; tau: post-hoc prior
    correction folded into the new bias (engines.ferplus.prior_bias); shifted_copies: domain-shifted copies of the
    training faces beside the clean ones and their mirrors (0: clean only; more needs torch)."""

    power: float = 0.25
    l2: float = 1e-4
    tau: float = 0.0
    shifted_copies: int = 1


class FeatureModel:
    """A float ONNX emotion model with its penultimate features as a second output, and its head's weights."""

    def __init__(self, path: Path, threads: int = 2) -> None:
        import onnx
        import onnxruntime as ort

        self.path = Path(path)
        self.proto = onnx.load(self.path)
        self.metadata = metadata_from_props({p.key: p.value for p in self.proto.metadata_props}, str(self.path))
        gemms = [node for node in self.proto.graph.node if node.op_type == "Gemm"]
        weights = {t.name: onnx.numpy_helper.to_array(t) for t in self.proto.graph.initializer}
        if not gemms or any(name not in weights for name in gemms[-1].input[1:3]):
            raise ValueError(f"{self.path}: no float Gemm head to refit (an INT8 file? refit the float one, then "
                             f"quantize)")
        self.gemm = gemms[-1]
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in self.gemm.attribute}
        if attributes.get("transB") != 1 or attributes.get("transA", 0) != 0:
            raise ValueError(f"{self.path}: the head Gemm is not features x weight^T (transA 0, transB 1)")
        self.weight, self.bias = weights[self.gemm.input[1]], weights[self.gemm.input[2]]
        self.extra_bias = weights.get(PRIOR_BIAS_NAME, np.zeros_like(self.bias))
        probe = onnx.ModelProto()
        probe.CopyFrom(self.proto)
        probe.graph.output.append(onnx.helper.make_tensor_value_info(self.gemm.input[0], onnx.TensorProto.FLOAT, None))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def features(self, faces: np.ndarray, batch: int = 512) -> np.ndarray:
        """Penultimate features (N, D) of aligned uint8 faces (N, S, S)."""
        scaled = scale_input(faces, self.metadata.input_scale).reshape(-1, 1, *faces.shape[1:]).astype(np.float32)
        return self.features_scaled(scaled, batch)

    def features_scaled(self, x: np.ndarray, batch: int = 512) -> np.ndarray:
        """Penultimate features of input already in the model's scale, float32 (N, 1, S, S)."""
        chunks = [np.zeros((0, self.weight.shape[1]), np.float32)]
        for start in range(0, len(x), batch):
            chunks.append(self._session.run([self.gemm.input[0]], {self._input: x[start:start + batch]})[0])
        return np.concatenate(chunks)


def fit_head(features: np.ndarray, targets: np.ndarray, start: tuple[np.ndarray, np.ndarray], prior: np.ndarray,
             power: float, l2: float, steps: int = 600, lr: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """A new (weight, bias) minimizing the class-weighted soft cross-entropy to the vote distributions `targets`
    (rows summing to 1) plus l2 * |weight|^2: full-batch Adam from `start`. The problem is convex."""
    x, y = features.astype(np.float64), targets.astype(np.float64)
    class_weight = (np.asarray(prior, np.float64) + 1e-6) ** -power
    class_weight /= (class_weight * prior).sum()
    row_weight = (y * class_weight).sum(1, keepdims=True) / len(x)
    params = [start[0].astype(np.float64).copy(), start[1].astype(np.float64).copy()]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    for step in range(1, steps + 1):
        logits = x @ params[0].T + params[1]
        logits -= logits.max(1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(1, keepdims=True)
        grad_logits = row_weight * (probs - y)
        grads = [grad_logits.T @ x + 2 * l2 * params[0], grad_logits.sum(0)]
        for param, grad, moment in zip(params, grads, moments):
            moment[0] = 0.9 * moment[0] + 0.1 * grad
            moment[1] = 0.999 * moment[1] + 0.001 * grad ** 2
            param -= lr * (moment[0] / (1 - 0.9 ** step)) / (np.sqrt(moment[1] / (1 - 0.999 ** step)) + 1e-8)
    return params[0].astype(np.float32), params[1].astype(np.float32)


def domain_shifted(faces: np.ndarray, seed: int, batch: int = 512) -> np.ndarray:
    """`faces` through training's domain-shift augmentation (engines/training/augment.py: head pose, low light,
    side light, blur, noise, JPEG, occlusion), in the pm1 scale that augmentation works in. Needs torch."""
    import torch

    from engines.training.augment import domain_shift

    generator = torch.Generator().manual_seed(seed)
    scaled = scale_input(faces, "pm1").reshape(-1, 1, *faces.shape[1:]).astype(np.float32)
    return np.concatenate([domain_shift(torch.from_numpy(scaled[start:start + batch]), generator).numpy()
                           for start in range(0, len(scaled), batch)])


def training_features(model: FeatureModel, training: FaceSet, shifted_copies: int = 0,
                      seed: int = 20261203) -> tuple[np.ndarray, np.ndarray]:
    """(features, vote distributions) of the usable `training` faces (FER+ Training at the model's input size),
    their mirror images and `shifted_copies` domain-shifted copies (so the head does not fit clean faces only)."""
    if shifted_copies and model.metadata.input_scale != "pm1":
        raise ValueError(f"{model.path}: domain-shifted copies are made in the pm1 scale, the model takes "
                         f"{model.metadata.input_scale}")
    targets, usable = soft_targets(training.votes)
    faces = training.pixels[usable]
    features = [model.features(faces), model.features(np.ascontiguousarray(faces[:, :, ::-1]))]
    features += [model.features_scaled(domain_shifted(faces, seed + copy)) for copy in range(shifted_copies)]
    return np.concatenate(features), np.concatenate([targets[usable]] * len(features))


def write_head(model: FeatureModel, weight: np.ndarray, bias: np.ndarray, out: Path, version: str) -> Path:
    """`model`'s graph with `weight` and `bias` as its head (a separate prior Add, if any, set to zero) and its
    metadata with `model_version` = `version`."""
    import onnx

    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    replaced = {model.gemm.input[1]: weight.astype(np.float32), model.gemm.input[2]: bias.astype(np.float32)}
    if any(t.name == PRIOR_BIAS_NAME for t in proto.graph.initializer):
        replaced[PRIOR_BIAS_NAME] = np.zeros_like(model.extra_bias)
    for tensor in proto.graph.initializer:
        if tensor.name in replaced:
            tensor.CopyFrom(onnx.numpy_helper.from_array(replaced[tensor.name], tensor.name))
    del proto.metadata_props[:]  # the contract, as export and quantization write it, with the new version
    for key, value in model.metadata.with_version(version).to_props().items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, out)
    return out


def refit(model_path: Path, out: Path, version: str, settings: HeadSettings, cache_dir: Path) -> str:
    """Fit and write a new head; returns a one-line summary."""
    model = FeatureModel(model_path)
    training = load_splits(cache_dir, size=model.metadata.input_size, progress=False)["Training"]
    prior = training_prior(training.votes)
    features, targets = training_features(model, training, settings.shifted_copies)
    weight, bias = fit_head(features, targets, (model.weight, model.bias), prior, settings.power, settings.l2)
    write_head(model, weight, bias + prior_bias(prior, settings.tau).astype(np.float32), out, version)
    return (f"{out}: model_version {version}, head refitted on {len(features)} training features, "
            f"{settings.shifted_copies} domain-shifted copies among them (power {settings.power:g}, "
            f"l2 {settings.l2:g}, prior correction tau {settings.tau:g})")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="a float ONNX emotion model")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--version", required=True, help="model_version of the written file")
    p.add_argument("--power", type=float, default=HeadSettings.power, help="class weights prior^-power")
    p.add_argument("--l2", type=float, default=HeadSettings.l2)
    p.add_argument("--tau", type=float, default=HeadSettings.tau, help="post-hoc prior correction in the new bias")
    p.add_argument("--shifted-copies", type=int, default=HeadSettings.shifted_copies,
                   help="domain-shifted copies of the training faces to fit on as well (needs torch; 0: none)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    args = p.parse_args(argv)
    settings = HeadSettings(args.power, args.l2, args.tau, args.shifted_copies)
    print(refit(args.model, args.out, args.version, settings, args.cache_dir))


if __name__ == "__main__":
    main()
