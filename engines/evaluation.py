"""Accuracy report: the shipped emotion model and the reference mini-Xception, side by side, on FER test faces.

Protocols (each scores a model whose classes cover the protocol's classes; predictions are the
argmax over the protocol's classes, taken from the model's output by class name):
  ferplus-majority    FER+ majority rule, 8 classes (faces without a majority are dropped)
  ferplus-argmax      FER+ plain argmax rule, 8 classes
  ferplus-majority-7  FER+ majority rule without contempt-labelled faces, the 7 shared classes
                      (the reference has no contempt class; the shipped model's contempt column is dropped)
  fer2013             FER2013's original 7 labels (shipped: contempt column dropped, argmax of the rest)
The shipped model sees our aligned crops (`engines.ferplus.load_splits`); the reference sees its own
framing, the raw FER2013 48x48 pixels resized to 64x64 (`engines.reference.reference_input`); both are
the same faces (same split, same rows). PublicTest is the default; PrivateTest is for the one final
report and needs `--final`.

With `--robustness` the command writes the robustness report instead (`engines.robustness`: the split under
each degradation of `engines.degradations`, and the Yale faces of `engines.yale_faces`).

This module is the command on top: the faces, protocols and scoring it shares with the robustness report live in
`engines.eval_core`.

Run: `python -m engines.evaluation --help` or `moviemotion evaluate --help`.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from engines.eval_core import EVAL_SPLITS, EvalFaces, ScoredModel, load_eval_faces, protocols, run_models, score
from engines.metrics import ClassificationReport, render_confusion, render_per_class, save_confusion_png
from engines.model_files import DEFAULT_MODEL
from engines.model_meta import ModelError, read_metadata
from engines.reference import DEFAULT_CACHE_DIR, REFERENCE_HDF5
from engines.select import BACKENDS, EngineUnavailable

REPO = Path(__file__).resolve().parents[1]


def build_report(faces: EvalFaces, models: list[ScoredModel], limit: int | None) -> tuple[dict, dict[tuple[str, str], ClassificationReport]]:
    """The JSON-able report and the ClassificationReports keyed by (protocol, role)."""
    reports: dict[tuple[str, str], ClassificationReport] = {}
    results = {}
    for protocol in protocols(faces):
        entry = {"description": protocol.description, "classes": list(protocol.classes), "models": {}}
        for model in models:
            report = score(model, protocol)
            if report is None:
                entry["models"][model.role] = None
                continue
            reports[(protocol.name, model.role)] = report
            entry["models"][model.role] = report.to_dict()
        results[protocol.name] = entry
    summary = {
        "split": faces.split,
        "faces": len(faces),
        "limit": limit,
        "models": {m.role: {"model_version": m.model_version, "path": m.path, "framing": m.framing, "classes": list(m.classes)} for m in models},
        "results": results,
    }
    return summary, reports


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def render_summary(summary: dict) -> str:
    """The side-by-side table: one row per protocol, count/accuracy/macro-F1 per model."""
    roles = list(summary["models"])
    lines = [f"# Emotion model evaluation: {summary['split']}", "",
             f"Faces: {summary['faces']}" + (f" (first {summary['limit']} of the split)" if summary["limit"] else ""), ""]
    for role, info in summary["models"].items():
        lines.append(f"- **{role}**: `{info['model_version']}` ({info['path']}); input: {info['framing']}")
    head = "| protocol | " + " | ".join(f"{r} n | {r} accuracy | {r} macro-F1" for r in roles) + " |"
    lines += ["", head, "|" + "---|" * (1 + 3 * len(roles))]
    for name, entry in summary["results"].items():
        cells = []
        for role in roles:
            res = entry["models"][role]
            cells += ["n/a"] * 3 if res is None else [str(res["count"]), _pct(res["accuracy"]), _pct(res["macro_f1"])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(summary: dict, reports: dict[tuple[str, str], ClassificationReport]) -> str:
    """report.md: the summary table, then per-class tables and confusion matrices."""
    roles = list(summary["models"])
    lines = [render_summary(summary)]
    lines += ["", "n/a: the model has no output for one of the protocol's classes (the reference has no contempt)."]
    for name, entry in summary["results"].items():
        lines += ["", f"## {name}: {entry['description']}"]
        for role in roles:
            report = reports.get((name, role))
            if report is None:
                continue
            lines += ["", f"### {role}", "", "```", render_per_class(report), "", render_confusion(report.confusion, report.classes), "```",
                      "", f"![{role} {name}](confusion_{role}_{name}.png)"]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, summary: dict, reports: dict[tuple[str, str], ClassificationReport], progress: bool) -> Path:
    """report.json, report.md, and confusion_<role>_<protocol>.txt/.png under `out_dir`."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for (name, role), report in tqdm(reports.items(), desc="confusion matrices", disable=not progress):
        stem = out_dir / f"confusion_{role}_{name}"
        stem.with_suffix(".txt").write_text(render_confusion(report.confusion, report.classes) + "\n")
        save_confusion_png(report.confusion, report.classes, stem.with_suffix(".png"),
                           f"{role} ({summary['models'][role]['model_version']}) — {name}, {summary['split']}, n={report.count}")
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "report.md").write_text(render_markdown(summary, reports))
    return out_dir


