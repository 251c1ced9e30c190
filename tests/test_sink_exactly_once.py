"""ClickHouseSink on real stores (chDB daemon, clickhouse-server 18.16): exactly once under a slow store, back-off
on overload errors (issue #15). The store conditions are real: an INSERT made slow by a sleeping DEFAULT column
and a client timeout shorter than it, a table with a tiny parts_to_throw_insert and merges stopped."""
from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from infra.clickhouse.client import ClickHouseClient, ClickHouseError, connect
from infra.clickhouse.sink import (
    VIEWER_SECONDS,
    ClickHouseSink,
    TableKey,
    batch_token,
    dedup_window,
    is_transient,
)
from tests.fixtures.clickhouse import BACKENDS
from tests.test_clickhouse_store import AUDIENCE_SQL, expected_audience, viewer_rows

FAST_BACKOFF = (0.05, 0.2)


def audience(client: ClickHouseClient) -> dict[tuple, dict]:
    return {(r.pop("screening_id"), r.pop("movie_second")): r for r in client.query_dicts(AUDIENCE_SQL)}


def assert_stored_once(client: ClickHouseClient, rows: list[dict]) -> None:
    """Every row once in viewer_seconds (no merge can hide a duplicate: count(), not FINAL) and the audience view
    counting each once."""
    got = client.query("SELECT event_id, count() FROM viewer_seconds GROUP BY event_id ORDER BY event_id")
    assert got == sorted((row["event_id"], 1) for row in rows)
    expected = expected_audience(rows)
    counted = audience(client)
    assert counted.keys() == expected.keys()
    for key, agg in expected.items():
        for column, value in agg.items():
            assert counted[key][column] == pytest.approx(value, rel=1e-9, abs=1e-9), (key, column)


def test_tables_deduplicate_where_the_server_can(clickhouse):
    window = 1000 if clickhouse.server_version() >= (22, 2) else 0
    for table in ("frame_scores", "viewer_seconds", "audience_seconds"):
        assert dedup_window(clickhouse, table) == window, table


def test_same_token_twice_stores_once_and_the_view_counts_once(embedded_store):
    rows = viewer_rows(np.random.default_rng(11), "scr-token", people=3, seconds=range(6))
    token = batch_token(VIEWER_SECONDS, rows)
    embedded_store.insert("viewer_seconds", rows, dedup_token=token)
    embedded_store.insert("viewer_seconds", rows[::-1][:5] + rows[::-1][5:], dedup_token=token)  # e.g. a late retry
    assert_stored_once(embedded_store, rows)


def test_batch_token_is_the_same_for_the_same_rows_only():
    rows = viewer_rows(np.random.default_rng(12), "scr-t", people=2, seconds=range(3))
    assert batch_token(VIEWER_SECONDS, rows) == batch_token(VIEWER_SECONDS, list(reversed(rows)))
    assert batch_token(VIEWER_SECONDS, rows) != batch_token(VIEWER_SECONDS, rows[1:])
    recaptured = [dict(row, captured_us=row["captured_us"] + 60_000_000) for row in rows]  # the recording replayed
    assert batch_token(VIEWER_SECONDS, rows) != batch_token(VIEWER_SECONDS, recaptured)


