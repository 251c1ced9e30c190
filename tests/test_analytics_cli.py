"""The analysts' commands end to end on both stores: register-screening, query, report, cookbook, grafana validate."""
from __future__ import annotations

import csv
import io

from click.testing import CliRunner

from moviemotion.analytics.queries import run_query
from moviemotion.cli import main
from tests.data import known_screening as known


def cli(target, *args):
    return CliRunner().invoke(main, ["--state-dir", str(target.settings.state_dir), "--clickhouse", target.settings.clickhouse_url, *args])


def test_query_and_report_commands(clickhouse_target, tmp_path):
    known.load(clickhouse_target.client)
    result = cli(clickhouse_target, "query", "funniest_seconds", "-p", f"screening={known.SCREENING_A}", "-p", "limit=3", "--format", "CSV")
    assert result.exit_code == 0, result.output
    expected = run_query(clickhouse_target.client, "funniest_seconds", screening=known.SCREENING_A, limit=3)
    assert [int(row[0]) for row in csv.reader(io.StringIO(result.output))] == [r["movie_second"] for r in expected]
    bad = cli(clickhouse_target, "query", "funniest_seconds", "-p", f"screening={known.SCREENING_A}", "-p", "limit=many")
    assert bad.exit_code == 1 and "limit='many' is not a int" in bad.output
    missing = cli(clickhouse_target, "query", "scene_summary")
    assert missing.exit_code == 1 and "missing parameter(s) ['screening']" in missing.output

    report = cli(clickhouse_target, "report", "--screening", known.SCREENING_A, "--out", str(tmp_path / "out"))
    assert report.exit_code == 0, report.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metrics.csv", "moments.csv", "norms.csv", "scenes.csv", "timeline.csv", "timeline.png"]
    unknown = cli(clickhouse_target, "report", "--screening", "nope", "--out", str(tmp_path / "x"))
    assert unknown.exit_code == 1 and "unknown screening 'nope'" in unknown.output


def test_register_screening_command(clickhouse_target):
    args = ["register-screening", "--screening", "s9", "--film", "f9", "--title", "Nine", "--theater", "t9", "--starts-at", "2025-05-01T20:00", "--seats", "120"]
    assert cli(clickhouse_target, *args).exit_code == 0
    assert cli(clickhouse_target, *args[:-1], "150").exit_code == 0  # replaces
    rows = clickhouse_target.client.query("SELECT film_title, seats FROM screenings FINAL WHERE screening_id = 's9'")
    assert rows == [("Nine", 150)]


def test_cookbook_and_grafana_validate_commands():
    runner = CliRunner()
    assert runner.invoke(main, ["cookbook", "--check"]).output == "cookbook up to date\n"
    validated = runner.invoke(main, ["grafana", "validate"])
    assert validated.exit_code == 0 and validated.output.count(": ok") == 2
    push = runner.invoke(main, ["grafana", "push"], env={"GRAFANA_URL": "", "GRAFANA_TOKEN": ""})
    assert push.exit_code == 2 and "Missing option '--url'" in push.output
