"""Grafana dashboards: structure, provisioning, and every panel's SQL (macros expanded) on both real stores."""
from __future__ import annotations

import os
import urllib.request
from datetime import datetime, timedelta

import pytest

from schemas.emotions import EMOTIONS
from moviemotion.analytics.grafana import (
    FORMAT_TIME_SERIES,
    TimeRange,
    dashboard_paths,
    datasource_payload,
    expand_macros,
    iter_queries,
    load_dashboard,
    load_datasource,
    push,
    to_grafana_sql,
    validate_dashboard,
)
from moviemotion.analytics.queries import get_query
from tests.data import known_screening as known

DASHBOARDS = {path.stem: load_dashboard(path) for path in dashboard_paths()}
DATASOURCE_UID = load_datasource()["uid"]
SHARES = ("time", *EMOTIONS)
HEALTH = ("time", "metric", "value")
EXPECTED_COLUMNS = {
    ("Live screening", "Audience reactions (share)"): SHARES,
    ("Live screening", "Reaction per seat (last 15 s)"): ("seat", "current_reaction", "current_intensity", "last_seen"),
    ("Live screening", "Intensity by seat"): ("time", "seat", "intensity"),
    ("Live screening", "Throughput: faces/s and events/s"): HEALTH,
    ("Live screening", "Consumer lag (faces topic)"): HEALTH,
    ("Live screening", "End-to-end latency (p50, p99)"): HEALTH,
    ("Live screening", "variable: screening"): ("screening_id",),
    ("Screening review", "Timeline of feels (movie time)"): SHARES,
    ("Screening review", "Scenes"): get_query("scene_summary").columns,
    ("Screening review", "Resonant moments"): get_query("resonant_moments").columns,
    ("Screening review", "Funniest seconds"): get_query("funniest_seconds").columns,
    ("Screening review", "Reaction by shot scale"): get_query("shot_scale_reaction").columns,
    ("Screening review", "Audience metrics"): get_query("audience_metrics").columns,
    ("Screening review", "Peak-end impact by scene"): get_query("scene_impact").columns,
    ("Screening review", "Norms: percentile among all screenings"): get_query("screening_norms").columns,
    ("Screening review", "annotation: Scenes"): ("time", "timeEnd", "text"),
    ("Screening review", "variable: screening"): ("screening_id",),
}
LIVE_RANGE = TimeRange(known.STARTS_AT[known.SCREENING_A], known.STARTS_AT[known.SCREENING_A] + timedelta(seconds=known.DURATION_S), 5)
REVIEW_RANGE = TimeRange(datetime(1970, 1, 1), datetime(1970, 1, 1, 2, 30), 5)
RANGES = {"Live screening": LIVE_RANGE, "Screening review": REVIEW_RANGE}
VARIABLES = {"screening": known.SCREENING_A, "min_share": "0.1"}
REVIEW_VARIABLES = ("screening", "min_share")


def test_dashboards_are_structurally_sound():
    assert set(DASHBOARDS) == {"live-screening", "screening-review"}
    assert validate_dashboard(DASHBOARDS["live-screening"], DATASOURCE_UID, refresh="5s") == []
    assert validate_dashboard(DASHBOARDS["screening-review"], DATASOURCE_UID) == []
    for doc in DASHBOARDS.values():
        assert "screening" in {v["name"] for v in doc["templating"]["list"]}


def test_validation_reports_broken_dashboards():
    doc = load_dashboard(dashboard_paths()[0])
    doc["panels"][1]["id"] = doc["panels"][0]["id"]
    doc["panels"][0]["gridPos"] = {"x": 20, "y": 0, "w": 8, "h": 4}
    doc["panels"][2]["targets"][0]["datasource"] = {"type": "grafana-clickhouse-datasource", "uid": "other"}
    doc["panels"][3]["targets"][0]["rawSql"] += " AND x = ${nope}"
    doc["panels"][4]["targets"][0]["rawSql"] += " AND s = $screening"
    problems = "\n".join(validate_dashboard(doc, DATASOURCE_UID, refresh="10s"))
    for expected in ("refresh is '5s'", "panel ids must be unique", "bad gridPos", "is not {type", "undefined variable $nope",
                     "puts $screening into SQL unquoted"):
        assert expected in problems


def test_every_query_is_expected():
    queries = {(q.dashboard, q.panel) for doc in DASHBOARDS.values() for q in iter_queries(doc)}
    assert queries == set(EXPECTED_COLUMNS)


def test_review_tables_are_the_named_queries():
    for panel in DASHBOARDS["screening-review"]["panels"]:
        if "Named query" in panel.get("description", ""):
            name = panel["description"].split("`")[1]
            assert panel["targets"][0]["rawSql"] == to_grafana_sql(get_query(name), REVIEW_VARIABLES)


