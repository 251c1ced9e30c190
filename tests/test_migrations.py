"""Migrations on both real stores (chDB and clickhouse-server 18.16): order, idempotence, version variants."""
from __future__ import annotations

import pytest

from infra.clickhouse.client import ClickHouseError
from infra.clickhouse.migrations import (
    CORE_TABLES,
    FEATURES,
    MIGRATIONS_DIR,
    applied_migrations,
    apply_migrations,
    discover,
    existing_tables,
    render,
    statements,
    supports,
)
from tests.fixtures.clickhouse import BACKENDS

TTL_SQL = """-- a comment
CREATE TABLE IF NOT EXISTS t (d DateTime) ENGINE = MergeTree() ORDER BY d
-- requires: ttl
TTL d + INTERVAL 1 DAY
-- end
;
CREATE TABLE IF NOT EXISTS u (x UInt8) ENGINE = MergeTree() ORDER BY x;
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrations_apply_in_order_once(clickhouse_factory, backend):
    client = clickhouse_factory(backend, migrate=False).client
    labels = [m.label for m in discover(MIGRATIONS_DIR)]

    assert apply_migrations(client) == labels
    assert apply_migrations(client) == []
    assert applied_migrations(client) == labels
    recorded = client.query("SELECT version, count() FROM schema_migrations GROUP BY version ORDER BY version")
    assert recorded == [(m.version, 1) for m in discover(MIGRATIONS_DIR)]
    assert set(CORE_TABLES) | {"audience_seconds_mv"} <= existing_tables(client)


def test_frame_scores_ttl_only_where_supported(clickhouse):
    ddl = clickhouse.query("SHOW CREATE TABLE frame_scores")[0][0]
    assert ("TTL" in ddl) == supports("ttl", clickhouse.server_version())


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_migration_is_not_recorded_and_reruns(clickhouse_factory, backend, tmp_path):
    client = clickhouse_factory(backend, migrate=False).client
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE IF NOT EXISTS good (x UInt8) ENGINE = MergeTree() ORDER BY x;\n")
    broken = tmp_path / "0002_broken.sql"
    broken.write_text("CREATE TABLE IF NOT EXISTS broken (x NoSuchType) ENGINE = MergeTree() ORDER BY x;\n")

    with pytest.raises(ClickHouseError, match="NoSuchType"):
        apply_migrations(client, tmp_path)
    assert applied_migrations(client) == ["0001_good"]

    broken.write_text("CREATE TABLE IF NOT EXISTS broken (x UInt8) ENGINE = MergeTree() ORDER BY x;\n")
    assert apply_migrations(client, tmp_path) == ["0002_broken"]
    assert {"good", "broken"} <= existing_tables(client)


@pytest.mark.parametrize("version", [(18, 16, 1), FEATURES["ttl"], (26, 9, 2, 1)])
def test_requires_block_follows_server_version(version):
    rendered = render(TTL_SQL, version)
    assert ("TTL d" in rendered) == (version >= FEATURES["ttl"])
    assert "--" not in rendered
    assert len(statements(rendered)) == 2


@pytest.mark.parametrize(
    "sql, message",
    [
        ("-- requires: teleport\nX\n-- end\n", "unknown feature 'teleport'"),
        ("-- requires: ttl\nX\n", "never closed"),
        ("X\n-- end\n", "without `-- requires:`"),
        ("-- requires: ttl\n-- requires: ttl\n-- end\n", "do not nest"),
    ],
)
def test_bad_requires_blocks_are_rejected(sql, message):
    with pytest.raises(ValueError, match=message):
        render(sql, (26, 9))


def test_discover_rejects_bad_file_names_and_duplicate_versions(tmp_path):
    (tmp_path / "0001_a.sql").write_text("")
    (tmp_path / "0001_b.sql").write_text("")
    with pytest.raises(ValueError, match="used twice"):
        discover(tmp_path)
    (tmp_path / "0001_b.sql").unlink()
    (tmp_path / "2_Bad-Name.sql").write_text("")
    with pytest.raises(ValueError, match="not NNNN_name.sql"):
        discover(tmp_path)
