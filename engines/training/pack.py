"""A portable copy of the aligned faces that training reads: Training and PublicTest, never PrivateTest.

The aligned cache (`engines.ferplus.load_splits`) is 75 MB and needs `../shared` and YuNet to rebuild; a GPU
machine lent through the device tool receives at most 64 MiB and no `../shared`. This pack stores each face as a
lossless PNG (54 MB for the 32,298 faces), with its FER+ votes and FER2013 label, and `read_pack` gives back the
same `FaceSet`s, pixel for pixel. PrivateTest stays behind: the test split is read only where the shipped file is
evaluated, once.

    python -m engines.training.pack --out runs/kit/ferplus-train-public.npz
    python -m engines.training.train --data runs/kit/ferplus-train-public.npz ...
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from engines.ferplus import FaceSet, load_splits

PACKED_SPLITS = ("Training", "PublicTest")


def encode_faces(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S) uint8 faces -> one byte buffer of PNGs and the N + 1 offsets that cut it."""
    encoded = []
    for face in pixels:
        ok, png = cv2.imencode(".png", face, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise ValueError("OpenCV could not encode a face as PNG")
        encoded.append(png.ravel())
    offsets = np.zeros(len(encoded) + 1, np.int64)
    offsets[1:] = np.cumsum([len(png) for png in encoded])
    return (np.concatenate(encoded) if encoded else np.zeros(0, np.uint8)), offsets


def decode_faces(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The (N, S, S) uint8 faces that `encode_faces` wrote (N >= 1: an empty split is refused before this)."""
    faces = [cv2.imdecode(data[start:end], cv2.IMREAD_GRAYSCALE) for start, end in zip(offsets[:-1], offsets[1:])]
    if any(face is None for face in faces):
        raise ValueError("the pack holds a face that is not a readable PNG")
    return np.stack(faces)


def write_pack(splits: dict[str, FaceSet], out: Path) -> Path:
    """Write Training and PublicTest of `splits` to `out` (PrivateTest, if given, is not written)."""
    arrays = {}
    for name in PACKED_SPLITS:
        if len(splits[name]) == 0:
            raise ValueError(f"{name} has no faces: a pack needs some to train and validate on")
        data, offsets = encode_faces(splits[name].pixels)
        arrays |= {f"{name}_png": data, f"{name}_offsets": offsets, f"{name}_votes": splits[name].votes,
                   f"{name}_labels": splits[name].fer2013_label}
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as file:  # PNGs are compressed already
        np.savez(file, **arrays)
    return out


def read_pack(path: Path) -> dict[str, FaceSet]:
    """The packed splits as `FaceSet`s (no PrivateTest: a pack never holds it)."""
    with np.load(path) as data:
        missing = [name for name in PACKED_SPLITS if f"{name}_png" not in data.files]
        if missing:
            raise ValueError(f"{path}: not a training pack (no {', '.join(missing)})")
        empty = [name for name in PACKED_SPLITS if len(data[f"{name}_offsets"]) < 2]
        if empty:
            raise ValueError(f"{path}: {', '.join(empty)} has no faces")
        return {name: FaceSet(decode_faces(data[f"{name}_png"], data[f"{name}_offsets"]), data[f"{name}_votes"],
                              data[f"{name}_labels"])
                for name in PACKED_SPLITS}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache-dir", type=Path, default=Path(".cache"), help="the aligned cache (built if missing)")
    p.add_argument("--out", type=Path, default=Path("runs/kit/ferplus-train-public.npz"))
    args = p.parse_args(argv)
    out = write_pack(load_splits(args.cache_dir), args.out)
    sizes = ", ".join(f"{name} {len(faces):,}" for name, faces in read_pack(out).items())
    print(f"{out}: {out.stat().st_size / 2**20:.1f} MiB ({sizes} faces; PrivateTest left out)")


if __name__ == "__main__":
    main()
