"""Batch augmentation on CPU tensors: flip, small similarity jitter, brightness/contrast, erasing."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """x: (N, 1, H, W) float in [-1, 1]. Returns an augmented copy."""
    n = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    angle = uniform(-12, 12) * math.pi / 180
    scale = uniform(0.9, 1.1)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    tx, ty = uniform(-0.1, 0.1), uniform(-0.1, 0.1)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast = uniform(0.7, 1.3).view(n, 1, 1, 1)
    brightness = uniform(-0.2, 0.2).view(n, 1, 1, 1)
    out = (out * contrast + brightness).clamp(-1, 1)
    # Random erasing of one rectangle in a quarter of the faces.
    h, w = x.shape[2:]
    erase = torch.rand(n, generator=generator) < 0.25
    eh = (uniform(0.15, 0.4) * h).long()
    ew = (uniform(0.15, 0.4) * w).long()
    y0 = (torch.rand(n, generator=generator) * (h - eh)).long()
    x0 = (torch.rand(n, generator=generator) * (w - ew)).long()
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    mask = (
        erase.view(n, 1, 1)
        & (rows >= y0.view(n, 1, 1)) & (rows < (y0 + eh).view(n, 1, 1))
        & (cols >= x0.view(n, 1, 1)) & (cols < (x0 + ew).view(n, 1, 1))
    )
    return out.masked_fill(mask.unsqueeze(1), 0.0)
