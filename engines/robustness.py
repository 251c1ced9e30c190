"""Robustness report: the shipped model and the reference on FER+ test faces under each degradation of
`engines.degradations`, and on the Yale faces (identity-consistent expressions and side light), side by side.

FER+ part: every condition is applied to the raw 48x48 faces of the split; the shipped model then sees them
through the product's one path (4x upscale, YuNet, `align_face`: `engines.ferplus.align_all`), so a rolled face
has to be un-rolled by our own alignment; the reference sees its own framing of the same degraded pixels
(48x48 resized to 64x64). The clean condition is the aligned cache (`load_splits`, the same path). Scored with
the FER+ majority rule: 8 classes for the shipped model (`ferplus-majority`) and the 7 shared classes for both
(`ferplus-majority-7`, contempt-labelled faces out; the reference has no contempt).

Yale part: the product team's 4-class check, 105 faces, and a second line with glasses/noglasses as neutral
(135), through the product path (`engines.yale_faces`).

Entry point: `python -m engines.evaluation --robustness` (see `engines.evaluation`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.degradations import CONDITIONS, Degradation
from schemas.emotions import EMOTIONS
from engines.eval_core import EvalFaces, Protocol, ScoredModel, load_eval_faces, protocols, run_models, score
from engines.ferplus import align_all
from engines.metrics import ClassificationReport, save_confusion_png
from engines.model_files import DEFAULT_MODEL
from engines.model_meta import read_metadata
from engines.yale_faces import YALE_CLASSES, YALE_DIR, YaleMissing, YaleResult, load_yale, recall_of, score_yale, yale_models

# Which protocol each model is judged on in the table and the confusion PNGs.
MAIN_PROTOCOL = {"shipped": "ferplus-majority", "reference": "ferplus-majority-7"}
TABLE_PROTOCOLS = ("ferplus-majority", "ferplus-majority-7")
FOUND_PROTOCOL = "ferplus-majority-found"
TARGET_DROP_POINTS = 4.0  # model 2.0's target: each degradation costs at most 4 points of FER+ accuracy


@dataclass(frozen=True)
class ConditionResult:
    """One condition's scores: reports keyed by (protocol, role), and how many faces YuNet found."""

    name: str
    description: str
    params: dict
    found: int | None
    faces: int
    reports: dict[tuple[str, str], ClassificationReport]


def clean_found(cache_dir: Path, size: int, split: str, n: int) -> np.ndarray | None:
    """Which of the split's first n faces YuNet found when the aligned cache was built (None if not recorded)."""
    path = Path(cache_dir) / f"ferplus_aligned_{size}.npz"
    if not path.is_file():
        return None
    with np.load(path) as data:
        if "found" not in data.files:
            return None
        return data["found"][data["usage"] == split][:n]


def degrade(faces: EvalFaces, cond: Degradation, size: int, seed: int, progress: bool) -> tuple[EvalFaces, np.ndarray]:
    """The faces with `cond` applied to their raw pixels and re-aligned through the product path; found mask."""
    raw = cond.apply(faces.raw, seed)
    aligned, found = align_all(raw, size, progress)
    return EvalFaces(faces.split, aligned, raw, faces.votes, faces.fer2013_label), found


def score_condition(name: str, description: str, params: dict, faces: EvalFaces, found: np.ndarray | None,
                    models: list[ScoredModel]) -> ConditionResult:
    """The table's protocols scored for every model that can predict their classes; with a found mask also
    `ferplus-majority-found`: the 8-class protocol on the faces YuNet found (the rest fell back to a plain resize),
    which separates what the detector loses from what the classifier loses."""
    chosen = [p for p in protocols(faces) if p.name in TABLE_PROTOCOLS]
    if found is not None:
        base = next(p for p in chosen if p.name == "ferplus-majority")
        chosen.append(Protocol(FOUND_PROTOCOL, base.description + ", faces YuNet found", base.classes,
                               np.where(found, base.labels, -1)))
    reports = {}
    for protocol in chosen:
        for model in models:
            report = score(model, protocol)
            if report is not None:
                reports[(protocol.name, model.role)] = report
    return ConditionResult(name, description, dict(params), None if found is None else int(found.sum()), len(faces), reports)


