"""Exactly-once ClickHouse sink: batched inserts stored once each, also when the store is slow or overloaded.

What each store guarantees (docs/reliability.md, "Exactly once into ClickHouse"):

- Every store: before each attempt `ClickHouseSink.write` asks which of the batch's keys the table already holds
  and inserts only the others (duplicates inside a batch are dropped too). That covers a worker that dies after
  an insert but before its Kafka offsets are committed and replays the batch, whatever its batch boundaries are
  after the restart. ReplacingMergeTree on the same keys is the last safety net (for the tables, not for the
  audience_seconds view, which sums on insert).
- The check alone has a hole: an INSERT that timed out on the client may still land after the retry's check.
  Stores with insert deduplication (ClickHouse 22.2+, the embedded chDB store included, tables migrated by 0006
  with `non_replicated_deduplication_window`) therefore get every insert with `insert_deduplication_token` =
  `batch_token(...)`, a hash of the rows' keys and capture times: a retry, a second writer or a replay of the
  same rows carries the same token and the server stores the block once, in audience_seconds too (the view's
  blocks are deduplicated with it). Found per connection from the server version and the table's settings
  (`dedup_window`).
- clickhouse-server 18.16 has neither the token nor the window. There, after an attempt whose outcome is unknown
  (timeout, lost connection), the sink first waits until that INSERT, named by its query_id, has left
  `system.processes` (it landed or failed by then), and only then checks. That closes the hole for one sink; two
  writers racing on the same rows (a zombie worker and its successor) can still both insert on 18.16.
- Retries: an unreachable store and transient server errors (`TRANSIENT_CODES`: too many parts, disk full,
  memory limit, timeouts ...) back off exponentially (0.5 s doubling to 10 s) and retry until the write
  succeeds or the sink is stopped; the caller's offsets stay uncommitted meanwhile, so no row is dropped. Other
  server errors (bad data, unknown table) raise at once.
"""
from __future__ import annotations

import hashlib
import logging
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from infra.clickhouse.client import ClickHouseClient, ClickHouseError, ClickHouseUnavailable
from infra.clickhouse.migrations import FEATURES

log = logging.getLogger(__name__)

# Server errors that say "not now" rather than "never": the write backs off and retries them.
TRANSIENT_CODES: dict[int, str] = {
    159: "TIMEOUT_EXCEEDED", 160: "TOO_SLOW", 202: "TOO_MANY_SIMULTANEOUS_QUERIES", 203: "NO_FREE_CONNECTION",
    209: "SOCKET_TIMEOUT", 210: "NETWORK_ERROR", 236: "ABORTED", 241: "MEMORY_LIMIT_EXCEEDED",
    242: "TABLE_IS_READ_ONLY", 243: "NOT_ENOUGH_SPACE", 252: "TOO_MANY_PARTS", 285: "TOO_FEW_LIVE_REPLICAS",
    286: "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE", 319: "UNKNOWN_STATUS_OF_INSERT", 394: "QUERY_WAS_CANCELLED",
    439: "CANNOT_SCHEDULE_TASK", 473: "DEADLOCK_AVOIDED", 999: "KEEPER_EXCEPTION",
}
_WINDOW = re.compile(r"\bnon_replicated_deduplication_window\s*=\s*(\d+)")


@dataclass(frozen=True)
class TableKey:
    """Where rows go, which columns identify a row (the first narrows the lookup), and which tell one capture of
    a key from a later re-capture (a republished recording), so a screening purged and processed again within
    the deduplication window is not dropped as a duplicate (ALTER DELETE keeps the block ids)."""

    table: str
    columns: tuple[str, ...]
    capture_columns: tuple[str, ...] = ()


FRAME_SCORES = TableKey("frame_scores", ("screening_id", "person_key", "frame_id"), ("captured_us",))
VIEWER_SECONDS = TableKey("viewer_seconds", ("screening_id", "event_id"), ("captured_us",))


def _key(row: Mapping[str, Any], columns: Sequence[str]) -> tuple:
    return tuple(row[c] for c in columns)