def evaluate(out_dir: Path, split: str = "PublicTest", model_path: Path | None = None, cache_dir: Path = DEFAULT_CACHE_DIR,
             limit: int | None = None, backend: str = "auto", reference_hdf5: Path | None = None, batch: int = 256,
             progress: bool = True) -> dict:
    """Score the models, write the report directory, return the summary (report.json's content)."""
    model_path = Path(model_path) if model_path else DEFAULT_MODEL
    size = read_metadata(model_path).input_size
    faces = load_eval_faces(split, cache_dir, size, limit, progress)
    models = run_models(faces, model_path, backend, reference_hdf5, cache_dir, batch, progress)
    summary, reports = build_report(faces, models, limit)
    write_report(out_dir, summary, reports, progress)
    return summary


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--split", type=click.Choice(EVAL_SPLITS), default="PublicTest", show_default=True,
              help="Test split. PrivateTest is reserved for the one final report (needs --final).")
@click.option("--final", is_flag=True, help="Confirm that this is the final PrivateTest report.")
@click.option("--model", "model_path", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="ONNX emotion model to score. Default: the shipped engines/models/emotion-ferplus.onnx.")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="Engine backend for the model (auto: TensorRT with a CUDA GPU, else ONNX Runtime).")
@click.option("--reference", "reference_hdf5", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Keras mini-Xception .hdf5 to compare with. Default: the shared reference model.")
@click.option("--no-reference", is_flag=True, help="Score only the model, not the reference.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N faces of the split (smoke runs).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report directory. Default: runs/evaluation/<split>.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_CACHE_DIR, show_default=True,
              help="Cache of aligned FER faces and the converted reference model.")
@click.option("--batch", type=click.IntRange(min=1), default=256, show_default=True, help="Faces per inference call.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--robustness", is_flag=True,
              help="Robustness report instead: the split under each degradation (dark, noise, blur, JPEG 30, "
                   "+-15 degree roll, side light) and the Yale faces from ../shared (engines/robustness.py).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the degradations (--robustness).")
@click.option("--no-yale", is_flag=True, help="Leave the Yale faces out of the robustness report.")
def main(split, final, model_path, backend, reference_hdf5, no_reference, limit, out_dir, cache_dir, batch, quiet,
         robustness, seed, no_yale) -> None:
    """Score the emotion model (and the reference mini-Xception) on FER+ / FER2013 test faces.

    Writes report.md, report.json and confusion matrices (text + PNG) to the report directory
    and prints the summary table. With --robustness: robustness.md, robustness.json and one
    confusion PNG per condition and model (default directory runs/evaluation/robustness-<split>).
    """
    if split == "PrivateTest" and not final:
        raise click.UsageError("PrivateTest is touched once, for the final report: add --final (use PublicTest otherwise)")
    reference = None if no_reference else (reference_hdf5 or REFERENCE_HDF5)
    out_dir = out_dir or REPO / "runs" / "evaluation" / (f"robustness-{split}" if robustness else split)
    try:
        if robustness:
            from engines.robustness import YALE_DIR, render_headline, run_robustness

            summary = run_robustness(out_dir, split, model_path, cache_dir, limit, backend, reference, batch, seed,
                                     None if no_yale else YALE_DIR, progress=not quiet)
            text, name = render_headline(summary), "robustness.md"
        else:
            summary = evaluate(out_dir, split, model_path, cache_dir, limit, backend, reference, batch, progress=not quiet)
            text, name = render_summary(summary), "report.md"
    except (ModelError, EngineUnavailable, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(text.rstrip())
    click.echo(f"\nreport: {out_dir / name}")


if __name__ == "__main__":
    main()
