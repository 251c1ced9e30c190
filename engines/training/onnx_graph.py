"""A float ONNX emotion model run by torch, so that a model file can teach a student on the GPU.

ONNX Runtime runs teachers on the CPU only (the GPU machine's image has no CUDA build of it): there, two float
model files as teachers made each distillation epoch 17-27 s on 16 cores, against 4-5 s for checkpoint teachers on
the GPU (BENCHMARKS.md, eleventh session). `OnnxGraphModule` reads the file's initializers as tensors and runs its
nodes in order with torch's functions, on any device. It covers the operators that `engines.training.export`
writes (Conv, Relu, Add, GlobalAveragePool, Flatten, Gemm, Softmax) and refuses any other by name, such as the
INT8 file's QLinearConv: give the float file.
"""
from __future__ import annotations

import math
from pathlib import Path

import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

SUPPORTED_OPS = frozenset({"Conv", "Relu", "Add", "GlobalAveragePool", "Flatten", "Gemm", "Softmax"})


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, attrs: dict) -> torch.Tensor:
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        raise ValueError(f"Conv with asymmetric pads {pads} is not supported")
    return F.conv2d(x, w, b, stride=attrs.get("strides", 1), padding=pads[:2], dilation=attrs.get("dilations", 1),
                    groups=attrs.get("group", 1))


def _gemm(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None, attrs: dict) -> torch.Tensor:
    a = a.t() if attrs.get("transA", 0) else a
    b = b.t() if attrs.get("transB", 0) else b
    out = attrs.get("alpha", 1.0) * (a @ b)
    return out if c is None else out + attrs.get("beta", 1.0) * c


class OnnxGraphModule(torch.nn.Module):
    """The graph of a float ONNX model file with one input and one output, as a frozen torch module."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        model = onnx.load(str(path))
        graph = model.graph
        unsupported = sorted({node.op_type for node in graph.node} - SUPPORTED_OPS)
        if unsupported:
            raise ValueError(f"{path}: operators {', '.join(unsupported)} cannot run in torch here (supported: "
                             f"{', '.join(sorted(SUPPORTED_OPS))}); give the float model file, not the INT8 one")
        weights = {init.name for init in graph.initializer}
        inputs = [i.name for i in graph.input if i.name not in weights]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise ValueError(f"{path}: expected one input and one output, found {inputs} and "
                             f"{[o.name for o in graph.output]}")
        self.input_name, self.output_name = inputs[0], graph.output[0].name
        self._names = {}  # initializer name -> buffer name (ONNX names hold dots, which buffers cannot)
        for index, init in enumerate(graph.initializer):
            self._names[init.name] = f"w{index}"
            self.register_buffer(f"w{index}", torch.from_numpy(numpy_helper.to_array(init).copy()))
        self._nodes = [(node.op_type, list(node.input), list(node.output), _attributes(node)) for node in graph.node]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor | None] = {self.input_name: x, "": None}

        def get(name: str) -> torch.Tensor | None:
            return getattr(self, self._names[name]) if name in self._names else values[name]

        for op, inputs, outputs, attrs in self._nodes:
            args = [get(name) for name in inputs] + [None] * (3 - len(inputs))
            if op == "Conv":
                out = _conv(args[0], args[1], args[2], attrs)
            elif op == "Relu":
                out = F.relu(args[0])
            elif op == "Add":
                out = args[0] + args[1]
            elif op == "GlobalAveragePool":
                out = args[0].mean(dim=tuple(range(2, args[0].dim())), keepdim=True)
            elif op == "Flatten":  # ONNX: always 2-D, the dims before `axis` into the first
                out = args[0].reshape(math.prod(args[0].shape[: attrs.get("axis", 1)]), -1)
            elif op == "Gemm":
                out = _gemm(args[0], args[1], args[2], attrs)
            else:  # Softmax
                out = torch.softmax(args[0], dim=attrs.get("axis", -1))
            values[outputs[0]] = out
        return values[self.output_name]