def is_transient(exc: ClickHouseError) -> bool:
    return exc.code in TRANSIENT_CODES


def batch_token(target: TableKey, rows: Sequence[Mapping[str, Any]]) -> str:
    """The insert_deduplication_token of a batch: the same for the same rows in any order (a retry, a replay)."""
    identities = sorted(repr(_key(row, target.columns + target.capture_columns)) for row in rows)
    return hashlib.sha256("\n".join([target.table, *identities]).encode()).hexdigest()


def dedup_window(client: ClickHouseClient, table: str) -> int:
    """How many recent inserts `table` deduplicates by token (0: none). By server version first (18.16 has neither
    insert_deduplication_token nor non_replicated_deduplication_window), then the table's own setting (migration 0006
    sets it where the server has both)."""
    if client.server_version() < FEATURES["insert_dedup_token"]:
        return 0
    rows = client.query("SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = %(t)s",
                        {"t": table})
    match = _WINDOW.search(rows[0][0]) if rows else None
    return int(match.group(1)) if match else 0


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


def running(client: ClickHouseClient, query_id: str) -> bool:
    """Whether the query `query_id` is still executing on the server."""
    return client.query("SELECT count() FROM system.processes WHERE query_id = %(q)s", {"q": query_id})[0][0] > 0


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
        self._dedup: bool | None = None  # whether the connected store deduplicates by token (read once per connection)
        self._target = target
        self._backoff = backoff_s
        self._stopped = threading.Event()
        self._unfinished: str | None = None  # query_id of an INSERT whose outcome is unknown
        self.rows_written = 0
        self.rows_skipped = 0
        self.retries = 0

    def stop(self) -> None:
        self._stopped.set()

    def write(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Store the rows not yet stored; returns how many were inserted. Blocks (with backoff) while the store
        is unavailable or overloaded; raises ClickHouseUnavailable (or the transient ClickHouseError) only once
        stopped, and a permanent ClickHouseError at once."""
        delay = self._backoff[0]
        while True:
            try:
                return self._write_once(rows)
            except ClickHouseUnavailable as exc:
                self._client = None
                failure: Exception = exc
                reason = f"ClickHouse unavailable ({exc})"
            except ClickHouseError as exc:
                if not is_transient(exc):
                    raise
                failure, reason = exc, f"ClickHouse {TRANSIENT_CODES[exc.code]} ({str(exc)[:200]})"
            if self._stopped.is_set():
                raise failure
            self.retries += 1
            log.warning("%s; retrying %s rows for %s in %.1fs", reason, len(rows), self._target.table, delay)
            self._stopped.wait(delay)
            delay = min(delay * 2, self._backoff[1])

    def _wait_unfinished(self, client: ClickHouseClient) -> None:
        """Let an INSERT whose outcome is unknown finish (land or fail) before the existence check."""
        pause = 0.05
        while self._unfinished and running(client, self._unfinished):
            if self._stopped.wait(pause):
                raise ClickHouseUnavailable(f"stopped while INSERT {self._unfinished} was still running")
            pause = min(pause * 2, 1.0)
        self._unfinished = None

    def _write_once(self, rows: Sequence[Mapping[str, Any]]) -> int:
        if self._client is None:
            self._client, self._dedup = self._connect(), None
        if self._dedup is None:
            self._dedup = dedup_window(self._client, self._target.table) > 0
        self._wait_unfinished(self._client)
        unique: dict[tuple, Mapping[str, Any]] = {}
        for row in rows:
            unique.setdefault(_key(row, self._target.columns), row)
        stored = existing_keys(self._client, self._target, list(unique.values()))
        new_rows = [row for key, row in unique.items() if key not in stored]
        if new_rows:
            token = batch_token(self._target, new_rows) if self._dedup else None
            self._unfinished = str(uuid.uuid4())
            self._client.insert(self._target.table, new_rows, dedup_token=token, query_id=self._unfinished)
            self._unfinished = None
        self.rows_written += len(new_rows)
        self.rows_skipped += len(rows) - len(new_rows)
        return len(new_rows)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
