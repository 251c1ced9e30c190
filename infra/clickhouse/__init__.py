"""ClickHouse store: embedded chDB daemon, client API, migrations and a real-server launcher.

Components import `connect` from here; the rest lives in the submodules.
"""
from infra.clickhouse.client import ClickHouseClient, ClickHouseError, ClickHouseUnavailable, QueryResult, connect

__all__ = ["ClickHouseClient", "ClickHouseError", "ClickHouseUnavailable", "QueryResult", "connect"]
