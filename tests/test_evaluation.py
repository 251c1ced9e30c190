"""Evaluation: label protocols, class projection, and the CLI end to end on 300 PublicTest faces
with the shipped model and the reference."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from schemas.emotions import EMOTIONS
from engines.eval_core import EvalFaces, ScoredModel, project, protocols, score
from engines.evaluation import main
from engines.ferplus import FER2013_LABELS
from moviemotion.cli import main as moviemotion_main

LIMIT = 300


def faces_with_votes(votes: list[list[int]], fer2013: list[int]) -> EvalFaces:
    n = len(votes)
    blank = np.zeros((n, 48, 48), np.uint8)
    return EvalFaces("PublicTest", blank, blank, np.array(votes, np.int16), np.array(fer2013))


def test_protocol_labels_by_hand():
    # columns: neutral happiness surprise sadness anger disgust fear contempt unknown NF
    faces = faces_with_votes(
        [
            [6, 4, 0, 0, 0, 0, 0, 0, 0, 0],  # neutral, majority and argmax
            [4, 4, 1, 1, 0, 0, 0, 0, 0, 0],  # tie 4/4: no majority; argmax -> neutral (first)
            [0, 0, 0, 0, 0, 0, 0, 9, 1, 0],  # contempt: kept on 8 classes, dropped on 7
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face: dropped everywhere on FER+
            [0, 1, 0, 0, 8, 0, 0, 0, 1, 0],  # anger (single votes are noise)
        ],
        [6, 3, 0, 1, 0],
    )
    by_name = {p.name: p for p in protocols(faces)}
    idx = {name: EMOTIONS.index(name) for name in EMOTIONS}
    assert by_name["ferplus-majority"].labels.tolist() == [idx["neutral"], -1, idx["contempt"], -1, idx["anger"]]
    assert by_name["ferplus-argmax"].labels.tolist() == [idx["neutral"], idx["neutral"], idx["contempt"], -1, idx["anger"]]
    seven = by_name["ferplus-majority-7"]
    assert "contempt" not in seven.classes and len(seven.classes) == 7
    assert seven.labels.tolist() == [seven.classes.index("neutral"), -1, -1, -1, seven.classes.index("anger")]
    assert by_name["fer2013"].classes == FER2013_LABELS and by_name["fer2013"].labels.tolist() == [6, 3, 0, 1, 0]


def test_project_maps_columns_by_name():
    probs = np.arange(16, dtype=np.float32).reshape(2, 8)  # column j holds j (+8 on row 2)
    mapped = project(probs, EMOTIONS, FER2013_LABELS)
    assert mapped[0].tolist() == [EMOTIONS.index(name) for name in FER2013_LABELS]
    assert project(probs[:, :7], FER2013_LABELS, EMOTIONS) is None  # 7 classes cannot cover 8


def test_score_drops_contempt_column_and_unlabelled_faces():
    faces = faces_with_votes([[9, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 9, 0, 0, 0, 0, 0, 0, 0, 0], [0] * 9 + [10]], [6, 3, 6])
    # Face 0: contempt wins overall, neutral wins among the 7 shared classes.
    probs = np.array([[0.3, 0.1, 0, 0, 0, 0, 0, 0.6], [0, 1, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]], np.float32)
    shipped = ScoredModel("shipped", "t", "-", "-", EMOTIONS, probs)
    by_name = {p.name: p for p in protocols(faces)}
    assert score(shipped, by_name["ferplus-majority"]).accuracy == pytest.approx(0.5)
    seven = score(shipped, by_name["ferplus-majority-7"])
    assert seven.count == 2 and seven.accuracy == 1.0
    assert score(shipped, by_name["fer2013"]).accuracy == 1.0
    reference = ScoredModel("reference", "r", "-", "-", FER2013_LABELS, probs[:, :7])
    assert score(reference, by_name["ferplus-majority"]) is None


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluation")
    result = CliRunner().invoke(main, ["--limit", str(LIMIT), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "| ferplus-majority |" in result.output
    return out


def test_cli_writes_report_with_sane_numbers(report_dir):
    summary = json.loads((report_dir / "report.json").read_text())
    assert summary["split"] == "PublicTest" and summary["faces"] == LIMIT
    assert set(summary["models"]) == {"shipped", "reference"}
    results = summary["results"]
    for name, entry in results.items():
        for role, res in entry["models"].items():
            if res is None:
                continue
            cm = np.array(res["confusion"])
            assert cm.sum() == res["count"] <= LIMIT
            assert res["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
            assert 0.0 < res["macro_f1"] <= 1.0
            assert (report_dir / f"confusion_{role}_{name}.png").stat().st_size > 1000
            assert (report_dir / f"confusion_{role}_{name}.txt").is_file()
    # The reference cannot say contempt: no 8-class figures, but 7-class ones on the same faces.
    assert results["ferplus-majority"]["models"]["reference"] is None
    shipped7, ref7 = (results["ferplus-majority-7"]["models"][r] for r in ("shipped", "reference"))
    contempt = results["ferplus-majority"]["models"]["shipped"]["per_class"]["contempt"]["support"]
    assert shipped7["count"] == ref7["count"] == results["ferplus-majority"]["models"]["shipped"]["count"] - contempt
    assert results["fer2013"]["models"]["shipped"]["count"] == results["fer2013"]["models"]["reference"]["count"] == LIMIT
    # Far above chance (1/8, 1/7) for both models.
    assert results["ferplus-majority"]["models"]["shipped"]["accuracy"] > 0.6
    assert results["fer2013"]["models"]["reference"]["accuracy"] > 0.5
    report_md = (report_dir / "report.md").read_text()
    assert "| protocol |" in report_md and "![shipped ferplus-majority](confusion_shipped_ferplus-majority.png)" in report_md


def test_private_test_needs_final():
    result = CliRunner().invoke(main, ["--split", "PrivateTest", "--limit", "5"])
    assert result.exit_code == 2 and "--final" in result.output


def test_bad_model_file_is_one_clear_error(tmp_path):
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    result = CliRunner().invoke(main, ["--model", str(bogus), "--limit", "5", "--out", str(tmp_path / "r"), "--quiet"])
    assert result.exit_code == 1 and "bogus.onnx" in result.output and "Traceback" not in result.output


def test_commands_are_on_the_moviemotion_cli():
    for command in ("evaluate", "benchmark"):
        result = CliRunner().invoke(moviemotion_main, ["engine", command, "--help"])
        assert result.exit_code == 0 and "reference" in result.output
