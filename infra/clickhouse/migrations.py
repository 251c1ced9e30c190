"""Schema migrations (schemas/clickhouse/NNNN_name.sql, applied in order, recorded) and retention purges.

Version awareness: lines between `-- requires: FEATURE` and `-- end` are kept only when the server
supports FEATURE (see FEATURES); everything else is SQL both chDB (ClickHouse 26.x) and 18.16 accept.
Statements end with `;` at the end of a line. See schemas/clickhouse/README.md.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import schemas
from infra.clickhouse.client import ClickHouseClient

MIGRATIONS_DIR = Path(schemas.__file__).resolve().parent / "clickhouse"
CORE_TABLES = ("frame_scores", "viewer_seconds", "audience_seconds")
EXPIRING_TABLE = "frame_scores"  # raw per-frame scores expire; per-second tables are kept
# feature -> first server version that supports it (insert_dedup_token: the insert_deduplication_token setting for
# non-replicated MergeTree tables with non_replicated_deduplication_window; infra/clickhouse/sink.py)
FEATURES: dict[str, tuple[int, ...]] = {"ttl": (19, 6), "insert_dedup_token": (22, 2)}

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_REQUIRES = re.compile(r"^\s*--\s*requires:\s*(\w+)\s*$")
_END = re.compile(r"^\s*--\s*end\s*$")
_COMMENT = re.compile(r"^\s*--")
_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)

_CREATE_RECORD = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, applied_at DateTime DEFAULT now()) "
    "ENGINE = MergeTree() ORDER BY version"
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The NNNN_name.sql files of `directory`, in version order (a version used twice is an error)."""
    found: dict[int, Migration] = {}
    for path in sorted(Path(directory).glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file name {path.name!r} is not NNNN_name.sql (lowercase name)")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"migration version {version:04d} used twice: {found[version].path.name}, {path.name}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def supports(feature: str, server_version: tuple[int, ...]) -> bool:
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r} in `-- requires:` (known: {', '.join(sorted(FEATURES))})")
    return server_version >= FEATURES[feature]


def render(sql: str, server_version: tuple[int, ...]) -> str:
    """The SQL with `-- requires:` blocks kept or dropped for this server, comment lines removed."""
    kept: list[str] = []
    block: str | None = None
    for number, line in enumerate(sql.splitlines(), 1):
        requires = _REQUIRES.match(line)
        if requires:
            if block is not None:
                raise ValueError(f"line {number}: `-- requires:` blocks do not nest")
            block = requires.group(1)
            supports(block, server_version)
        elif _END.match(line):
            if block is None:
                raise ValueError(f"line {number}: `-- end` without `-- requires:`")
            block = None
        elif not _COMMENT.match(line) and (block is None or supports(block, server_version)):
            kept.append(line)
    if block is not None:
        raise ValueError(f"`-- requires: {block}` block is never closed with `-- end`")
    return "\n".join(kept)


def statements(sql: str) -> list[str]:
    """Split rendered SQL on `;` at line ends."""
    return [part.strip() for part in _STATEMENT_END.split(sql) if part.strip()]


def existing_tables(client: ClickHouseClient) -> set[str]:
    return {row[0] for row in client.query("SELECT name FROM system.tables WHERE database = currentDatabase()")}


def applied_migrations(client: ClickHouseClient) -> list[str]:
    """Labels (NNNN_name) of the migrations recorded in schema_migrations, in order."""
    if "schema_migrations" not in existing_tables(client):
        return []
    rows = client.query("SELECT version, any(name) FROM schema_migrations GROUP BY version ORDER BY version")
    return [f"{version:04d}_{name}" for version, name in rows]