def run_robustness(out_dir: Path, split: str = "PublicTest", model_path: Path | None = None, cache_dir: Path | None = None,
                   limit: int | None = None, backend: str = "auto", reference_hdf5: Path | None = None, batch: int = 256,
                   seed: int = 0, yale_dir: Path | None = YALE_DIR, conditions: tuple[Degradation, ...] = CONDITIONS,
                   progress: bool = True) -> dict:
    """Score every condition and the Yale set, write the report directory, return the summary (robustness.json).
    Also writes predictions.npz: FER+ votes, each model's probabilities per condition (`<condition>.<role>`, columns
    in `classes.<role>` order) and YuNet's found mask (`<condition>.found`), to rescore without touching the split."""
    from tqdm import tqdm

    from engines.reference import DEFAULT_CACHE_DIR, ReferenceModel, build_reference_onnx

    cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR
    model_path = Path(model_path) if model_path else DEFAULT_MODEL
    size = read_metadata(model_path).input_size
    faces = load_eval_faces(split, cache_dir, size, limit, progress)

    def models_for(f: EvalFaces) -> list[ScoredModel]:
        return run_models(f, model_path, backend, reference_hdf5, cache_dir, batch, progress)

    arrays: dict[str, np.ndarray] = {"votes": faces.votes}  # predictions.npz: rescoring without the split again

    def scored(name: str, description: str, params: dict, f: EvalFaces, found: np.ndarray | None,
               models: list[ScoredModel]) -> ConditionResult:
        for m in models:
            arrays[f"classes.{m.role}"], arrays[f"{name}.{m.role}"] = np.array(m.classes), m.probs
        if found is not None:
            arrays[f"{name}.found"] = found
        return score_condition(name, description, params, f, found, models)

    clean_models = models_for(faces)
    results = [scored("clean", "no degradation (the aligned cache)", {}, faces, clean_found(cache_dir, size, split, len(faces)), clean_models)]
    for cond in tqdm(conditions, desc="conditions", disable=not progress):
        degraded, found = degrade(faces, cond, size, seed, progress)
        results.append(scored(cond.name, cond.description, dict(cond.params), degraded, found, models_for(degraded)))

    yale: dict[str, YaleResult] | str
    if yale_dir is None:
        yale = "not requested (--no-yale)"
    else:
        try:
            reference_onnx = build_reference_onnx(reference_hdf5, cache_dir) if reference_hdf5 is not None else None
            ref_size = ReferenceModel(reference_onnx).input_size if reference_onnx else 64
            yale = {}
            for key, extra in (("yale-105", False), ("yale-135", True)):
                faces_y = load_yale(size, ref_size, yale_dir, extra, progress)
                yale[key] = score_yale(faces_y, yale_models(faces_y, model_path, backend, reference_onnx, batch, progress))
        except YaleMissing as exc:
            yale = f"{exc}"

    summary = build_summary(split, len(faces), limit, seed, clean_models, results, yale)
    write_robustness(out_dir, summary, results, yale, progress)
    np.savez_compressed(Path(out_dir) / "predictions.npz", **arrays)
    return summary


def build_summary(split: str, n: int, limit: int | None, seed: int, models: list[ScoredModel],
                  results: list[ConditionResult], yale: dict[str, YaleResult] | str) -> dict:
    """robustness.json's content: models, conditions x protocol x model, drops vs clean, Yale."""
    clean = results[0] if results else None
    conditions = []
    for res in results:
        entry = {"name": res.name, "description": res.description, "params": res.params, "faces": res.faces,
                 "yunet_found": res.found, "results": {}}
        for (protocol, role), report in res.reports.items():
            base = clean.reports.get((protocol, role)) if clean else None
            entry["results"].setdefault(protocol, {})[role] = {
                **report.to_dict(),
                "drop_points": None if base is None else 100 * (base.accuracy - report.accuracy),
            }
        conditions.append(entry)
    yale_out: dict = {"skipped": yale} if isinstance(yale, str) else {}
    for key, res in ({} if isinstance(yale, str) else yale).items():
        labels = res.faces.labels
        yale_out[key] = {"faces": len(res.faces), "class_counts": {c: labels.count(c) for c in YALE_CLASSES},
                         "models": {role: {**r.to_dict(), "recall": recall_of(r, YALE_CLASSES)} for role, r in res.reports.items()},
                         "predictions": {role: dict(zip(res.faces.names, pred)) for role, pred in res.predicted.items()}}
    return {
        "split": split, "faces": n, "limit": limit, "seed": seed,
        "models": {m.role: {"model_version": m.model_version, "path": m.path, "framing": m.framing} for m in models},
        "target_drop_points": TARGET_DROP_POINTS,
        "conditions": conditions,
        "yale": yale_out,
    }


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _delta(drop_points: float | None) -> str:
    """A drop in points as a signed change (a drop of 2.5 -> -2.5)."""
    return "–" if drop_points is None else f"{round(-drop_points, 1) + 0.0:+.1f}"