def test_dashboard_variables_are_quoted_so_a_crafted_value_cannot_add_sql(clickhouse):
    """Issue #16: `${threshold}` went into SQL as typed. Every variable is now a quoted string, numeric ones parsed
    by the store: a crafted value fails to parse instead of widening the query."""
    known.load(clickhouse)
    panel = next(p for p in DASHBOARDS["screening-review"]["panels"] if p["title"] == "Resonant moments")
    sql = panel["targets"][0]["rawSql"]
    assert "toFloat64(${min_share:sqlstring})" in sql
    honest = clickhouse.result(expand_macros(sql, REVIEW_RANGE, {**VARIABLES, "min_share": "0.5"}))
    assert [row[0] for row in honest.rows] == ["happiness", "surprise", "surprise"]  # 3/6 at 37; 4/6 at 71, 3/5 at 110
    with pytest.raises(Exception, match="(?i)parse|convert|cannot"):
        clickhouse.result(expand_macros(sql, REVIEW_RANGE, {**VARIABLES, "min_share": "0 OR 1 = 1) --"}))
    for doc in DASHBOARDS.values():
        assert not [p for p in validate_dashboard(doc, DATASOURCE_UID) if "unquoted" in p]


def test_panel_sql_runs_on_both_stores(clickhouse, subtests):
    known.load(clickhouse)
    for doc in DASHBOARDS.values():
        for query in iter_queries(doc):
            with subtests.test(dashboard=query.dashboard, panel=query.panel):
                result = clickhouse.result(expand_macros(query.sql, RANGES[query.dashboard], VARIABLES))
                assert tuple(result.columns) == EXPECTED_COLUMNS[(query.dashboard, query.panel)]
                assert result.rows, "no rows on the known screening"
                if query.format == FORMAT_TIME_SERIES:
                    assert result.types[0].startswith("DateTime")
                if query.panel == "Reaction per seat (last 15 s)":  # a6 walked out at 100 s of 120, last visible at 99
                    assert [row[0] for row in result.rows] == ["A1", "A2", "A3", "A4", "A5"]
                    assert {row[1] for row in result.rows} == {"neutral"}  # a3's resting face is no reaction
                if query.panel == "Norms: percentile among all screenings":
                    assert result.rows[0][:4] == ("engagement", pytest.approx(result.rows[0][1]), 3, 2)
                if query.panel == "annotation: Scenes":
                    assert [row[2] for row in result.rows] == ["1. Opening", "2. The Joke", "3. The Twist", "4. Farewell"]


def test_expand_macros():
    sql = "SELECT $__interval_s FROM t WHERE $__timeFilter(ts) AND s = ${screening:sqlstring} AND k = $k AND e < $__toTime"
    expanded = expand_macros(sql, TimeRange(datetime(2025, 1, 1), datetime(2025, 1, 1, 0, 1), 10), {"screening": "it's", "k": "3"})
    assert expanded == (
        "SELECT 10 FROM t WHERE ts >= toDateTime(1735689600) AND ts <= toDateTime(1735689660) "
        "AND s = 'it\\'s' AND k = 3 AND e < toDateTime(1735689660)"
    )
    with pytest.raises(KeyError, match="template variable \\$missing"):
        expand_macros("SELECT $missing", LIVE_RANGE, {})
    with pytest.raises(KeyError, match="unsupported Grafana macro"):
        expand_macros("SELECT $__timeGroup(ts, 1m)", LIVE_RANGE, {})


def test_datasource_payload_from_provisioning(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    env = {"CLICKHOUSE_HOST": "ch.local", "CLICKHOUSE_PORT": "9440", "CLICKHOUSE_DATABASE": "default",
           "CLICKHOUSE_ANALYST_USER": "analyst", "CLICKHOUSE_ANALYST_PASSWORD": "pw", "CLICKHOUSE_CA_CERT_FILE": str(ca)}
    payload = datasource_payload(env=env)
    assert payload["uid"] == DATASOURCE_UID and payload["type"] == "grafana-clickhouse-datasource"
    assert payload["jsonData"]["port"] == 9440 and payload["jsonData"]["username"] == "analyst"
    assert payload["jsonData"]["secure"] is True and payload["jsonData"]["tlsAuthWithCACert"] is True
    assert payload["secureJsonData"] == {"password": "pw", "tlsCACert": ca.read_text().rstrip("\n")}
    with pytest.raises(KeyError, match="CLICKHOUSE_ANALYST_PASSWORD"):
        datasource_payload(env={k: v for k, v in env.items() if k != "CLICKHOUSE_ANALYST_PASSWORD"})
    with pytest.raises(KeyError, match="CLICKHOUSE_CA_CERT"):
        datasource_payload(env={k: v for k, v in env.items() if k != "CLICKHOUSE_CA_CERT_FILE"})


def _grafana_reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/health", timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


def test_push_to_grafana():
    url, token = os.environ.get("GRAFANA_URL"), os.environ.get("GRAFANA_TOKEN")
    if not url or not token:
        pytest.skip("GRAFANA_URL and GRAFANA_TOKEN not set: no Grafana to push to")
    if not _grafana_reachable(url):
        pytest.skip(f"Grafana at {url} not reachable")
    pushed = push(url, token)
    assert pushed == [f"datasource {DATASOURCE_UID}", *(f"dashboard {doc['uid']}" for doc in DASHBOARDS.values())]
