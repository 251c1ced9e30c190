"""Teachers for knowledge distillation: a training checkpoint, a shipped ONNX model file, or several of them.

Each teacher maps an augmented batch (float (N, 1, 48, 48) in the `pm1` scale, as `train.to_input` makes it) to
log-probabilities over the 8 emotions. Several teachers form an ensemble whose log-probabilities are averaged
(a geometric mean of their predictions), so a student can learn from a network being trained now and from a
model that already ships, without its checkpoint. A model file teaches on ONNX Runtime when the student trains on
the CPU, and through its graph in torch (`onnx_graph.py`) when the student trains on a GPU.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from engines.model_meta import ModelMetadata, read_metadata


class CheckpointTeacher:
    """The EMA weights of a training checkpoint (a run's best.pt), frozen, channels-last."""

    def __init__(self, path: Path, device: torch.device = torch.device("cpu")) -> None:
        from engines.training.export import load_checkpoint

        net, _ = load_checkpoint(path)
        for param in net.parameters():
            param.requires_grad_(False)
        self.net = net.to(device=device, memory_format=torch.channels_last).eval()

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.net(x).float(), dim=1)


def check_training_input(path: Path, meta: ModelMetadata) -> None:
    if (meta.input_size, meta.input_scale) != (48, "pm1"):
        raise ValueError(f"{path}: a teacher must take 48 px faces in the pm1 scale, not "
                         f"{meta.input_size} px in {meta.input_scale}")


class OnnxTeacher:
    """A model file (float or INT8) on the product's ONNX Runtime engine, on the CPU; it must take training's
    input."""

    def __init__(self, path: Path, threads: int = 2) -> None:
        from engines.onnx_engine import OnnxRuntimeEngine

        self.engine = OnnxRuntimeEngine(path, threads=threads, providers=["CPUExecutionProvider"])
        check_training_input(path, self.engine.metadata)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        probs = self.engine.infer_scaled(x.float().cpu().numpy())
        return torch.from_numpy(probs).clamp_min(1e-8).log().to(x.device)


class GraphTeacher:
    """A float model file's graph run by torch on `device` (a GPU, where ONNX Runtime cannot go here); it must
    take training's input."""

    def __init__(self, path: Path, device: torch.device = torch.device("cpu")) -> None:
        from engines.training.onnx_graph import OnnxGraphModule

        check_training_input(path, read_metadata(path))
        self.net = OnnxGraphModule(path).to(device).eval()

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).float().clamp_min(1e-8).log()


class TeacherEnsemble:
    """Mean log-probabilities of its teachers: what the student is distilled towards."""

    def __init__(self, teachers: Sequence[CheckpointTeacher | OnnxTeacher | GraphTeacher]) -> None:
        if not teachers:
            raise ValueError("an ensemble needs at least one teacher")
        self.teachers = list(teachers)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([teacher(x) for teacher in self.teachers]).mean(0)


def load_teachers(paths: Sequence[Path], threads: int = 2,
                  device: torch.device = torch.device("cpu")) -> TeacherEnsemble:
    """`.onnx` files run on ONNX Runtime when `device` is the CPU, and through their graph in torch on a GPU;
    anything else is read as a training checkpoint and runs on `device`, beside the student."""
    def teacher(path: Path) -> CheckpointTeacher | OnnxTeacher | GraphTeacher:
        if Path(path).suffix != ".onnx":
            return CheckpointTeacher(path, device)
        return OnnxTeacher(path, threads) if device.type == "cpu" else GraphTeacher(path, device)

    return TeacherEnsemble([teacher(path) for path in paths])
