"""The read-only analyst account: a readonly users.xml user on the real 18.16 server; SQL access control
is refused with a clear error where the store lacks it (18.16, the embedded store)."""
from __future__ import annotations

import pytest

from infra.clickhouse.client import ClickHouseError, NativeClient
from infra.clickhouse.local_server import ClickHouseServerProcess, ServerUser, find_server_binary
from infra.clickhouse.migrations import apply_migrations
from moviemotion.analytics.access import AccessControlUnsupported, analyst_statements, create_analyst
from moviemotion.analytics.queries import run_query
from tests.data import known_screening as known


@pytest.mark.clickhouse_server
def test_readonly_analyst_user_on_server(tmp_path):
    if find_server_binary() is None:
        pytest.skip("clickhouse-server not installed")
    users = (ServerUser("default"), ServerUser("analyst", "s3cret", profile="readonly"))
    with ClickHouseServerProcess(tmp_path / "server", users=users).start() as server:
        with NativeClient(server.url) as admin:
            apply_migrations(admin)
            known.load(admin)
        with NativeClient(server.url_for("analyst")) as analyst:
            assert [r["scene_no"] for r in run_query(analyst, "scene_summary", screening=known.SCREENING_A)] == [1, 2, 3, 4]
            with pytest.raises(ClickHouseError, match="readonly"):
                analyst.execute("CREATE TABLE nope (x UInt8) ENGINE = Memory")
            with pytest.raises(ClickHouseError, match="readonly"):
                analyst.insert("screenings", [{"screening_id": "x"}])


def test_sql_access_control_refused_where_missing(clickhouse):
    with pytest.raises(AccessControlUnsupported, match="users.xml|no accounts"):
        create_analyst(clickhouse, "default", "analyst_ro", "pw")


def test_analyst_statements():
    statements = analyst_statements("default", "analyst_ro", "it's")
    assert statements[1] == "GRANT SELECT ON default.* TO analyst"
    assert "BY 'it\\'s'" in statements[2] and "readonly = 1" in statements[2]
    with pytest.raises(ValueError, match="plain identifier"):
        analyst_statements("default; DROP", "u", "p")
