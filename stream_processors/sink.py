"""Exactly-once ClickHouse sink: batched inserts that skip rows already stored.

A worker that dies after an insert but before its Kafka offsets are committed replays the batch;
`ClickHouseSink.write` asks the store which of the batch's keys it already holds and inserts only
the others (duplicates inside a batch are dropped too), so every row is stored once and the
materialized views that aggregate on insert stay exact. ReplacingMergeTree on the same keys is the
second safety net. When the store is unreachable, `write` backs off and retries until it succeeds
or the sink is stopped: the caller's offsets are not committed meanwhile, so nothing is lost.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from infra.clickhouse.client import ClickHouseClient, ClickHouseUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableKey:
    """Where rows go and which columns identify a row (first column narrows the lookup)."""

    table: str
    columns: tuple[str, ...]


FRAME_SCORES = TableKey("frame_scores", ("screening_id", "person_key", "frame_id"))
VIEWER_SECONDS = TableKey("viewer_seconds", ("screening_id", "event_id"))


def _key(row: Mapping[str, Any], columns: Sequence[str]) -> tuple:
    return tuple(row[c] for c in columns)


def existing_keys(client: ClickHouseClient, target: TableKey, rows: Sequence[Mapping[str, Any]]) -> set[tuple]:
    """Keys of `rows` already present in the table (one query per batch)."""
    if not rows:
        return set()
    cols = target.columns
    sql = (
        f"SELECT {', '.join(cols)} FROM {target.table} "
        f"WHERE {cols[0]} IN %(first)s AND ({', '.join(cols)}) IN %(keys)s"
    )
    params = {"first": tuple({r[cols[0]] for r in rows}), "keys": tuple(_key(r, cols) for r in rows)}
    return {tuple(found) for found in client.query(sql, params)}


class ClickHouseSink:
    """Writes batches of rows to one table, once each; see the module docstring."""

    def __init__(
        self,
        connect: Callable[[], ClickHouseClient],
        target: TableKey,
        backoff_s: tuple[float, float] = (0.5, 10.0),
    ) -> None:
        self._connect = connect
        self._client: ClickHouseClient | None = None
        self._target = target
        self._backoff = backoff_s
        self._stopped = threading.Event()
        self.rows_written = 0
        self.rows_skipped = 0

    def stop(self) -> None:
        self._stopped.set()

    def write(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Store the rows not yet stored; returns how many were inserted. Blocks (with backoff)
        while the store is unavailable; raises ClickHouseUnavailable only once stopped."""
        delay = self._backoff[0]
        while True:
            try:
                return self._write_once(rows)
            except ClickHouseUnavailable as exc:
                self._client = None
                if self._stopped.is_set():
                    raise
                log.warning("ClickHouse unavailable (%s); retrying %s rows in %.1fs", exc, len(rows), delay)
                self._stopped.wait(delay)
                delay = min(delay * 2, self._backoff[1])

    def _write_once(self, rows: Sequence[Mapping[str, Any]]) -> int:
        if self._client is None:
            self._client = self._connect()
        unique: dict[tuple, Mapping[str, Any]] = {}
        for row in rows:
            unique.setdefault(_key(row, self._target.columns), row)
        stored = existing_keys(self._client, self._target, list(unique.values()))
        new_rows = [row for key, row in unique.items() if key not in stored]
        if new_rows:
            self._client.insert(self._target.table, new_rows)
        self.rows_written += len(new_rows)
        self.rows_skipped += len(rows) - len(new_rows)
        return len(new_rows)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

