"""Batch augmentation on CPU tensors.

`augment`: flip, small similarity jitter, brightness/contrast, erasing (the 1.x recipe).
`domain_shift`: what separates FER2013's web photos from posed faces in a dark theater: head pose
by perspective warps, low light and gamma, side light, blur, sensor noise, JPEG compression and
partial occlusion, each applied to a random part of the batch.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def _chosen(n: int, p: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) < p


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """x: (N, 1, H, W) float in [-1, 1]. Returns an augmented copy."""
    n = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return _uniform(n, lo, hi, generator)

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
    return erase(out, generator, p=0.25)


def erase(x: torch.Tensor, generator: torch.Generator, p: float, fill_random: bool = False) -> torch.Tensor:
    """Random erasing of one rectangle (15-40% of each side) in a fraction `p` of the faces."""
    n, _, h, w = x.shape
    chosen = _chosen(n, p, generator)
    eh = (_uniform(n, 0.15, 0.4, generator) * h).long()
    ew = (_uniform(n, 0.15, 0.4, generator) * w).long()
    y0 = (torch.rand(n, generator=generator) * (h - eh)).long()
    x0 = (torch.rand(n, generator=generator) * (w - ew)).long()
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    mask = (
        chosen.view(n, 1, 1)
        & (rows >= y0.view(n, 1, 1)) & (rows < (y0 + eh).view(n, 1, 1))
        & (cols >= x0.view(n, 1, 1)) & (cols < (x0 + ew).view(n, 1, 1))
    ).unsqueeze(1)
    fill = _uniform(n, -1, 1, generator).view(n, 1, 1, 1) if fill_random else torch.zeros(n, 1, 1, 1)
    return torch.where(mask, fill.expand_as(x), x)


def perspective(x: torch.Tensor, generator: torch.Generator, p: float, strength: float = 0.25) -> torch.Tensor:
    """Yaw/pitch-like homographies: a fraction `p` of the faces seen from a little off axis."""
    n, _, h, w = x.shape
    chosen = _chosen(n, p, generator).float()
    # Projective terms of the homography (x, y) -> (x, y) / (1 + px*x + py*y), in [-1, 1] coords.
    px = _uniform(n, -strength, strength, generator) * chosen
    py = _uniform(n, -strength, strength, generator) * chosen * 0.6
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    denom = 1 + px.view(n, 1, 1) * xs + py.view(n, 1, 1) * ys
    grid = torch.stack([xs / denom, ys / denom], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def lighting(x: torch.Tensor, generator: torch.Generator, p_dark: float, p_side: float) -> torch.Tensor:
    """Low light with gamma (dark theaters) and a linear side-light gradient, on [0, 1] intensities."""
    n, _, h, w = x.shape
    v = (x + 1) / 2
    dark = _chosen(n, p_dark, generator)
    gamma = torch.where(dark, _uniform(n, 0.6, 2.2, generator), torch.ones(n)).view(n, 1, 1, 1)
    gain = torch.where(dark, _uniform(n, 0.25, 1.0, generator), torch.ones(n)).view(n, 1, 1, 1)
    v = v.clamp_min(1e-4).pow(gamma) * gain
    side = _chosen(n, p_side, generator)
    slope = torch.where(side, _uniform(n, -0.7, 0.7, generator), torch.zeros(n))
    direction = _uniform(n, 0, math.pi, generator)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    along = torch.cos(direction).view(n, 1, 1) * xs + torch.sin(direction).view(n, 1, 1) * ys
    v = v * (1 + slope.view(n, 1, 1) * along).clamp_min(0.1).unsqueeze(1)
    # Re-stretch a little, as a camera's auto exposure would, but keep some of the darkness.
    lo = v.amin(dim=(2, 3), keepdim=True)
    hi = v.amax(dim=(2, 3), keepdim=True)
    stretched = (v - lo) / (hi - lo).clamp_min(1e-3)
    mix = _uniform(n, 0.0, 0.7, generator).view(n, 1, 1, 1)
    v = mix * stretched + (1 - mix) * v
    return (v.clamp(0, 1) * 2 - 1)


def blur(x: torch.Tensor, generator: torch.Generator, p: float) -> torch.Tensor:
    """Gaussian blur (defocus, motion smear) of sigma 0.5-1.5 px in a fraction `p` of the faces."""
    n = x.shape[0]
    chosen = _chosen(n, p, generator)
    if not chosen.any():
        return x
    out = x.clone()
    sigmas = _uniform(n, 0.5, 1.5, generator)
    radius = 3
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    for i in torch.nonzero(chosen).flatten().tolist():
        k = torch.exp(-(t**2) / (2 * sigmas[i] ** 2))
        k = (k / k.sum()).view(1, 1, 1, -1)
        face = F.pad(x[i : i + 1], (radius, radius, 0, 0), mode="replicate")
        face = F.conv2d(face, k)
        face = F.pad(face, (0, 0, radius, radius), mode="replicate")
        out[i : i + 1] = F.conv2d(face, k.transpose(2, 3))
    return out


def noise(x: torch.Tensor, generator: torch.Generator, p: float) -> torch.Tensor:
    """Sensor noise: Gaussian, sigma up to 12 gray levels, in a fraction `p` of the faces."""
    n = x.shape[0]
    sigma = torch.where(_chosen(n, p, generator), _uniform(n, 0.01, 0.1, generator), torch.zeros(n))
    return (x + sigma.view(n, 1, 1, 1) * torch.randn(x.shape, generator=generator)).clamp(-1, 1)


def jpeg(x: torch.Tensor, generator: torch.Generator, p: float) -> torch.Tensor:
    """JPEG compression at quality 15-60 in a fraction `p` of the faces (OpenCV's codec)."""
    n = x.shape[0]
    chosen = torch.nonzero(_chosen(n, p, generator)).flatten().tolist()
    if not chosen:
        return x
    out = x.clone()
    qualities = _uniform(n, 15, 60, generator)
    for i in chosen:
        face = ((x[i, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
        ok, buf = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, int(qualities[i])])
        decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        out[i, 0] = torch.from_numpy(decoded.astype(np.float32) / 127.5 - 1.0)
    return out


def domain_shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The 1.x augmentation, then the shifts of a theater camera. x: (N, 1, H, W) in [-1, 1]."""
    out = augment(x, generator)
    out = perspective(out, generator, p=0.3)
    out = lighting(out, generator, p_dark=0.35, p_side=0.3)
    out = blur(out, generator, p=0.2)
    out = noise(out, generator, p=0.35)
    out = jpeg(out, generator, p=0.15)
    return erase(out, generator, p=0.15, fill_random=True)


AUGMENTATIONS = {"basic": augment, "domain": domain_shift}