def apply_migrations(client: ClickHouseClient, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations of `directory` in order; return the labels applied now."""
    pending = discover(directory)
    client.execute(_CREATE_RECORD)
    done = {row[0] for row in client.query("SELECT DISTINCT version FROM schema_migrations")}
    server_version = client.server_version()
    applied = []
    for migration in pending:
        if migration.version in done:
            continue
        for statement in statements(render(migration.path.read_text(), server_version)):
            client.execute(statement)
        client.insert("schema_migrations", [{"version": migration.version, "name": migration.name}])
        applied.append(migration.label)
    return applied


def wait_for_mutations(client: ClickHouseClient, tables: list[str], timeout: float = 60.0) -> None:
    """Block until the ALTER ... DELETE mutations of `tables` are done (TimeoutError after `timeout`)."""
    deadline = time.monotonic() + timeout
    sql = "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND table IN %(tables)s AND is_done = 0"
    while client.query(sql, {"tables": tuple(tables)})[0][0]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"mutations on {', '.join(tables)} not done after {timeout:.0f}s (see system.mutations)")
        time.sleep(0.1)


def purge_expired(client: ClickHouseClient, days: int, timeout: float = 60.0) -> None:
    """Delete frame_scores rows stored more than `days` days ago (for servers without TTL, or sooner): the TTL's rule
    (migration 0005), which counts from storing, not capture, so a recording processed late keeps its rows."""
    if days < 0:
        raise ValueError(f"days must be >= 0, got {days}")
    client.execute(f"ALTER TABLE {EXPIRING_TABLE} DELETE WHERE inserted_at < now() - INTERVAL %(days)s DAY", {"days": int(days)})
    wait_for_mutations(client, [EXPIRING_TABLE], timeout)


# Engines whose tables hold no rows of their own (a materialized view's rows are in its TO table or its
# `.inner` table, which is listed as a table of its own).
ROWLESS_ENGINES = ("View", "MaterializedView", "Null")


class PurgeIncomplete(RuntimeError):
    """Some tables with a screening_id column cannot be purged by ALTER ... DELETE (not MergeTree)."""

    def __init__(self, screening_id: str, deleted: list[str], refused: dict[str, str]) -> None:
        listed = ", ".join(f"{table} (engine {engine})" for table, engine in sorted(refused.items()))
        super().__init__(f"screening {screening_id!r} deleted from {', '.join(deleted) or 'no tables'}, but NOT from "
                         f"{listed}: ALTER DELETE needs a MergeTree table; delete those rows by hand or drop the table")
        self.deleted = deleted
        self.refused = refused


def _quoted(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _tables_with_columns(client: ClickHouseClient, *columns: str) -> dict[str, str]:
    """{table: engine} of every table of the current database (any engine) that has all of `columns`."""
    rows = client.query(
        "SELECT name, engine FROM system.tables WHERE database = currentDatabase() AND name IN "
        "(SELECT table FROM system.columns WHERE database = currentDatabase() AND name IN %(columns)s "
        "GROUP BY table HAVING count() = %(n)s) ORDER BY name",
        {"columns": tuple(columns), "n": len(columns)},
    )
    return {name: engine for name, engine in rows}


def screening_tables(client: ClickHouseClient) -> list[str]:
    """The MergeTree tables of the current database that have a screening_id column (those purge deletes from)."""
    return [name for name, engine in _tables_with_columns(client, "screening_id").items() if engine.endswith("MergeTree")]


def screening_person_keys(client: ClickHouseClient, screening_id: str) -> set[str]:
    """The person keys of `screening_id` in every table with screening_id and person_key columns (views skipped)."""
    keys: set[str] = set()
    for table, engine in _tables_with_columns(client, "screening_id", "person_key").items():
        if engine not in ROWLESS_ENGINES:
            rows = client.query(f"SELECT DISTINCT person_key FROM {_quoted(table)} WHERE screening_id = %(s)s",
                                {"s": screening_id})
            keys.update(row[0] for row in rows)
    return keys


def purge_screening(client: ClickHouseClient, screening_id: str, timeout: float = 60.0) -> list[str]:
    """Delete every row of `screening_id` from every table that has a screening_id column; return those tables.

    Every table of the current database with that column counts, whatever its engine: MergeTree tables are
    purged with ALTER ... DELETE (and waited for); views hold no rows; any other engine cannot be purged that
    way, so after the others are done PurgeIncomplete names it (never a silent skip)."""
    if not screening_id:
        raise ValueError("screening_id must not be empty")
    found = _tables_with_columns(client, "screening_id")
    tables = [name for name, engine in found.items() if engine.endswith("MergeTree")]
    refused = {name: engine for name, engine in found.items()
               if not engine.endswith("MergeTree") and engine not in ROWLESS_ENGINES}
    for table in tables:
        client.execute(f"ALTER TABLE {_quoted(table)} DELETE WHERE screening_id = %(screening_id)s",
                       {"screening_id": screening_id})
    if tables:
        wait_for_mutations(client, tables, timeout)
    if refused:
        raise PurgeIncomplete(screening_id, tables, refused)
    return tables
