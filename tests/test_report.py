"""`report`: PNG + CSVs for the known screening from the real embedded store; pure helpers."""
from __future__ import annotations

import csv
from datetime import datetime

import matplotlib.image
import pytest

from moviemotion.analytics.catalog import Screening, UnknownScreening, register_screening
from moviemotion.analytics.queries import run_query
from moviemotion.analytics.report import REPORT_STEPS, EmptyScreening, build_report, label_positions, mmss, moving_average
from tests.data import known_screening as known


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_report_files_for_known_screening(embedded_store, tmp_path):
    known.load(embedded_store)
    steps = []
    files = build_report(embedded_store, known.SCREENING_A, tmp_path / "report", on_step=lambda: steps.append(1))
    assert len(steps) == REPORT_STEPS
    image = matplotlib.image.imread(files.png)
    assert image.shape[0] >= 600 and image.shape[1] >= 1400
    assert image[..., :3].std() > 0.1  # not a blank canvas
    timeline = read_csv(files.timeline_csv)
    expected_seconds = sorted({r["movie_second"] for r in known.viewer_rows() if r["screening_id"] == known.SCREENING_A and r["attending"]})
    assert [int(row["movie_second"]) for row in timeline] == expected_seconds
    assert timeline[61]["time"] == "1:01"
    assert [row["title"] for row in read_csv(files.scenes_csv)] == ["Opening", "The Joke", "The Twist", "Farewell"]
    moments = read_csv(files.moments_csv)
    expected = run_query(embedded_store, "resonant_moments", screening=known.SCREENING_A, k=3)
    assert [(row["emotion"], int(row["movie_second"])) for row in moments] == [(m["emotion"], m["movie_second"]) for m in expected]


def test_report_errors(embedded_store, tmp_path):
    with pytest.raises(UnknownScreening, match="unknown screening 'nope'"):
        build_report(embedded_store, "nope", tmp_path)
    register_screening(embedded_store, Screening("empty", "film", "Film", "t", datetime(2025, 1, 1), 10))
    with pytest.raises(EmptyScreening, match="no audience data"):
        build_report(embedded_store, "empty", tmp_path)


def test_mmss_and_moving_average():
    assert [mmss(s) for s in (0, 59.4, 61, 7325)] == ["0:00", "0:59", "1:01", "122:05"]
    assert moving_average([0.0, 3.0, 0.0, 3.0], 3) == [1.5, 1.0, 2.0, 1.5]
    assert moving_average([1.0, 2.0], 1) == [1.0, 2.0]
    with pytest.raises(ValueError):
        moving_average([1.0], 0)


def test_label_positions_stagger_close_labels():
    positions = label_positions([40, 10, 37, 100], span=120)
    assert [x for x, _ in positions] == [40, 10, 37, 100]
    rows = dict(positions)
    assert rows[10] == rows[37] == rows[100] == 1.04 and rows[40] == 1.1
