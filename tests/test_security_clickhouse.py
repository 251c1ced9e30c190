"""ClickHouse accounts on a real clickhouse-server (18.16, users.xml): the sink user inserts, the analyst
(also Grafana's account) only reads; passwords reach `connect` from a *_FILE secret, never the URL."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from infra.clickhouse.client import ClickHouseError, NativeClient, connect
from infra.clickhouse.local_server import ClickHouseServerProcess, ServerUser
from infra.clickhouse.migrations import apply_migrations
from schemas.secrets import generate_password
from schemas.secrets import Secret
from schemas.settings import Settings, load_settings
from schemas.face_frame import FaceFrame
from infra.clickhouse.rows import frame_score_row
from infra.clickhouse.sink import FRAME_SCORES, ClickHouseSink
from tests.fixtures.clickhouse import require_server_binary

pytestmark = [pytest.mark.clickhouse_server]
DATABASE = "moviemotion"
OTHER_DATABASE = "elsewhere"


@dataclass(frozen=True)
class SecuredServer:
    server: ClickHouseServerProcess
    passwords: dict[str, Secret]

    def url(self, user: str) -> str:
        """The URL as deployed: user, host, database; no password."""
        return f"clickhouse://{user}@127.0.0.1:{self.server.tcp_port}/{DATABASE}"


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Iterator[SecuredServer]:
    require_server_binary()
    passwords = {name: generate_password() for name in ("default", "analyst", "sink")}
    users = (
        ServerUser("default", passwords["default"].reveal()),
        ServerUser("analyst", passwords["analyst"].reveal(), profile="readonly", databases=(DATABASE,)),
        ServerUser("sink", passwords["sink"].reveal(), databases=(DATABASE,)),
    )
    server = ClickHouseServerProcess(tmp_path_factory.mktemp("secured-clickhouse"), users=users).start()
    try:
        with NativeClient(server.url) as admin:
            for database in (DATABASE, OTHER_DATABASE):
                admin.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
            admin.execute(f"CREATE TABLE {OTHER_DATABASE}.notes (x UInt8) ENGINE = Memory")
        with NativeClient(server.url_for("default", DATABASE)) as admin:
            apply_migrations(admin)
        yield SecuredServer(server, passwords)
    finally:
        server.stop()


def settings_for(monkeypatch, tmp_path: Path, secured: SecuredServer, user: str) -> Settings:
    """A process's settings: the URL without password, the password from MOVIEMOTION_CLICKHOUSE_PASSWORD_FILE."""
    password_file = tmp_path / f"{user}.pw"
    password_file.write_text(secured.passwords[user].reveal() + "\n")
    password_file.chmod(0o600)
    monkeypatch.delenv("MOVIEMOTION_CLICKHOUSE_PASSWORD", raising=False)
    monkeypatch.setenv("MOVIEMOTION_CLICKHOUSE_PASSWORD_FILE", str(password_file))
    return load_settings(state_dir=tmp_path, clickhouse_url=secured.url(user))


def score_rows(screening_id: str, count: int) -> list[dict]:
    rng = np.random.default_rng(7)
    rows = []
    for frame_id in range(count):
        frame = FaceFrame(screening_id=screening_id, theater_id="t1", camera_id="cam1", seat_id="A1", track_id=1,
                          frame_id=frame_id, captured_us=1_700_000_000_000_000 + frame_id * 200_000,
                          movie_ts=frame_id * 0.2, crop=rng.integers(0, 256, (48, 48), dtype=np.uint8),
                          bbox=(10.0, 10.0, 60.0, 60.0), landmarks=rng.uniform(10, 60, (5, 2)).astype(np.float32),
                          detection_score=0.9, yaw_deg=0.0, pitch_deg=0.0)
        rows.append(frame_score_row(frame, rng.dirichlet(np.ones(8)), "test-model"))
    return rows


def test_sink_user_inserts_frame_scores_in_its_database_only(secured, monkeypatch, tmp_path):
    sink_settings = settings_for(monkeypatch, tmp_path, secured, "sink")
    assert secured.passwords["sink"].reveal() not in repr(sink_settings)
    screening_id = f"sec-{uuid.uuid4().hex[:8]}"
    sink = ClickHouseSink(lambda: connect(sink_settings), FRAME_SCORES)
    try:
        assert sink.write(score_rows(screening_id, 5)) == 5
    finally:
        sink.close()
    with connect(settings_for(monkeypatch, tmp_path, secured, "analyst")) as analyst:
        assert analyst.query("SELECT count() FROM frame_scores WHERE screening_id = %(s)s", {"s": screening_id}) == [(5,)]
    with connect(sink_settings) as client, pytest.raises(ClickHouseError, match=f"Access denied to database {OTHER_DATABASE}"):
        client.query(f"SELECT count() FROM {OTHER_DATABASE}.notes")


def test_analyst_reads_but_every_write_is_refused(secured, monkeypatch, tmp_path):
    with connect(settings_for(monkeypatch, tmp_path, secured, "analyst")) as analyst:
        before = analyst.query("SELECT count() FROM frame_scores")[0][0]
        with pytest.raises(ClickHouseError, match="readonly"):
            analyst.insert("frame_scores", score_rows("analyst-forgery", 1))
        with pytest.raises(ClickHouseError, match="readonly"):
            analyst.execute("CREATE TABLE forged (x UInt8) ENGINE = Memory")
        with pytest.raises(ClickHouseError, match="readonly"):
            analyst.execute("DROP TABLE frame_scores")
        with pytest.raises(ClickHouseError, match="readonly"):
            analyst.execute("ALTER TABLE frame_scores DELETE WHERE 1")
        assert analyst.query("SELECT count() FROM frame_scores")[0][0] == before
        with pytest.raises(ClickHouseError, match=f"Access denied to database {OTHER_DATABASE}"):
            analyst.query(f"SELECT count() FROM {OTHER_DATABASE}.notes")


def test_wrong_or_missing_password_is_refused(secured, monkeypatch, tmp_path):
    wrong = load_settings(state_dir=tmp_path, clickhouse_url=secured.url("sink"), clickhouse_password=Secret("guess"))
    with connect(wrong) as client, pytest.raises(ClickHouseError, match="[Ww]rong password|[Aa]uthentication failed"):
        client.query("SELECT 1")
    monkeypatch.delenv("MOVIEMOTION_CLICKHOUSE_PASSWORD", raising=False)
    monkeypatch.delenv("MOVIEMOTION_CLICKHOUSE_PASSWORD_FILE", raising=False)
    without = load_settings(state_dir=tmp_path, clickhouse_url=secured.url("analyst"))
    with connect(without) as client, pytest.raises(ClickHouseError, match="Password required"):
        client.query("SELECT 1")
