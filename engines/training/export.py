"""Export a trained EmotionNet checkpoint to the shipped ONNX model file.

    python -m engines.training.export --checkpoint runs/emotionnet-v1/best.pt \\
        --out engines/models/emotion-ferplus.onnx --version 1.0.0

The graph has a dynamic batch axis and ends in a softmax (engines return probabilities), and
its `metadata_props` carry classes, input_size, input_scale and model_version (see
engines.model_meta). The export is checked: ONNX Runtime must match torch on real FER+ faces,
and the file must stay under the size limit. Needs torch (the `train` extra).
"""
from __future__ import annotations

import argparse
import copy
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from schemas.emotions import EMOTIONS
from engines.ferplus import load_splits, prior_bias, training_prior
from engines.model_files import DEFAULT_MODEL
from engines.model_meta import ModelMetadata, scale_input, write_metadata
from engines.onnx_engine import OnnxRuntimeEngine
from engines.training.model import EmotionNet

MAX_MODEL_BYTES = 10 * 1024 * 1024
# The training script feeds 48x48 faces scaled x / 127.5 - 1 (engines.training.train.to_input).
TRAINED_INPUT_SIZE = 48
TRAINED_SCALE = "pm1"
OPSET = 17
VERIFY_FACES = 64  # the first PublicTest faces that ONNX Runtime and torch must agree on


class WithSoftmax(nn.Module):
    """The network followed by a softmax over the classes: the exported graph gives probabilities."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


def with_logit_bias(net: EmotionNet, logit_bias: np.ndarray) -> EmotionNet:
    """A copy of `net` whose final linear layer adds `logit_bias` to its bias: a constant logit offset (the
    post-hoc prior correction) costs no operator in the exported graph."""
    shifted = copy.deepcopy(net)
    linear = shifted.head[-1]
    with torch.no_grad():
        linear.bias += torch.as_tensor(logit_bias, dtype=linear.bias.dtype)
    return shifted


def load_checkpoint(path: Path) -> tuple[EmotionNet, dict]:
    """The EMA weights of a training checkpoint in eval mode, and the checkpoint's other fields.

    The checkpoint is copied first: training may rewrite it while we read.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "checkpoint.pt"
        shutil.copyfile(path, copy)
        ckpt = torch.load(copy, map_location="cpu", weights_only=False)
    if "ema" not in ckpt or "args" not in ckpt:
        raise ValueError(f"{path}: not a training checkpoint (needs 'ema' and 'args')")
    args = ckpt["args"]
    net = EmotionNet(
        num_classes=len(EMOTIONS),
        widths=tuple(args["widths"]),
        blocks=tuple(args["blocks"]),
        dropout=args["dropout"],
        stem=args.get("stem", 16),
        block=args.get("block", "basic"),  # checkpoints from before separable blocks hold none
    )
    net.load_state_dict(ckpt["ema"])
    net.eval()
    return net, {k: v for k, v in ckpt.items() if k != "ema"}


def export_onnx(net: nn.Module, out: Path, metadata: ModelMetadata) -> Path:
    """Write `net` + softmax as ONNX with a dynamic batch axis and `metadata`; returns `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    size = metadata.input_size
    example = torch.zeros(2, 1, size, size)
    # The TorchScript exporter on purpose: the torch.export one needs onnxscript (not a dependency)
    # and this plain CNN exports the same either way.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            WithSoftmax(net).eval(),
            (example,),
            str(out),
            input_names=["faces"],
            output_names=["probabilities"],
            dynamic_axes={"faces": {0: "batch"}, "probabilities": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    write_metadata(out, metadata)
    if out.stat().st_size > MAX_MODEL_BYTES:
        raise ValueError(f"{out} is {out.stat().st_size} bytes, over the {MAX_MODEL_BYTES} byte limit")
    return out


def verify_export(net: nn.Module, path: Path, faces: np.ndarray, atol: float = 1e-4) -> float:
    """Max |ORT - torch| probability difference on `faces` (uint8 (N, S, S)); raises past `atol`."""
    engine = OnnxRuntimeEngine(path, threads=2)
    ort_probs = engine.infer(faces)
    with torch.no_grad():
        x = torch.from_numpy(scale_input(faces, engine.metadata.input_scale))
        torch_probs = WithSoftmax(net).eval()(x).numpy()
    diff = float(np.abs(ort_probs - torch_probs).max())
    if diff > atol:
        raise ValueError(f"{path}: ONNX Runtime differs from torch by {diff:.2e} (> {atol:.0e})")
    return diff


def export_checkpoint(checkpoint: Path, out: Path, version: str, cache_dir: Path, prior_tau: float = 0.0) -> str:
    """Export + verify; with `prior_tau` > 0 the graph carries the post-hoc prior correction (the FER+ training
    prior, majority rule). Returns a one-line summary."""
    net, info = load_checkpoint(checkpoint)
    metadata = ModelMetadata(EMOTIONS, TRAINED_INPUT_SIZE, TRAINED_SCALE, version)
    splits = load_splits(cache_dir)
    if prior_tau:
        net = with_logit_bias(net, prior_bias(training_prior(splits["Training"].votes), prior_tau))
    export_onnx(net, out, metadata)
    diff = verify_export(net, out, splits["PublicTest"].pixels[:VERIFY_FACES])
    return (
        f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, version {version}) from epoch "
        f"{info.get('epoch')} (val majority acc {info.get('val_majority_acc', float('nan')):.4f}); "
        f"prior correction tau {prior_tau:g}; max |ORT - torch| = {diff:.1e}"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="training checkpoint (best.pt)")
    p.add_argument("--out", type=Path, default=DEFAULT_MODEL, help="ONNX file to write")
    p.add_argument("--version", required=True, help="model_version stored in the file")
    p.add_argument("--cache-dir", type=Path, default=Path(".cache"), help="FER+ aligned-face cache")
    p.add_argument("--prior-tau", type=float, default=0.0, metavar="TAU",
                   help="post-hoc prior correction: logits - TAU * log(FER+ training prior) before the softmax "
                        "(0: none; see benchmarks/prior_correction.py)")
    args = p.parse_args(argv)
    print(export_checkpoint(args.checkpoint, args.out, args.version, args.cache_dir, args.prior_tau))


if __name__ == "__main__":
    main()
