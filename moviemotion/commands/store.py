"""`moviemotion sql | migrate | purge`: query the ClickHouse store, apply migrations, delete data."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Iterator

import click

from infra.clickhouse.client import ClickHouseClient, ClickHouseError, ClickHouseUnavailable, QueryResult, connect
from moviemotion.settings import Settings

FORMATS = ("table", "TSV", "CSV", "JSON", "JSONEachRow")


@contextmanager
def _client(settings: Settings) -> Iterator[ClickHouseClient]:
    """A connected client; store errors become one clean CLI error."""
    try:
        with connect(settings) as client:
            yield client
    except (ClickHouseUnavailable, ClickHouseError, TimeoutError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _cell(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def render_table(result: QueryResult) -> str:
    """A readable fixed-width table with a header and a row count."""
    cells = [[_cell(v) for v in row] for row in result.rows]
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(result.columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    body = [line(result.columns), line(["-" * w for w in widths])] + [line(row) for row in cells]
    return "\n".join(body + [f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})"])


def _escape_tsv(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _csv_cell(value) -> str:
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if isinstance(value, str) or any(c in text for c in ',"\n') else text


def render(result: QueryResult, fmt: str) -> str:
    """`result` in one of FORMATS (TSV/CSV/JSON/JSONEachRow follow ClickHouse's layouts)."""
    if fmt == "table":
        return render_table(result)
    if fmt == "TSV":
        return "\n".join("\t".join(_escape_tsv(v) for v in row) for row in result.rows)
    if fmt == "CSV":
        return "\n".join(",".join(_csv_cell(v) for v in row) for row in result.rows)
    dicts = [dict(zip(result.columns, row)) for row in result.rows]
    if fmt == "JSONEachRow":
        return "\n".join(json.dumps(d, default=str) for d in dicts)
    meta = [{"name": n, "type": t} for n, t in zip(result.columns, result.types)]
    return json.dumps({"meta": meta, "data": dicts, "rows": len(dicts)}, default=str, indent=2)


@click.command("sql")
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(FORMATS, case_sensitive=False), default="table", show_default=True, help="Output layout.")
@click.pass_obj
def sql_command(settings: Settings, query: str, fmt: str) -> None:
    """Run QUERY on the store (embedded chDB daemon, or the --clickhouse server) and print the answer.

    QUERY '-' reads the query from stdin. Works while the sink writes: the daemon serializes queries.

    \b
    moviemotion sql "SELECT count() FROM viewer_seconds"
    moviemotion sql --format JSONEachRow "SELECT * FROM audience_seconds LIMIT 5"
    """
    text = sys.stdin.read() if query == "-" else query
    fmt = next(f for f in FORMATS if f.lower() == fmt.lower())
    with _client(settings) as client:
        result = client.result(text)
    if result.columns:
        click.echo(render(result, fmt))


@click.command("migrate")
@click.pass_obj
def migrate_command(settings: Settings) -> None:
    """Apply pending schema migrations (schemas/clickhouse/NNNN_*.sql) to the store; safe to re-run."""
    from infra.clickhouse.migrations import apply_migrations

    with _client(settings) as client:
        applied = apply_migrations(client)
    for label in applied:
        click.echo(f"applied {label}")
    click.echo(f"{len(applied)} migration(s) applied" if applied else "schema up to date")


@click.command("purge")
@click.option("--screening", "screening_id", default=None, help="Delete every row of this screening (all tables with screening_id).")
@click.option("--expired", is_flag=True, help="Delete frame_scores older than --days (retention where the server has no TTL).")
@click.option("--days", type=click.IntRange(min=0), default=30, show_default=True, help="Retention for --expired.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait for the deletes to finish.")
@click.pass_obj
def purge_command(settings: Settings, screening_id: str | None, expired: bool, days: int, timeout: float) -> None:
    """Delete data: one screening (--screening ID) or expired raw scores (--expired [--days N])."""
    from infra.clickhouse.migrations import EXPIRING_TABLE, purge_expired, purge_screening

    if (screening_id is not None) == expired:
        raise click.UsageError("give exactly one of --screening ID or --expired")
    with _client(settings) as client:
        if expired:
            purge_expired(client, days, timeout)
            click.echo(f"deleted {EXPIRING_TABLE} rows older than {days} days")
        else:
            tables = purge_screening(client, screening_id, timeout)
            click.echo(f"deleted screening {screening_id!r} from {', '.join(tables) or 'no tables'}")


def register(group: click.Group) -> None:
    for command in (sql_command, migrate_command, purge_command):
        group.add_command(command)
