"""The soak's rate comes from the lowest of its capacity readings (benchmarks/soak.py): one high reading of a
seconds-long backlog drain once set a rate above what the worker could hold, and the short soak failed."""
from __future__ import annotations

import pytest

from benchmarks.soak import SoakReport, soak_rate


def test_the_soak_rate_is_a_share_of_the_lowest_capacity_reading():
    assert soak_rate([852.0, 700.0], 0.8) == pytest.approx(560.0)
    assert soak_rate([700.0, 852.0], 0.8) == pytest.approx(560.0)
    assert soak_rate([400.0], 0.5) == pytest.approx(200.0)


def test_a_soak_without_a_capacity_reading_is_refused():
    with pytest.raises(ValueError, match="no capacity reading"):
        soak_rate([], 0.8)


def test_the_report_names_every_reading_and_uses_the_lowest():
    report = SoakReport([852.0, 700.0], soak_rate([852.0, 700.0], 0.8), 60.0)
    assert report.capacity_faces_per_s == 700.0
    assert report.lines()[0] == "capacity (backlog drain):     700.0 faces/s, the lowest of 852.0, 700.0"
    assert report.lag_limit == pytest.approx(5600.0)