def _cell(cond: dict, protocol: str, role: str) -> dict | None:
    return cond["results"].get(protocol, {}).get(role)


def render_fer_table(summary: dict) -> list[str]:
    """Condition rows: YuNet found, then accuracy, change vs clean and macro-F1 per (model, protocol)."""
    columns = [(role, protocol, tag) for role in summary["models"]
               for protocol, tag in (("ferplus-majority", "8"), (FOUND_PROTOCOL, "8 found"), ("ferplus-majority-7", "7"))
               if any(_cell(c, protocol, role) for c in summary["conditions"])]
    head = ["condition", "YuNet found"]
    for role, protocol, tag in columns:
        head += [f"{role} acc {tag}", "Δ"] + ([] if protocol == FOUND_PROTOCOL else [f"{role} macro-F1 {tag}"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cond in summary["conditions"]:
        cells = [cond["name"], "–" if cond["yunet_found"] is None else f"{cond['yunet_found']}/{cond['faces']}"]
        for role, protocol, _tag in columns:
            res = _cell(cond, protocol, role)
            width = 2 if protocol == FOUND_PROTOCOL else 3
            cells += ["–"] * width if res is None else [_pct(res["accuracy"]), _delta(res["drop_points"]), _pct(res["macro_f1"])][:width]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_target(summary: dict) -> list[str]:
    """One line: how many degradations the shipped model keeps within the 2.0 target."""
    drops = {c["name"]: _cell(c, "ferplus-majority", "shipped")["drop_points"] for c in summary["conditions"][1:]
             if _cell(c, "ferplus-majority", "shipped")}
    if not drops:
        return []
    worst = max(drops, key=drops.get)
    met = sum(d <= summary["target_drop_points"] for d in drops.values())
    return [f"Model 2.0 target (each degradation costs at most {summary['target_drop_points']:g} points of FER+ accuracy): "
            f"the shipped model meets it on {met} of {len(drops)} conditions; worst: {worst} ({_delta(drops[worst])} points)."]


def render_yale_table(summary: dict) -> list[str]:
    """(set, model) rows: faces, accuracy, macro-F1, recall of the four Yale classes; or why it was skipped."""
    yale = summary["yale"]
    if "skipped" in yale:
        return [f"Yale faces skipped: {yale['skipped']}"]
    head = ["set", "model", "faces", "accuracy", "macro-F1"] + [f"recall {c}" for c in YALE_CLASSES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, entry in yale.items():
        for role, res in entry["models"].items():
            cells = [key, role, str(entry["faces"]), _pct(res["accuracy"]), _pct(res["macro_f1"])]
            lines.append("| " + " | ".join(cells + [_pct(res["recall"][c]) for c in YALE_CLASSES]) + " |")
    return lines


def render_headline(summary: dict) -> str:
    """What the CLI prints: the FER+ table, the target line and the Yale table."""
    lines = [f"Robustness, {summary['split']} ({summary['faces']} FER+ faces), accuracy % and change in points vs clean:", ""]
    lines += render_fer_table(summary) + [""] + render_target(summary) + ["", "Yale faces:", ""] + render_yale_table(summary)
    return "\n".join(lines)


def render_robustness(summary: dict) -> str:
    """robustness.md: the tables, per-class recall, the conditions' parameters, Yale confusions, PNG links."""
    roles = list(summary["models"])
    lines = [f"# Robustness report: {summary['split']}", "",
             f"FER+ faces: {summary['faces']}" + (f" (first {summary['limit']} of the split)" if summary["limit"] else "")
             + f"; degradation seed {summary['seed']}.", ""]
    for role, info in summary["models"].items():
        lines.append(f"- **{role}**: `{info['model_version']}` ({info['path']}); input: {info['framing']}")
    lines += ["", "## FER+ under degradations", "",
              "Accuracy and macro-F1 in %, Δ = change in points vs clean. `8`: FER+ majority rule, 8 classes "
              "(`ferplus-majority`); `8 found`: the same on the faces YuNet found (the others fall back to a plain "
              "resize, as when the aligned cache is built); `7`: FER+ majority without contempt-labelled faces, the 7 "
              "shared classes (`ferplus-majority-7`; the reference has no contempt).", ""]
    lines += render_fer_table(summary) + [""] + render_target(summary)
    lines += ["", "Degradations (applied to the raw 48x48 face, before the 4x upscale, YuNet and align_face; "
              "the reference gets the same degraded 48x48 pixels resized to 64x64):", ""]
    for cond in summary["conditions"][1:]:
        params = ", ".join(f"{k}={v}" for k, v in cond["params"].items())
        lines.append(f"- `{cond['name']}`: {cond['description']} ({params})")
    lines += ["", "### Per-class recall on FER+ (%; shipped: 8 classes, reference: 7)", ""]
    lines += ["| condition | model | " + " | ".join(EMOTIONS) + " |", "|" + "---|" * (2 + len(EMOTIONS))]
    for cond in summary["conditions"]:
        for role in roles:
            res = _cell(cond, MAIN_PROTOCOL[role], role)
            if res is not None:
                recall = [res["per_class"][c]["recall"] if c in res["per_class"] else None for c in EMOTIONS]
                lines.append(f"| {cond['name']} | {role} | " + " | ".join(_pct(r) for r in recall) + " |")
    lines += ["", "## Yale faces (product path: YuNet + align_face on the full 320x243 image)", ""]
    lines += render_yale_table(summary)
    yale = summary["yale"]
    if "skipped" not in yale:
        lines += ["", "yale-105: 15 people x {normal, centerlight, leftlight, rightlight -> neutral; happy; sad; surprised}; "
                  "yale-135 adds glasses and noglasses as neutral. A prediction is the model's argmax over all its classes "
                  "(the shipped model may answer contempt; the reference cannot); the reference sees the YuNet box x1.25, "
                  "square, at 64x64. subject04.sad is a copy of subject04.normal (counted as sadness)."]
        for key, entry in yale.items():
            for role, res in entry["models"].items():
                lines += ["", f"### {key}, {role}: true class -> predicted", ""]
                cm, classes = np.array(res["confusion"]), res["classes"]
                for c in YALE_CLASSES:
                    row = cm[classes.index(c)]
                    spread = ", ".join(f"{classes[j]} {row[j]}" for j in np.argsort(-row, kind="stable") if row[j])
                    lines.append(f"- {c} ({row.sum()}): {spread}")
    lines += ["", "## Confusion matrices", ""]
    for cond in summary["conditions"]:
        lines += [f"![{role} {cond['name']}](confusion_{role}_{cond['name']}.png)" for role in roles
                  if _cell(cond, MAIN_PROTOCOL[role], role)]
    for key in (k for k in yale if k != "skipped"):
        lines += [f"![{role} {key}](confusion_{role}_{key}.png)" for role in yale[key]["models"]]
    return "\n".join(lines) + "\n"


def write_robustness(out_dir: Path, summary: dict, results: list[ConditionResult], yale: dict[str, YaleResult] | str,
                     progress: bool) -> Path:
    """robustness.json, robustness.md and confusion_<role>_<condition>.png under `out_dir`."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    versions = {role: info["model_version"] for role, info in summary["models"].items()}
    pngs = []
    for res in results:
        for role, protocol in MAIN_PROTOCOL.items():
            if (protocol, role) in res.reports:
                report = res.reports[(protocol, role)]
                pngs.append((report, f"confusion_{role}_{res.name}.png",
                             f"{role} ({versions.get(role, '?')}): {res.name}, {protocol}, {summary['split']}, n={report.count}"))
    for key, res in ({} if isinstance(yale, str) else yale).items():
        for role, report in res.reports.items():
            pngs.append((report, f"confusion_{role}_{key}.png", f"{role} ({versions.get(role, '?')}): {key}, n={report.count}",
                         YALE_CLASSES))
    for report, name, title, *rows in tqdm(pngs, desc="confusion PNGs", disable=not progress):
        save_confusion_png(report.confusion, report.classes, out_dir / name, title, *rows)
    (out_dir / "robustness.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "robustness.md").write_text(render_robustness(summary))
    return out_dir

