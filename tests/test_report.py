"""`report`: PNG + CSVs for the known screening from the real embedded store; pure helpers."""
from __future__ import annotations

import csv
from datetime import datetime

import matplotlib.image
import pytest

from moviemotion.analytics.catalog import Screening, UnknownScreening, register_screening
from moviemotion.analytics.queries import run_query
from moviemotion.analytics.report import REPORT_STEPS, EmptyScreening, build_report, draw_timeline, label_rows, metrics_lines, mmss, moving_average
from moviemotion.analytics.scenes import read_scene_csv
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
    scenes = read_csv(files.scenes_csv)
    impact = run_query(embedded_store, "scene_impact", screening=known.SCREENING_A)
    assert [float(row["peak_end"]) for row in scenes] == pytest.approx([row["peak_end"] for row in impact])
    assert float(scenes[2]["peak_end"]) == pytest.approx(5 / 12)  # The Twist: (4/6 peak + 1/6 at its end) / 2
    metrics = read_csv(files.metrics_csv)
    assert [row["reaction"] for row in metrics][:3] == ["any", "happiness", "surprise"]
    assert float(metrics[1]["ever_share"]) == pytest.approx(5 / 6)
    norms = {row["figure"]: row for row in read_csv(files.norms_csv)}
    assert (int(norms["engagement"]["at_or_below"]), int(norms["engagement"]["screenings"])) == (2, 3)


def test_report_section_lines(embedded_store):
    known.load(embedded_store)
    metrics = run_query(embedded_store, "audience_metrics", screening=known.SCREENING_A)
    norms = run_query(embedded_store, "screening_norms", screening=known.SCREENING_A)
    impact = run_query(embedded_store, "scene_impact", screening=known.SCREENING_A)
    lines = metrics_lines(metrics, norms, impact)
    assert lines[0].startswith("Engagement 8% of measured viewers per second (peak 67% at 0:36); 100% of 6 viewers reacted at some point")
    assert lines[0].endswith("Norms: engagement at percentile 67% of 3 screenings, 100% of this film's 2 screenings")
    alone = [{**norms[0], "screenings": 1, "film_screenings": 1, "percentile": 1.0, "film_percentile": 1.0}]
    assert metrics_lines(metrics, alone, impact)[0].endswith("percentile 100% of 1 screening, 100% of this film's 1 screening")
    assert lines[1].startswith("Reactions: surprise shown by 100% (mean 2.7%, peak 67% at 1:10); happiness shown by 83%")
    assert lines[2] == "Peak-end impact per scene: Opening 17%; The Joke 33%; The Twist 42%; Farewell 30%"
    assert metrics_lines([], [], []) == ["No measured reactions (rows stored before migration 0004 carry no reaction)."]


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


def test_label_rows_never_overlap():
    # widths 10: 37 and 40 overlap (32..42, 35..45), 10 and 100 are free; a third close label opens a third row
    assert label_rows([40, 10, 37, 100], [10, 10, 10, 10]) == [1, 0, 0, 0]
    assert label_rows([36, 37, 38], [10, 10, 10]) == [0, 1, 2]
    assert label_rows([0, 10, 20], [10, 10, 10], gap=1) == [0, 1, 0]  # 5 + 1 > 5: 10 moves up; 20 fits again
    with pytest.raises(ValueError):
        label_rows([1.0], [])


def test_close_moment_labels_do_not_overlap_in_the_figure():
    """Measured on the rendered figure: many moments within seconds of each other (what the old two-row layout let
    overlap), plus scene titles above them."""
    screening = Screening("s", "f", "Film", "t", datetime(2025, 1, 1), 6)
    timeline = [{"movie_second": s, "measured": 6, **{f"share_{e}": 1.0 if e == "neutral" else 0.0 for e in ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")}} for s in range(120)]
    emotions = ["happiness", "surprise", "sadness", "fear", "contempt", "anger", "disgust"]
    moments = [{"emotion": emotions[i % 7], "movie_second": 30 + 2 * i} for i in range(10)] + [{"emotion": "surprise", "movie_second": 110}]
    fig, texts = draw_timeline(screening, timeline, read_scene_csv(known.SCENES_CSV), moments)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    titles = [t.get_window_extent(renderer) for t in fig.axes[0].texts if t not in texts]
    assert len(titles) == 4
    for i, box in enumerate(boxes):
        for other in boxes[i + 1:] + titles:
            assert not box.overlaps(other), (box, other)
        assert box.y0 >= fig.axes[0].transData.transform((0, 1.0))[1]  # above the 100% line
    import matplotlib.pyplot as plt
    plt.close(fig)
