"""docs/cookbook.md is generated from the named queries: it must match them exactly."""
from __future__ import annotations

from moviemotion.analytics.cookbook import COOKBOOK_PATH, render_cookbook
from moviemotion.analytics.queries import QUERIES


def test_cookbook_is_up_to_date():
    assert COOKBOOK_PATH.read_text() == render_cookbook(), "run `moviemotion cookbook --write`"


def test_cookbook_has_every_question_with_its_sql():
    text = COOKBOOK_PATH.read_text()
    assert len(QUERIES) >= 8
    for query in QUERIES:
        assert f"### {query.question}" in text
        assert query.sql.strip() in text
