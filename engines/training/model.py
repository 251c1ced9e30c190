"""The emotion network: a small ResNet that spends its compute at 24x24 and below.

Two kinds of block: `basic` (two full 3x3 convolutions, the shipped models) and `separable` (each 3x3 convolution
split into a depthwise 3x3 and a pointwise 1x1, as in Xception and MobileNet: about an eighth of the multiply-adds at
128 channels, so a separable net can be wider or deeper at the same cost; whether ONNX Runtime's INT8 kernels turn
that into speed is what `engines.training.candidates` times)."""
from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def separable_conv_bn(cin: int, cout: int, stride: int = 1, act: bool = True) -> nn.Sequential:
    """Depthwise 3x3 (stride here) then pointwise 1x1, one batch norm after the pair."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
                               nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if act else nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(channels, channels),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class SeparableResidual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(separable_conv_bn(channels, channels), separable_conv_bn(channels, channels, act=False))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


BLOCK_KINDS = ("basic", "separable")


class EmotionNet(nn.Module):
    """48x48 gray in, 8 logits out.

    stem `stem`ch@48 -> widths[0]@24 (blocks[0] residual blocks) -> widths[1]@12 (blocks[1]) -> widths[2]@6
    (blocks[2]) -> global average pool -> dropout -> linear. About 60 M multiply-adds per face
    with stem 16, widths (32, 64, 128) and blocks (1, 2, 2) (model 1.x); `multiply_adds` counts them.
    `block="separable"` makes the residual blocks and the stride-2 transitions depthwise-separable (the stem,
    on one input channel, stays a full convolution).
    """

    def __init__(
        self,
        num_classes: int = 8,
        widths: tuple[int, int, int] = (32, 64, 128),
        blocks: tuple[int, int, int] = (1, 2, 2),
        dropout: float = 0.2,
        stem: int = 16,
        block: str = "basic",
    ) -> None:
        super().__init__()
        if block not in BLOCK_KINDS:
            raise ValueError(f"unknown block kind {block!r} (choose from {', '.join(BLOCK_KINDS)})")
        down, residual = (separable_conv_bn, SeparableResidual) if block == "separable" else (conv_bn, Residual)
        layers: list[nn.Module] = [conv_bn(1, stem), down(stem, widths[0], stride=2)]
        layers += [residual(widths[0]) for _ in range(blocks[0])]
        for i in (1, 2):
            layers.append(down(widths[i - 1], widths[i], stride=2))
            layers += [residual(widths[i]) for _ in range(blocks[i])]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(widths[2], num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def multiply_adds(net: nn.Module, size: int = 48) -> int:
    """Multiply-adds of one forward pass of one size x size face (convolutions and linear layers)."""
    total = 0

    def count(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() * per_output
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, 1, size, size))
    finally:
        for hook in hooks:
            hook.remove()
    return total
