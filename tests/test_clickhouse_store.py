"""The ClickHouse store on real parts: the chDB daemon and clickhouse-server 18.16 (core tables, MV, purge, CLI)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from schemas.emotions import EMOTIONS
from infra.clickhouse.client import ClickHouseError, ClickHouseUnavailable, HttpClient, NativeClient, connect
from infra.clickhouse.embedded_server import read_store_info
from infra.clickhouse.local_server import ClickHouseServerProcess
from infra.clickhouse.migrations import CORE_TABLES, apply_migrations, purge_expired, purge_screening
from infra.clickhouse.service import start_store, stop_store, store_status
from infra.clickhouse.store_auth import WRITER, store_password
from moviemotion.cli import main as cli
from schemas.settings import load_settings
from tests.fixtures.clickhouse import require_server_binary

MOVIEMOTION = Path(sys.executable).with_name("moviemotion")  # the installed console script
NOW = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)


def frame_rows(rng, screening: str, people: int, frames: int, captured: datetime) -> list[dict]:
    rows = []
    for person in range(people):
        for frame in range(frames):
            at = captured + timedelta(seconds=frame / 10)
            probs = rng.dirichlet(np.ones(len(EMOTIONS)))
            rows.append(
                {
                    "screening_id": screening, "theater_id": "t1", "camera_id": f"cam{person % 2}", "seat_id": f"A{person}",
                    "person_key": f"{screening}/p{person}", "track_id": person, "frame_id": frame,
                    "captured_us": int(at.replace(tzinfo=timezone.utc).timestamp() * 1_000_000), "captured_at": at.replace(microsecond=0),
                    "movie_ts": frame / 10, **{f"p_{e}": float(p) for e, p in zip(EMOTIONS, probs)},
                    "yaw": float(rng.normal(0, 10)), "pitch": float(rng.normal(0, 5)),
                    "detection_score": float(rng.uniform(0.6, 1)), "model_version": "test-1",
                }
            )
    return rows


def viewer_rows(rng, screening: str, people: int, seconds: range) -> list[dict]:
    rows = []
    for person in range(people):
        for second in seconds:
            probs = rng.dirichlet(np.ones(len(EMOTIONS)))
            intensities = rng.uniform(0, 1, len(EMOTIONS))
            visible = int(rng.uniform() < 0.9)
            rows.append(
                {
                    "event_id": f"{screening}/p{person}|{second}", "screening_id": screening, "theater_id": "t1",
                    "camera_id": "cam0", "seat_id": f"A{person}", "person_key": f"{screening}/p{person}",
                    "movie_second": second, "captured_us": (1_700_000_000 + second) * 1_000_000,
                    "captured_at": NOW + timedelta(seconds=second), "frames": int(rng.integers(1, 15)),
                    "visible": visible, "attending": int(visible and rng.uniform() < 0.8), "baseline_ready": 1,
                    "dominant": EMOTIONS[int(np.argmax(probs))],
                    **{f"p_{e}": float(p) for e, p in zip(EMOTIONS, probs)},
                    **{f"i_{e}": float(i) for e, i in zip(EMOTIONS, intensities)},
                    "intensity": float(intensities.max()), "valence": float(rng.uniform(-1, 1)),
                    "arousal": float(rng.uniform(0, 1)), "model_version": "test-1",
                }
            )
    return rows


def expected_audience(rows: list[dict]) -> dict[tuple, dict]:
    """audience_seconds computed in Python from viewer rows (the contract of the materialized views)."""
    out: dict[tuple, dict] = {}
    for row in rows:
        agg = out.setdefault((row["screening_id"], row["movie_second"]), {"viewers": 0, "attending": 0, "sum_intensity": 0.0}
                             | {f"n_{e}": 0 for e in EMOTIONS} | {f"sum_i_{e}": 0.0 for e in EMOTIONS})
        agg["viewers"] += row["visible"]
        if row["attending"]:
            agg["attending"] += 1
            agg[f"n_{row['dominant']}"] += 1
            agg["sum_intensity"] += float(np.float32(row["intensity"]))
            for e in EMOTIONS:
                agg[f"sum_i_{e}"] += float(np.float32(row[f"i_{e}"]))
    return out


AUDIENCE_SQL = (
    "SELECT screening_id, movie_second, sum(viewers) AS viewers, sum(attending) AS attending, "
    + ", ".join(f"sum(n_{e}) AS n_{e}" for e in EMOTIONS) + ", "
    + ", ".join(f"sum(sum_i_{e}) AS sum_i_{e}" for e in EMOTIONS)
    + ", sum(sum_intensity) AS sum_intensity FROM audience_seconds GROUP BY screening_id, movie_second"
)


def counts(client, screening: str) -> dict[str, int]:
    return {t: client.query(f"SELECT count() FROM {t} WHERE screening_id = %(s)s", {"s": screening})[0][0] for t in CORE_TABLES}


def test_frame_scores_round_trip(clickhouse):
    inserted_from = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
    rows = frame_rows(np.random.default_rng(1), "scr-rt", people=3, frames=5, captured=NOW)
    assert clickhouse.insert("frame_scores", rows) == len(rows)

    got = clickhouse.query_dicts("SELECT * FROM frame_scores ORDER BY person_key, frame_id")
    assert len(got) == len(rows)
    for sent, back in zip(sorted(rows, key=lambda r: (r["person_key"], r["frame_id"])), got):
        for key, value in sent.items():
            if isinstance(value, float):
                assert back[key] == pytest.approx(value, rel=1e-6), key
            else:
                assert back[key] == value, key
        # inserted_at is the server's clock at insert time (DEFAULT now()).
        assert inserted_from - timedelta(seconds=5) <= back["inserted_at"] <= datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(seconds=5)


def test_viewer_seconds_round_trip_with_params(clickhouse):
    rows = viewer_rows(np.random.default_rng(2), "scr-o'neil", people=2, seconds=range(4))
    clickhouse.insert("viewer_seconds", rows)
    got = clickhouse.query(
        "SELECT event_id, dominant, attending FROM viewer_seconds WHERE screening_id = %(s)s AND movie_second IN %(secs)s ORDER BY event_id",
        {"s": "scr-o'neil", "secs": (1, 3)},
    )
    assert got == sorted((r["event_id"], r["dominant"], r["attending"]) for r in rows if r["movie_second"] in (1, 3))


def test_materialized_views_aggregate_audience_seconds(clickhouse):
    rng = np.random.default_rng(3)
    first = viewer_rows(rng, "scr-mv", people=6, seconds=range(0, 20))
    second = viewer_rows(rng, "scr-mv", people=6, seconds=range(10, 30))  # overlapping seconds: parts to sum
    for person_row in second:
        person_row["person_key"] += "-late"
    clickhouse.insert("viewer_seconds", first)
    clickhouse.insert("viewer_seconds", second)

    expected = expected_audience(first + second)
    got = {(r.pop("screening_id"), r.pop("movie_second")): r for r in clickhouse.query_dicts(AUDIENCE_SQL)}
    assert got.keys() == expected.keys()
    for key, agg in expected.items():
        for column, value in agg.items():
            assert got[key][column] == pytest.approx(value, rel=1e-9, abs=1e-9), (key, column)


def test_purge_screening_deletes_from_every_table(clickhouse):
    rng = np.random.default_rng(4)
    for screening in ("scr-keep", "scr-gone"):
        clickhouse.insert("frame_scores", frame_rows(rng, screening, people=2, frames=3, captured=NOW))
        clickhouse.insert("viewer_seconds", viewer_rows(rng, screening, people=2, seconds=range(5)))
    before = counts(clickhouse, "scr-keep")

    tables = purge_screening(clickhouse, "scr-gone")

    assert set(CORE_TABLES) <= set(tables)
    assert counts(clickhouse, "scr-gone") == {t: 0 for t in CORE_TABLES}
    assert counts(clickhouse, "scr-keep") == before and all(before.values())


def test_purge_expired_keeps_recently_stored_frames(clickhouse):
    """Expiry counts from storing (inserted_at), not capture: frames stored 40 days ago go, frames of a recording
    captured 40 days ago but stored 2 days ago stay."""
    rng = np.random.default_rng(5)
    old = frame_rows(rng, "scr-old", people=1, frames=4, captured=NOW - timedelta(days=40))
    for row in old:
        row["inserted_at"] = NOW - timedelta(days=40)
    late = frame_rows(rng, "scr-late", people=1, frames=4, captured=NOW - timedelta(days=40))
    for row in late:
        row["inserted_at"] = NOW - timedelta(days=2)
    clickhouse.insert("frame_scores", old + late)

    purge_expired(clickhouse, days=30)

    assert clickhouse.query("SELECT screening_id, count() FROM frame_scores GROUP BY screening_id") == [("scr-late", len(late))]


def test_frames_of_an_old_recording_processed_today_are_kept(clickhouse):
    """A screening recorded 11 months ago and processed today: its frame scores survive the TTL merge (the TTL
    counted from capture and deleted every row at once)."""
    rows = frame_rows(np.random.default_rng(9), "scr-replay", people=2, frames=5, captured=NOW - timedelta(days=330))
    clickhouse.insert("frame_scores", rows)
    clickhouse.execute("OPTIMIZE TABLE frame_scores FINAL")
    assert clickhouse.query("SELECT count() FROM frame_scores WHERE screening_id = 'scr-replay'") == [(len(rows),)]


def test_insert_rejects_rows_with_different_columns(clickhouse):
    with pytest.raises(ValueError, match="same columns"):
        clickhouse.insert("viewer_seconds", [{"event_id": "a", "movie_second": 1}, {"event_id": "b"}])


def test_bad_queries_get_one_clear_error(clickhouse):
    with pytest.raises(ClickHouseError, match="no_such_table"):
        clickhouse.query("SELECT * FROM no_such_table")
    with pytest.raises(ValueError, match="FORMAT JSON"):
        clickhouse.query("SELECT 1 FORMAT JSON")
    with pytest.raises(ValueError, match="use insert"):
        clickhouse.execute("INSERT INTO viewer_seconds (event_id) VALUES ('x')")
    assert clickhouse.query("SELECT count() FROM viewer_seconds") == [(0,)]


def test_cli_sql_prints_table_and_formats(clickhouse_target):
    rows = viewer_rows(np.random.default_rng(6), "scr-cli", people=2, seconds=range(3))
    clickhouse_target.client.insert("viewer_seconds", rows)
    settings = clickhouse_target.settings
    base = ["--state-dir", str(settings.state_dir)] + (["--clickhouse", settings.clickhouse_url] if settings.clickhouse_url else [])
    query = "SELECT person_key, count() AS n FROM viewer_seconds GROUP BY person_key ORDER BY person_key"

    table = CliRunner().invoke(cli, base + ["sql", query])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["person_key", "n"] and lines[-1] == "(2 rows)"

    as_json = CliRunner().invoke(cli, base + ["sql", "--format", "JSONEachRow", query])
    assert [json.loads(line) for line in as_json.output.splitlines()] == [{"person_key": f"scr-cli/p{p}", "n": 3} for p in range(2)]

    purge = CliRunner().invoke(cli, base + ["purge", "--screening", "scr-cli", "--skip-kafka"])  # no broker here
    assert purge.exit_code == 0 and "viewer_seconds" in purge.output
    assert counts(clickhouse_target.client, "scr-cli")["viewer_seconds"] == 0


def test_cli_reads_while_a_writer_inserts(embedded_settings, embedded_store):
    stop, written = threading.Event(), []

    def write() -> None:
        rng = np.random.default_rng(7)
        with connect(embedded_settings) as client:
            while not stop.is_set() and len(written) < 5000:
                written.append(client.insert("viewer_seconds", viewer_rows(rng, f"scr-w{len(written)}", people=10, seconds=range(5))))

    def cli_count() -> int:
        command = [str(MOVIEMOTION), "--state-dir", str(embedded_settings.state_dir), "sql", "--format", "TSV", "SELECT count() FROM viewer_seconds"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        seen = [cli_count() for _ in range(3)]
    finally:
        stop.set()
        writer.join(timeout=60)

    assert seen == sorted(seen) and seen[-1] > seen[0]
    assert cli_count() == sum(written) == embedded_store.query("SELECT count() FROM viewer_seconds")[0][0]


def test_daemon_restart_keeps_data_and_start_is_idempotent(embedded_settings, embedded_store):
    rows = frame_rows(np.random.default_rng(8), "scr-restart", people=2, frames=10, captured=NOW)
    embedded_store.insert("frame_scores", rows)
    first = read_store_info(embedded_settings)
    assert start_store(embedded_settings).pid == first.pid

    assert stop_store(embedded_settings)
    with pytest.raises(ClickHouseUnavailable):
        embedded_store.query("SELECT 1")
    assert store_status(embedded_settings)["running"] is False

    second = start_store(embedded_settings)
    assert second.pid != first.pid
    status = store_status(embedded_settings)
    assert status["running"] and status["row_counts"]["frame_scores"] == len(rows)
    assert status["migrations"] and apply_migrations(connect(embedded_settings)) == []


def test_clear_error_when_store_not_running(tmp_path):
    settings = load_settings(state_dir=tmp_path / "nothing", clickhouse_url="")
    with pytest.raises(ClickHouseUnavailable, match="store not running: run `moviemotion up`"):
        connect(settings)
    result = CliRunner().invoke(cli, ["--state-dir", str(settings.state_dir), "sql", "SELECT 1"])
    assert result.exit_code == 1 and "store not running" in result.output


def test_http_interface_subset(embedded_settings):
    url = read_store_info(embedded_settings).url
    writer = {"X-ClickHouse-User": WRITER, "X-ClickHouse-Key": store_password(embedded_settings.state_dir, WRITER).reveal()}

    def post(path: str, body: bytes = b"") -> tuple[int, bytes, dict]:
        try:
            with urllib.request.urlopen(urllib.request.Request(url + path, data=body, headers=writer, method="POST"), timeout=10) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    assert urllib.request.urlopen(url + "/ping", timeout=10).read() == b"Ok.\n"
    assert post("/", b"SELECT 1 + 1")[1] == b"2\n"
    assert post("/?default_format=JSONEachRow", b"SELECT 7 AS x")[1] == b'{"x":7}\n'
    status, body, headers = post("/", b"SELECT 3 AS y FORMAT JSON")
    assert status == 200 and json.loads(body)["data"] == [{"y": 3}] and headers["Content-Type"].startswith("application/json")
    assert post("/?param_n=41", b"SELECT {n:UInt32} + 1")[1] == b"42\n"
    assert post("/?query=INSERT%20INTO%20viewer_seconds%20(event_id)%20FORMAT%20JSONEachRow", b'{"event_id":"e1"}\n')[0] == 200
    assert post("/?query=SELECT%20event_id%20FROM%20viewer_seconds")[1] == b"e1\n"
    status, body, headers = post("/", b"SELECT * FROM nope")
    assert status == 500 and b"nope" in body and headers["X-ClickHouse-Exception-Code"] == "60"


@pytest.mark.clickhouse_server
def test_http_client_works_against_real_server_http_port(clickhouse_server_process, clickhouse_server):
    http = HttpClient(clickhouse_server_process.http_url)
    assert http.server_version() == clickhouse_server.server_version()
    assert http.query("SELECT toUInt64(18446744073709551615), toDateTime('2024-05-06 07:08:09')") == [
        (18446744073709551615, datetime(2024, 5, 6, 7, 8, 9))
    ]


@pytest.mark.clickhouse_server
def test_local_server_restart_and_kill(tmp_path):
    require_server_binary()
    with ClickHouseServerProcess(tmp_path / "srv").start() as server:
        client = NativeClient(server.url)
        apply_migrations(client)
        client.insert("frame_scores", frame_rows(np.random.default_rng(9), "scr-k", people=1, frames=3, captured=NOW))
        client.close()  # 18.16 waits ~10 s for open connections on a graceful stop; the client reconnects by itself
        server.restart()
        assert client.query("SELECT count() FROM frame_scores") == [(3,)]
        server.kill()
        with pytest.raises(ClickHouseUnavailable):
            client.query("SELECT 1")
        server.start()
        assert client.query("SELECT count() FROM frame_scores") == [(3,)]
        client.close()
