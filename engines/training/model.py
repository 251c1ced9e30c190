"""The emotion network: a small ResNet that spends its compute at 24x24 and below."""
from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


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


class EmotionNet(nn.Module):
    """48x48 gray in, 8 logits out.

    stem 16ch@48 -> 32ch@24 (blocks[0] residual blocks) -> 64ch@12 (blocks[1]) -> 128ch@6
    (blocks[2]) -> global average pool -> dropout -> linear. About 60 M multiply-adds per face
    with widths (32, 64, 128) and blocks (1, 2, 2).
    """

    def __init__(
        self,
        num_classes: int = 8,
        widths: tuple[int, int, int] = (32, 64, 128),
        blocks: tuple[int, int, int] = (1, 2, 2),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(1, 16), conv_bn(16, widths[0], stride=2)]
        layers += [Residual(widths[0]) for _ in range(blocks[0])]
        for i in (1, 2):
            layers.append(conv_bn(widths[i - 1], widths[i], stride=2))
            layers += [Residual(widths[i]) for _ in range(blocks[i])]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(widths[2], num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
