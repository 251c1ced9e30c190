"""Write untrained student candidates as float and INT8 ONNX files, to time them before training any.

    python -m engines.training.candidates --out-dir runs/candidates --cache-dir .cache
    python benchmarks/engine_throughput.py --batches 1,64 $(ls runs/candidates/*-int8.onnx | sed 's/^/--model /')

Speed depends on the architecture, not on the weights, so random weights (with the INT8 copy calibrated on
real faces, as shipped) time what the trained model will. Prints each candidate's multiply-adds per face.
Needs torch (the `train` extra).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from schemas.emotions import EMOTIONS
from engines.model_meta import ModelMetadata
from engines.quantize import calibration_faces, quantize_model
from engines.training.export import TRAINED_INPUT_SIZE, TRAINED_SCALE, export_onnx
from engines.training.model import EmotionNet, multiply_adds


@dataclass(frozen=True)
class Candidate:
    name: str
    widths: tuple[int, int, int]
    blocks: tuple[int, int, int]
    stem: int = 16
    block: str = "basic"

    def build(self) -> EmotionNet:
        return EmotionNet(num_classes=len(EMOTIONS), widths=self.widths, blocks=self.blocks, stem=self.stem,
                          block=self.block)


CANDIDATES = (
    Candidate("m1-32x122", (32, 64, 128), (1, 2, 2)),  # model 1.x
    Candidate("s-32x111", (32, 64, 128), (1, 1, 1)),
    Candidate("s-32x012", (32, 64, 128), (0, 1, 2)),
    Candidate("s-24x122", (24, 48, 96), (1, 2, 2)),
    Candidate("s-24x112", (24, 48, 96), (1, 1, 2)),
    Candidate("s-32x011", (32, 64, 128), (0, 1, 1)),
    Candidate("s-32x122-stem8", (32, 64, 128), (1, 2, 2), stem=8),
    # Wider than the shipped 0-1-2 at 12x12 and 6x6 only, where an add costs least in INT8 (twelfth session).
    Candidate("w-32x013", (32, 64, 128), (0, 1, 3)),
    Candidate("w-32x022", (32, 64, 128), (0, 2, 2)),
    Candidate("w-32-64-160x012", (32, 64, 160), (0, 1, 2)),
    Candidate("w-32-80-160x012", (32, 80, 160), (0, 1, 2)),
    # Depthwise-separable blocks and transitions (issue #14 asks to time them): the shipped shape, then wider.
    Candidate("d-32x012", (32, 64, 128), (0, 1, 2), block="separable"),
    Candidate("d-48x122", (48, 96, 192), (1, 2, 2), block="separable"),
    Candidate("d-64x122", (64, 128, 256), (1, 2, 2), block="separable"),
    Candidate("d-64x233", (64, 128, 256), (2, 3, 3), block="separable"),
)


def write_candidates(out_dir: Path, cache_dir: Path, candidates: tuple[Candidate, ...] = CANDIDATES) -> list[tuple[Candidate, int, Path]]:
    """(candidate, multiply-adds, INT8 path) per candidate; the float file sits beside the INT8 one."""
    faces = calibration_faces(cache_dir)
    written = []
    for candidate in candidates:
        net = candidate.build().eval()
        metadata = ModelMetadata(EMOTIONS, TRAINED_INPUT_SIZE, TRAINED_SCALE, f"candidate-{candidate.name}")
        float_path = export_onnx(net, out_dir / f"{candidate.name}.onnx", metadata)
        int8_path = quantize_model(float_path, out_dir / f"{candidate.name}-int8.onnx", faces)
        written.append((candidate, multiply_adds(net), int8_path))
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", type=Path, default=Path("runs/candidates"))
    p.add_argument("--cache-dir", type=Path, default=Path(".cache"), help="FER+ aligned-face cache (calibration faces)")
    p.add_argument("--only", nargs="+", metavar="NAME", choices=[c.name for c in CANDIDATES],
                   help="write only these candidates (default: all)")
    args = p.parse_args(argv)
    chosen = tuple(c for c in CANDIDATES if not args.only or c.name in args.only)
    for candidate, macs, path in write_candidates(args.out_dir, args.cache_dir, chosen):
        print(f"{candidate.name:>18}  widths {candidate.widths} blocks {candidate.blocks} stem {candidate.stem:>2} "
              f"{candidate.block:<9}  "
              f"{macs / 1e6:6.1f} M multiply-adds/face  {path}")


if __name__ == "__main__":
    main()
