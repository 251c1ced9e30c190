"""Checkpoint -> ONNX export produces a self-describing file that agrees with its source on real FER+ faces.
(INT8 quantization needs no torch: tests/test_quantize.py.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from schemas.emotions import EMOTIONS
from engines.model_meta import read_metadata
from engines.onnx_engine import OnnxRuntimeEngine
from tests.fixtures.engine_faces import FER_CACHE

torch = pytest.importorskip("torch", reason="export needs torch (the train extra)")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A checkpoint in the training script's format, from a freshly initialised EmotionNet."""
    from engines.training.model import EmotionNet

    torch.manual_seed(0)
    args = {"widths": [16, 32, 64], "blocks": [1, 1, 1], "dropout": 0.2}
    net = EmotionNet(widths=tuple(args["widths"]), blocks=tuple(args["blocks"]), dropout=args["dropout"])
    with torch.no_grad():  # non-trivial batch-norm statistics, so folding them is exercised
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    torch.save({"ema": net.state_dict(), "args": args, "epoch": 3, "val_majority_acc": 0.5}, path)
    return path


def test_export_writes_a_verified_self_describing_model(checkpoint, public_test_faces, tmp_path):
    from engines.training.export import MAX_MODEL_BYTES, export_checkpoint, load_checkpoint, verify_export

    out = tmp_path / "model.onnx"
    summary = export_checkpoint(checkpoint, out, "7.0.0-test", FER_CACHE)
    assert "7.0.0-test" in summary and str(out) in summary
    meta = read_metadata(out)
    assert (meta.classes, meta.input_size, meta.input_scale, meta.model_version) == (EMOTIONS, 48, "pm1", "7.0.0-test")
    assert out.stat().st_size <= MAX_MODEL_BYTES
    engine = OnnxRuntimeEngine(out)
    for n in (1, 5, 300):  # dynamic batch axis
        probs = engine.infer(public_test_faces.pixels[:n])
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    net, info = load_checkpoint(checkpoint)
    assert info["epoch"] == 3
    assert verify_export(net, out, public_test_faces.pixels[100:164]) < 1e-4


def test_export_refuses_a_file_that_is_not_a_training_checkpoint(tmp_path):
    from engines.training.export import load_checkpoint

    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "absent.pt")