class PauseAfterCheck:
    """A real client whose existence check, once answered, waits for the other writer's check: forces the
    interleaving check A, check B, insert A, insert B that two writers of one batch (a worker that lost its
    partitions mid-write and the one that took them over) can hit. Everything else goes to the real client."""

    def __init__(self, client: ClickHouseClient, barrier: threading.Barrier) -> None:
        self._client, self._barrier = client, barrier

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        rows = self._client.query(sql, params)
        if sql.startswith(f"SELECT {', '.join(VIEWER_SECONDS.columns)} FROM viewer_seconds"):
            self._barrier.wait(timeout=60)
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_two_writers_of_one_batch_store_it_once(embedded_settings, embedded_store):
    rows = viewer_rows(np.random.default_rng(13), "scr-race", people=4, seconds=range(5))
    barrier = threading.Barrier(2)
    sinks = [ClickHouseSink(lambda: PauseAfterCheck(connect(embedded_settings), barrier), VIEWER_SECONDS) for _ in range(2)]
    written: list[int] = []
    threads = [threading.Thread(target=lambda s=sink: written.append(s.write(rows))) for sink in sinks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert written == [len(rows), len(rows)]  # both checks found nothing and both sent the batch ...
    assert_stored_once(embedded_store, rows)  # ... and the store kept it once


@pytest.mark.parametrize("backend", BACKENDS)
def test_insert_landing_after_the_client_gave_up_is_stored_once(clickhouse_factory, backend):
    """A slow store: each INSERT takes ~2 s on the server (a DEFAULT that sleeps 0.5 s per row), the client gives up
    after 0.5 s and retries while the first INSERT is still running; it lands later. On 18.16 (no dedup token)
    the sink waits for that INSERT before its existence check; with the token the store drops the repeat."""
    target = clickhouse_factory(backend)
    target.client.execute("ALTER TABLE viewer_seconds ADD COLUMN slow_store UInt8 DEFAULT sleepEachRow(0.5)")
    rows = viewer_rows(np.random.default_rng(14), "scr-slow", people=2, seconds=range(2))
    sink = ClickHouseSink(lambda: connect(target.settings, timeout=0.5), VIEWER_SECONDS, backoff_s=FAST_BACKOFF)
    try:
        sink.write(rows)
    finally:
        sink.close()
    assert sink.retries >= 1  # the client did give up at least once
    deadline = time.monotonic() + 30  # let any INSERT still running land before counting
    while target.client.query("SELECT count() FROM system.processes WHERE query LIKE 'INSERT INTO viewer_seconds%'")[0][0]:
        assert time.monotonic() < deadline, "an INSERT is still running after 30 s"
        time.sleep(0.2)
    assert_stored_once(target.client, rows)


def overloaded_table(client: ClickHouseClient) -> TableKey:
    """A table that refuses inserts with TOO_MANY_PARTS once it holds 3 parts, with merges stopped: 3 parts in."""
    client.execute("CREATE TABLE overload (k String, v UInt32) ENGINE = MergeTree() ORDER BY k "
                   "SETTINGS parts_to_throw_insert = 3, parts_to_delay_insert = 3")
    client.execute("SYSTEM STOP MERGES overload")
    for n in range(3):
        client.insert("overload", [{"k": f"old{n}", "v": n}])
    with pytest.raises(ClickHouseError, match="Too many parts") as refused:
        client.insert("overload", [{"k": "probe", "v": 0}])
    assert refused.value.code == 252 and is_transient(refused.value)
    return TableKey("overload", ("k",))


@pytest.mark.parametrize("backend", BACKENDS)
def test_too_many_parts_backs_off_and_loses_nothing(clickhouse_factory, backend):
    target = clickhouse_factory(backend, migrate=False)
    table = overloaded_table(target.client)
    rows = [{"k": f"new{n}", "v": n} for n in range(50)]
    sink = ClickHouseSink(lambda: connect(target.settings), table, backoff_s=FAST_BACKOFF)
    result: list[Any] = []
    writer = threading.Thread(target=lambda: result.append(sink.write(rows)))
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while sink.retries < 3 and writer.is_alive():
            assert time.monotonic() < deadline, "the sink never retried"
            time.sleep(0.05)
        assert writer.is_alive() and result == [], "the sink gave up (or dropped the rows) on TOO_MANY_PARTS"
        target.client.execute("SYSTEM START MERGES overload")
        target.client.execute("OPTIMIZE TABLE overload FINAL")  # the overload clears
        writer.join(timeout=60)
    finally:
        sink.stop()
        writer.join(timeout=60)
        sink.close()
    assert result == [len(rows)]
    stored = target.client.query("SELECT k, v FROM overload ORDER BY k")
    assert stored == sorted([(f"old{n}", n) for n in range(3)] + [(row["k"], row["v"]) for row in rows])


@pytest.mark.parametrize("backend", BACKENDS)
def test_permanent_errors_still_raise(clickhouse_factory, backend):
    target = clickhouse_factory(backend, migrate=False)
    target.client.execute("CREATE TABLE typed (k String, v UInt32) ENGINE = MergeTree() ORDER BY k")
    sink = ClickHouseSink(lambda: connect(target.settings), TableKey("no_such_table", ("k",)), backoff_s=FAST_BACKOFF)
    with pytest.raises(ClickHouseError, match="no_such_table"):
        sink.write([{"k": "a", "v": 1}])
    sink = ClickHouseSink(lambda: connect(target.settings), TableKey("typed", ("k",)), backoff_s=FAST_BACKOFF)
    with pytest.raises(ClickHouseError, match="nope") as bad_data:  # a row the table cannot take
        sink.write([{"k": "a", "nope": 1}])
    assert not is_transient(bad_data.value) and sink.retries == 0


def test_memory_limit_is_backed_off_and_retried(embedded_settings, embedded_store, caplog):
    """A real MEMORY_LIMIT_EXCEEDED (241): the embedded store's writer session gets a 1-byte memory limit; the sink's
    next query fails with it, the daemon reopens that session (dropping the limit) and the sink's retry stores all."""
    rows = viewer_rows(np.random.default_rng(15), "scr-mem", people=2, seconds=range(3))
    sink = ClickHouseSink(lambda: connect(embedded_settings), VIEWER_SECONDS, backoff_s=FAST_BACKOFF)
    assert sink.write(rows[:1]) == 1  # connected, capabilities read
    embedded_store.execute("SET max_memory_usage = 1")
    with caplog.at_level("WARNING", logger="infra.clickhouse.sink"):
        assert sink.write(rows) == len(rows) - 1
    assert sink.retries >= 1 and "MEMORY_LIMIT_EXCEEDED" in caplog.text
    assert_stored_once(embedded_store, rows)


@pytest.mark.parametrize("code, transient", [(252, True), (243, True), (241, True), (159, True), (60, False), (27, False)])
def test_error_classification(code, transient):
    assert is_transient(ClickHouseError(f"Code: {code}. DB::Exception: ...")) is transient
