"""Can any per-viewer reaction rule find Yale sadness with this model? The model's ceiling for issue #13's sad segments.

    python -m benchmarks.yale_sadness_ceiling engines/models/emotion-ferplus-int8.onnx runs/teachers/1.1.0-refit.onnx

A reaction is judged against the viewer's own neutral face (stream_processors/reaction.py), so a sad face can only
be found when the model gives it more sadness than it gives the same person's neutral faces. Per model file and per
Yale person (the product path: YuNet + `align_face`, ONNX Runtime), this prints the sadness probability of the sad
face, of the plain `normal` face (the baseline) and the largest over the neutral variants (side and center light,
glasses, no glasses: the screening's "no reaction" distractors), then counts:
- sad faces whose sadness exceeds every neutral variant of the same person: the most any per-person rule could find
  without also reacting to a distractor (at zero margin);
- sad faces whose excess over the `normal` face reaches the reaction threshold (`--threshold`; by default the
  worker's, from the settings: MOVIEMOTION_REACTION_THRESHOLD, 0.10).
subject04 is left out, as in the Yale screening: its `sad` image is a copy of its `normal` one (Yale Readme).
Reads no FER+ split. Needs ../shared/data/yalefaces.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engines.select import load_engine
from engines.yale_faces import YALE_EXTRA_NEUTRAL, YALE_SUBJECTS, YALE_VARIANTS, load_yale
from producers.yale.script import COPIED_SAD_SUBJECT
from schemas.emotions import EMOTIONS
from schemas.settings import load_settings

SADNESS = EMOTIONS.index("sadness")
NEUTRAL_VARIANTS = tuple(v for v, label in {**YALE_VARIANTS, **YALE_EXTRA_NEUTRAL}.items() if label == "neutral")


def sadness_by_face(names: tuple[str, ...], probs: np.ndarray) -> dict[str, dict[str, float]]:
    """subject -> variant -> the model's sadness probability."""
    table: dict[str, dict[str, float]] = {}
    for name, p in zip(names, probs):
        subject, variant = name.split(".", 1)
        table.setdefault(subject, {})[variant] = float(p[SADNESS])
    return table


def report(model: Path, table: dict[str, dict[str, float]], threshold: float) -> list[str]:
    lines = [f"{model}: sadness probability per person (sad face / normal face / most of the neutral variants)"]
    above_all = reaching = counted = 0
    for subject in YALE_SUBJECTS:
        if subject == COPIED_SAD_SUBJECT:
            continue
        faces = table[subject]
        sad, normal = faces["sad"], faces["normal"]
        most_neutral = max(faces[v] for v in NEUTRAL_VARIANTS)
        counted += 1
        above_all += sad > most_neutral
        reaching += sad - normal >= threshold
        lines.append(f"  {subject}: {sad:.3f} / {normal:.3f} / {most_neutral:.3f}   excess {sad - normal:+.3f}"
                     f"{'   above every neutral variant' if sad > most_neutral else ''}")
    lines.append(f"  sad faces above every neutral variant of the same person: {above_all}/{counted}; "
                 f"excess over the normal face >= {threshold:g}: {reaching}/{counted}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="ONNX emotion model files (float or INT8)")
    parser.add_argument("--threshold", type=float, default=load_settings().reaction_threshold,
                        help="the reaction threshold to count against (default: the worker's setting)")
    args = parser.parse_args()
    yale = load_yale(48, 64, extra=True, progress=False)
    for model in args.models:
        with load_engine("onnxruntime", model) as engine:
            size = engine.metadata.input_size
            if size != yale.aligned.shape[1]:
                raise SystemExit(f"{model}: takes {size} px faces; this benchmark aligns 48 px ones")
            probs = engine.infer(yale.aligned)
        print("\n".join(report(model, sadness_by_face(yale.names, probs), args.threshold)))


if __name__ == "__main__":
    main()
