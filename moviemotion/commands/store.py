"""`moviemotion sql | migrate | purge`: query the ClickHouse store, apply migrations, delete data."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Iterator

import click

from infra.clickhouse.client import ClickHouseClient, ClickHouseError, ClickHouseUnavailable, QueryResult, connect
from infra.clickhouse.store_auth import ANALYST, WRITER
from schemas.settings import Settings

FORMATS = ("table", "TSV", "CSV", "JSON", "JSONEachRow")


@contextmanager
def _client(settings: Settings, user: str = WRITER) -> Iterator[ClickHouseClient]:
    """A connected client (the embedded store's `user`: the writer, or the read-only analyst); store errors become
    one clean CLI error."""
    try:
        with connect(settings, user=user) as client:
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
@click.option("--writer", is_flag=True, help="Embedded store: run as the writer (DDL, ALTER, OPTIMIZE) instead of the read-only analyst.")
@click.pass_obj
def sql_command(settings: Settings, query: str, fmt: str, writer: bool) -> None:
    """Run QUERY on the store (embedded chDB daemon, or the --clickhouse server) and print the answer.

    QUERY '-' reads the query from stdin. On the embedded store it runs as the read-only analyst (no writes, no
    file()/url()/remote(); see docs/security.md) unless --writer. Works while the sink writes.

    \b
    moviemotion sql "SELECT count() FROM viewer_seconds"
    moviemotion sql --format JSONEachRow "SELECT * FROM audience_seconds LIMIT 5"
    """
    text = sys.stdin.read() if query == "-" else query
    fmt = next(f for f in FORMATS if f.lower() == fmt.lower())
    with _client(settings, WRITER if writer else ANALYST) as client:
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
@click.option("--screening", "screening_id", default=None,
              help="Delete this screening: every ClickHouse table with screening_id, and its person states in Kafka.")
@click.option("--expired", is_flag=True, help="Delete frame_scores older than --days (retention where the server has no TTL).")
@click.option("--days", type=click.IntRange(min=0), default=30, show_default=True, help="Retention for --expired.")
@click.option("--skip-kafka", is_flag=True,
              help="--screening on ClickHouse only: the person-state changelog keeps the screening's states (said so).")
@click.option("--processor-group", default=None,
              help="The workers' consumer group, which names the changelog. Default: $MOVIEMOTION_PROCESSOR_GROUP or moviemotion-processor.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait for the deletes to finish.")
@click.pass_obj
def purge_command(settings: Settings, screening_id: str | None, expired: bool, days: int, skip_kafka: bool,
                  processor_group: str | None, timeout: float) -> None:
    """Delete data: one screening (--screening ID) or expired raw scores (--expired [--days N]).

    \b
    --screening ID, in this order:
      1. finds the screening's person keys (ClickHouse, and the person-state changelog read to its end);
      2. deletes its rows from every ClickHouse table with a screening_id column (fails naming any table
         that cannot be purged);
      3. writes a tombstone for each of its keys in the person-state changelog
         (<processor group>-person-states-changelog);
      4. says what Kafka retention removes later (emotion-events, dead-letters and faces have no per-key delete).
    Purge a screening after it ended: a worker still scoring it writes its states again.
    """
    from infra.clickhouse.migrations import EXPIRING_TABLE, PurgeIncomplete, purge_expired, purge_screening, screening_person_keys

    if (screening_id is not None) == expired:
        raise click.UsageError("give exactly one of --screening ID or --expired")
    if expired:
        with _client(settings) as client:
            purge_expired(client, days, timeout)
        click.echo(f"deleted {EXPIRING_TABLE} rows older than {days} days")
        return
    if not screening_id.strip():
        raise click.UsageError("--screening needs a screening id")
    settings = settings.with_overrides(processor_group=processor_group)
    with _client(settings) as client:
        known_keys = screening_person_keys(client, screening_id)
        scan = None if skip_kafka else _scan_person_states(settings, timeout)
        try:
            tables = purge_screening(client, screening_id, timeout)
        except PurgeIncomplete as exc:
            raise click.ClickException(str(exc) + ("" if skip_kafka else "; Kafka untouched, run purge again after")) from None
    click.echo(f"deleted screening {screening_id!r} from {', '.join(tables) or 'no tables'} (ClickHouse)")
    if scan is None:
        click.echo("person-state changelog NOT purged (--skip-kafka): the worker's states of this screening remain")
        return
    _purge_person_states(settings, scan, screening_id, known_keys, timeout)


def _kafka_security(settings: Settings) -> dict:
    from infra.kafka_security import SecurityConfigError, kafka_python_kwargs

    try:
        return kafka_python_kwargs(settings)
    except SecurityConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _scan_person_states(settings: Settings, timeout: float):
    """Read the person-state changelog to its end, before anything is deleted (an unreachable broker stops here)."""
    from infra.kafka_broker import BrokerUnreachable
    from infra.kafka_purge import scan_changelog
    from infra.topics import person_state_changelog
    from kafka.errors import KafkaError

    topic = person_state_changelog(settings)
    try:
        return scan_changelog(settings.kafka_bootstrap, topic, min(timeout, 120.0), _kafka_security(settings))
    except (BrokerUnreachable, KafkaError, TimeoutError) as exc:
        raise click.ClickException(f"cannot read {topic} at {settings.kafka_bootstrap} ({exc}); nothing was deleted. "
                                   "Start the broker, or pass --skip-kafka to purge ClickHouse only") from None


def _purge_person_states(settings: Settings, scan, screening_id: str, known_keys: set[str], timeout: float) -> None:
    """Tombstone the screening's keys in the changelog, then say what retention removes later."""
    from datetime import datetime, timezone

    from kafka.errors import KafkaError

    from infra.kafka_purge import keys_to_tombstone, read_retention, retention_notes, tombstone

    security = _kafka_security(settings)
    topics = settings.topics
    if scan.exists:
        keys = keys_to_tombstone(scan, screening_id, known_keys)
        try:
            written = tombstone(settings.kafka_bootstrap, scan.topic, keys, min(timeout, 120.0), security)
        except KafkaError as exc:
            raise click.ClickException(f"ClickHouse purged, but tombstoning {scan.topic} failed ({exc}); "
                                       "run purge again") from None
        click.echo(f"tombstoned {len(keys)} person key(s) of {screening_id!r} in {scan.topic} ({written} record(s))")
    else:
        click.echo(f"no {scan.topic} topic: no person states to tombstone")
    names = [topics.emotion_events, topics.dead_letters, topics.faces, scan.topic]
    retention = read_retention(settings.kafka_bootstrap, names, 15.0, security)
    click.echo("Kafka removes the rest later:")
    for note in retention_notes(retention, topics.faces, topics.emotion_events, topics.dead_letters, scan.topic,
                                datetime.now(timezone.utc)):
        click.echo(f"  - {note}")


def register(group: click.Group) -> None:
    for command in (sql_command, migrate_command, purge_command):
        group.add_command(command)
