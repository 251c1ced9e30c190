"""The embedded store daemon's access control, on the real daemon: credentials on every query, the read-only
analyst (readonly chDB sessions + the guard on ClickHouse's parse: no file/url/remote..., no INTO OUTFILE),
GET never writes, request bodies capped, and slow analyst queries do not hold up the writer's inserts."""
from __future__ import annotations

import base64
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from infra.clickhouse.client import ClickHouseError, connect
from infra.clickhouse.embedded_server import MAX_BODY, read_store_info, store_dir
from infra.clickhouse.migrations import apply_migrations
from infra.clickhouse.service import LOG_FILE, start_store, stop_store
from infra.clickhouse.store_auth import ANALYST, WRITER, password_file, store_password
from moviemotion.analytics.grafana import expand_macros, iter_queries
from moviemotion.analytics.queries import QUERIES, query_result
from schemas.secrets import SecretError
from schemas.settings import Settings, load_settings
from tests.data import known_screening as known
from tests.test_grafana_dashboards import DASHBOARDS, RANGES, VARIABLES

ANALYST_TIMEOUT_S = 4.0  # the test store's max_execution_time for analysts (and their wait for a free session)
ANALYST_MAX_MEMORY_MB = 256  # the test store's max_memory_usage for one analyst query
SLOW_SQL = "SELECT sum(sleep(1)) FROM numbers(100000000)"  # one second per block: runs until the time limit stops it
SECRET_READERS = [  # the analyst's attempts to read the writer's password file; {path} is filled in
    "SELECT * FROM file('{path}', 'LineAsString')",
    "SELECT file('{path}')",
    "select * from FILE('{path}', 'LineAsString')",
    "SELECT * FROM `file`('{path}', 'LineAsString')",
    'SELECT * FROM "file"(\'{path}\', \'LineAsString\')',
    "SELECT * FROM file\n\t (  '{path}',\n'LineAsString')",
    "SELECT * FROM /* x */ file /* (y) */ ('{path}', 'LineAsString')",
    "SELECT * FROM file -- c\n('{path}', 'LineAsString')",
    "SELECT * FROM file # c\n('{path}', 'LineAsString')",
    "SELECT 'it''s', $$a'b$$, `file`('{path}')",
    "SELECT * FROM (SELECT * FROM file('{path}', 'LineAsString'))",
    "WITH t AS (SELECT file('{path}') AS x) SELECT * FROM t",
    "SELECT 1 WHERE 1 IN (SELECT length(file('{path}')))",
    "SELECT count() FROM numbers(3) UNION ALL SELECT length(file('{path}'))",
    "SELECT * FROM viewer_seconds AS v JOIN file('{path}', 'LineAsString') AS f ON 1",
    "DESCRIBE TABLE file('{path}', 'LineAsString')",
    "EXPLAIN SYNTAX SELECT file('{path}')",
    "SELECT * FROM fileCluster('default', '{path}', 'LineAsString')",
    "SELECT * FROM filesystem('{dir}')",
]
OTHER_OUTSIDE = [
    "SELECT * FROM url('http://127.0.0.1:9/x', 'LineAsString')",
    "SELECT * FROM URL('http://127.0.0.1:9/x', 'LineAsString')",
    "SELECT * FROM s3('http://127.0.0.1:9/bucket/key', 'LineAsString')",
    "SELECT * FROM hdfs('hdfs://127.0.0.1:9/x', 'TSV', 'x String')",
    "SELECT * FROM remote('127.0.0.1:9', system.one)",
    "SELECT * FROM remoteSecure('127.0.0.1:9', system.one)",
    "SELECT * FROM cluster('default', system.one)",
    "SELECT * FROM mysql('127.0.0.1:9', 'd', 't', 'u', 'p')",
    "SELECT * FROM postgresql('127.0.0.1:9', 'd', 't', 'u', 'p')",
    "SELECT * FROM executable('id', 'TSV', 'x String')",
    "SELECT * FROM input('x String')",
    "SELECT * FROM python(settings)",
    "SELECT * FROM sqlite('/tmp/x.db', 't')",
]
WRITES = [
    "INSERT INTO viewer_seconds (event_id) SELECT 'forged'",
    "DROP TABLE viewer_seconds",
    "TRUNCATE TABLE viewer_seconds",
    "ALTER TABLE viewer_seconds DELETE WHERE 1",
    "CREATE TABLE forged (x UInt8) ENGINE = Memory",
    "RENAME TABLE viewer_seconds TO gone",
    "OPTIMIZE TABLE viewer_seconds FINAL",
    "INSERT INTO FUNCTION file('/tmp/moviemotion-forged.tsv', 'TSV', 'x String') SELECT 'x'",
    "SYSTEM STOP MERGES",
    "KILL QUERY WHERE 1",
    "USE system",
    "SET max_execution_time = 0",
]


@dataclass(frozen=True)
class Store:
    settings: Settings
    url: str

    def password(self, user: str) -> str:
        return store_password(self.settings.state_dir, user).reveal()

    def request(self, method: str, sql: str = "", *, user: str | None = None, password: str | None = None,
                body: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
        """(HTTP status, body text) of one request; `sql` goes in ?query= for GET, in the body for POST."""
        headers = dict(headers or {})
        if user is not None:
            secret = self.password(user) if password is None else password
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
        if method == "GET":
            url, data = f"{self.url}/?{urllib.parse.urlencode({'query': sql})}", None
        else:
            url, data = f"{self.url}/", body if body is not None else sql.encode()
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers, method=method), timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def count(self) -> int:
        with connect(self.settings) as writer:
            return writer.query("SELECT count() FROM viewer_seconds")[0][0]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[Store]:
    settings = load_settings(state_dir=tmp_path_factory.mktemp("secured-store"), clickhouse_url="",
                             store_analyst_timeout_s=ANALYST_TIMEOUT_S, store_analyst_max_memory_mb=ANALYST_MAX_MEMORY_MB)
    start_store(settings)
    try:
        with connect(settings) as writer:
            apply_migrations(writer)
            known.load(writer)
        yield Store(settings, read_store_info(settings).url)
    finally:
        stop_store(settings)


def test_passwords_are_private_files_never_in_argv_store_json_or_log(store):
    directory = password_file(store.settings.state_dir, WRITER).parent
    assert directory.stat().st_mode & 0o777 == 0o700
    pid = read_store_info(store.settings).pid
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    published = (store_dir(store.settings) / "store.json").read_text() + (store_dir(store.settings) / LOG_FILE).read_text()
    passwords = {store.password(WRITER), store.password(ANALYST)}
    assert len(passwords) == 2 and all(len(p) >= 24 for p in passwords)
    for user in (WRITER, ANALYST):
        assert password_file(store.settings.state_dir, user).stat().st_mode & 0o777 == 0o600
    assert not [p for p in passwords if p in argv or p in published]


def test_no_or_wrong_credentials_get_401_and_do_nothing(store):
    before = store.count()
    drop = "DROP TABLE viewer_seconds"
    assert store.request("POST", drop)[0] == 401
    assert store.request("GET", drop)[0] == 401
    assert store.request("POST", drop, user=WRITER, password="guess")[0] == 401
    assert store.request("POST", drop, user=WRITER, password=store.password(ANALYST))[0] == 401
    assert store.request("POST", drop, user="default", password="")[0] == 401
    assert store.request("POST", drop, headers={"X-ClickHouse-User": WRITER, "X-ClickHouse-Key": "guess"})[0] == 401
    assert store.request("POST", drop, headers={"Authorization": "Bearer abc"})[0] == 401
    status, text = store.request("POST", "SELECT 1")
    assert status == 401 and "credentials required" in text
    assert store.count() == before
    assert urllib.request.urlopen(store.url + "/ping", timeout=10).read() == b"Ok.\n"  # health checks need no password


def test_missing_password_file_is_one_clear_error(tmp_path):
    with pytest.raises(SecretError, match="clickhouse-analyst.password.*first start"):
        store_password(tmp_path, ANALYST)


def test_writer_runs_anything_over_post_with_basic_auth_or_headers(store):
    assert store.request("POST", "CREATE TABLE scratch (x UInt8) ENGINE = Memory", user=WRITER) == (200, "")
    headers = {"X-ClickHouse-User": WRITER, "X-ClickHouse-Key": store.password(WRITER)}
    assert store.request("POST", "INSERT INTO scratch SELECT 7", headers=headers)[0] == 200
    assert store.request("POST", "SELECT x FROM scratch", user=WRITER) == (200, "7\n")
    assert store.request("POST", "DROP TABLE scratch", user=WRITER)[0] == 200


@pytest.mark.parametrize("sql", WRITES)
def test_analyst_writes_are_refused_and_change_nothing(store, sql):
    before = store.count()
    status, text = store.request("POST", sql, user=ANALYST)
    assert status == 403 and "read-only" in text, text
    assert store.count() == before
    assert not Path("/tmp/moviemotion-forged.tsv").exists()


def test_analyst_client_gets_clear_errors(store):
    with connect(store.settings, user=ANALYST) as analyst:
        assert analyst.query("SELECT count() FROM screenings FINAL")[0][0] >= 2
        with pytest.raises(ClickHouseError, match="read-only"):
            analyst.insert("viewer_seconds", [{"event_id": "forged"}])
        with pytest.raises(ClickHouseError, match="Multi-statements are not allowed"):
            analyst.query("SELECT 1; DROP TABLE viewer_seconds")


@pytest.mark.parametrize("sql", ["INSERT INTO viewer_seconds (event_id) SELECT 'forged'", "DROP TABLE viewer_seconds",
                                 "ALTER TABLE viewer_seconds DELETE WHERE 1", "SELECT 1; DROP TABLE viewer_seconds"])
@pytest.mark.parametrize("user", [WRITER, ANALYST])
def test_get_never_writes(store, sql, user):
    """As on ClickHouse, GET is read-only, also for the writer (whose GETs skip the analyst's guard: this is chDB's
    readonly=1 refusing on its own)."""
    before = store.count()
    status, text = store.request("GET", sql, user=user)
    assert status in (400, 403) and ("READONLY" in text or "read-only" in text or "Multi-statements" in text), text
    assert store.count() == before
    assert store.request("GET", "SELECT count() FROM viewer_seconds", user=user) == (200, f"{before}\n")


@pytest.mark.parametrize("template", SECRET_READERS)
def test_analyst_cannot_read_files_in_any_spelling(store, template):
    path = password_file(store.settings.state_dir, WRITER)
    status, text = store.request("POST", template.format(path=path, dir=path.parent), user=ANALYST)
    assert status == 403 and "reads files, URLs or other servers" in text, text
    assert store.password(WRITER) not in text


def test_analyst_cannot_name_a_function_with_a_query_parameter(store):
    """`{f:Identifier}` fills table names only: as a function name it does not parse."""
    path = password_file(store.settings.state_dir, WRITER)
    auth = "Basic " + base64.b64encode(f"{ANALYST}:{store.password(ANALYST)}".encode()).decode()
    for sql in (f"SELECT * FROM {{f:Identifier}}('{path}', 'LineAsString')", f"SELECT {{f:Identifier}}('{path}')"):
        request = urllib.request.Request(f"{store.url}/?param_f=file", data=sql.encode(), headers={"Authorization": auth}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        text = refused.value.read().decode()
        assert refused.value.code == 400 and "Syntax error" in text and store.password(WRITER) not in text


@pytest.mark.parametrize("sql", OTHER_OUTSIDE)
def test_analyst_cannot_reach_urls_or_other_servers(store, sql):
    status, text = store.request("POST", sql, user=ANALYST)
    assert status == 403 and "reads files, URLs or other servers" in text, text


def test_analyst_cannot_write_files_with_into_outfile(store, tmp_path):
    target = tmp_path / "out.tsv"
    for sql in (f"SELECT 1 INTO OUTFILE '{target}'", f"select 1 into /* c */ outfile '{target}' FORMAT CSV",
                f"SHOW TABLES INTO OUTFILE '{target}'", f"EXPLAIN SELECT 1 INTO OUTFILE '{target}'"):
        status, text = store.request("POST", sql, user=ANALYST)
        assert status == 403 and "INTO OUTFILE" in text, text
    assert not target.exists()


@pytest.mark.parametrize("sql", ["SELECT 1 AS file", "SELECT 'file(x)' AS url", "SELECT count() FROM numbers(10)",
                                 "WITH 2 AS two SELECT two * 3", "SHOW TABLES", "DESCRIBE TABLE viewer_seconds",
                                 "EXPLAIN SELECT count() FROM viewer_seconds", "EXISTS TABLE viewer_seconds",
                                 "SELECT count() FROM merge(currentDatabase(), '^viewer_seconds$')",
                                 "SELECT * FROM values('x UInt8', 1, 2) FORMAT JSONEachRow"])
def test_analyst_reads(store, sql):
    status, text = store.request("POST", sql, user=ANALYST)
    assert status == 200 and text, text


def test_analyst_query_parameters(store):
    with connect(store.settings, user=ANALYST) as analyst:  # the client's %(name)s params
        assert analyst.query("SELECT %(n)s * 2, %(s)s", {"n": 3, "s": "it's"}) == [(6, "it's")]
    url = f"{store.url}/?{urllib.parse.urlencode({'param_n': '41'})}"  # ClickHouse's {name:Type} params
    auth = "Basic " + base64.b64encode(f"{ANALYST}:{store.password(ANALYST)}".encode()).decode()
    request = urllib.request.Request(url, data=b"SELECT {n:UInt32} + 1", headers={"Authorization": auth}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.read() == b"42\n"


def test_every_named_query_and_dashboard_panel_runs_as_the_analyst(store):
    with connect(store.settings, user=ANALYST) as analyst:
        for query in QUERIES:
            params = {"film": known.FILM_ID} if "film" in query.required else {"screening": known.SCREENING_A}
            assert query_result(analyst, query.name, **params).columns, query.name
        for doc in DASHBOARDS.values():
            for panel in iter_queries(doc):
                assert analyst.result(expand_macros(panel.sql, RANGES[panel.dashboard], VARIABLES)).rows, panel.panel


def _send_headers_only(store: Store, user: str, length: int) -> tuple[int, str, str | None]:
    """POST announcing `length` body bytes but sending none: a daemon that read the body would hang here."""
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(store.url).netloc, timeout=30)
    try:
        connection.putrequest("POST", "/?query=" + urllib.parse.quote("INSERT INTO viewer_seconds (event_id) FORMAT TSV"))
        connection.putheader("Authorization", "Basic " + base64.b64encode(f"{user}:{store.password(user)}".encode()).decode())
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read().decode(), response.getheader("Connection")
    finally:
        connection.close()


@pytest.mark.parametrize("user", [WRITER, ANALYST])
def test_request_bodies_over_the_cap_get_413_unread(store, user):
    before = store.count()
    status, text, connection = _send_headers_only(store, user, MAX_BODY[user] + 1)
    assert status == 413 and f"over {user}'s limit of {MAX_BODY[user]} bytes" in text and connection == "close"
    assert store.count() == before


def test_caps_differ_per_user(store):
    """64 MiB for the writer's inserts, 256 KiB (ClickHouse's max_query_size) for the analyst's queries."""
    assert (MAX_BODY[WRITER], MAX_BODY[ANALYST]) == (64 * 1024 * 1024, 256 * 1024)
    query = b"SELECT 1 -- " + b"x" * MAX_BODY[ANALYST]
    assert store.request("POST", body=query, user=ANALYST)[0] == 413
    assert store.request("POST", body=query, user=WRITER)[0] != 413  # (chDB's own max_query_size refuses it)
    rows = "\n".join(json.dumps({"event_id": f"big-{i}", "person_key": f"big-{i}", "screening_id": "bigx" + "x" * 1000})
                     for i in range(5000))
    url = f"{store.url}/?{urllib.parse.urlencode({'query': 'INSERT INTO viewer_seconds (event_id, person_key, screening_id) FORMAT JSONEachRow'})}"
    auth = "Basic " + base64.b64encode(f"{WRITER}:{store.password(WRITER)}".encode()).decode()
    with urllib.request.urlopen(urllib.request.Request(url, data=rows.encode(), headers={"Authorization": auth}, method="POST"), timeout=120) as r:
        assert r.status == 200 and len(rows) > 5 * 1024 * 1024
    with connect(store.settings) as writer:
        assert writer.query("SELECT count() FROM viewer_seconds WHERE screening_id LIKE 'bigx%'") == [(5000,)]
        writer.execute("ALTER TABLE viewer_seconds DELETE WHERE screening_id LIKE 'bigx%' SETTINGS mutations_sync = 1")


@pytest.mark.parametrize("user", [WRITER, ANALYST])
def test_a_failed_query_leaves_nothing_for_the_next(store, user):
    """chDB 4.4.0 hands a failed query's partial output to the session's next query (the daemon reopens a session
    after a failure): every session of the pool fails once, and each next answer is only its own."""
    for attempt in range(4):
        status, text = store.request("POST", "SELECT number FROM numbers(1000000) WHERE throwIf(number > 200000) = 0", user=user)
        assert status == 500 and "throwIf" in text, text
        assert store.request("POST", f"SELECT {attempt}", user=user) == (200, f"{attempt}\n")
        assert store.request("GET", f"SELECT {attempt}", user=user) == (200, f"{attempt}\n")


def test_analyst_queries_have_a_time_limit(store):
    started = time.monotonic()
    status, text = store.request("POST", SLOW_SQL, user=ANALYST)
    print(f"\nslow analyst query stopped after {time.monotonic() - started:.1f}s (limit {ANALYST_TIMEOUT_S:g}s): {text.strip()[:80]}")
    assert status == 500 and "TIMEOUT_EXCEEDED" in text, text


def test_an_analyst_query_past_its_memory_cap_is_stopped_and_the_store_goes_on(store):
    """One analyst query may not take the machine's memory from the writer: past `store_analyst_max_memory_mb` it
    stops with ClickHouse's MEMORY_LIMIT_EXCEEDED (800 MB of array here, cap 256 MiB); the analyst's next query and
    the writer's inserts work."""
    status, text = store.request("POST", "SELECT length(groupArray(number)) FROM numbers(100000000)", user=ANALYST)
    assert status == 500 and "MEMORY_LIMIT_EXCEEDED" in text, (status, text[:300])
    assert store.request("POST", "SELECT count() FROM numbers(1000)", user=ANALYST) == (200, "1000\n")
    with connect(store.settings) as writer:
        writer.insert("viewer_seconds", [{"event_id": "after-cap", "person_key": "after-cap", "screening_id": "cap"}])
        assert writer.query("SELECT count() FROM viewer_seconds WHERE screening_id = 'cap'")[0][0] == 1
        writer.execute("ALTER TABLE viewer_seconds DELETE WHERE screening_id = 'cap' SETTINGS mutations_sync = 1")


def test_slow_analyst_queries_do_not_hold_up_inserts(store):
    """Three slow analyst queries (two run, one waits for a session) while the writer inserts: every insert is
    stored while the slow queries are still running."""
    finished: dict[str, float] = {}
    answers: list[tuple[int, str]] = []

    def slow(i: int) -> None:
        answers.append(store.request("POST", SLOW_SQL, user=ANALYST))
        finished[f"slow{i}"] = time.monotonic()

    threads = [threading.Thread(target=slow, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # the slow queries are running
    insert_s = []
    with connect(store.settings) as writer:
        for batch in range(10):
            started = time.monotonic()
            writer.insert("viewer_seconds", [{"event_id": f"slow-{batch}-{i}", "person_key": f"slow-{batch}-{i}",
                                                  "screening_id": "during-slow"} for i in range(100)])
            insert_s.append(time.monotonic() - started)
        inserts_done = time.monotonic()
        stored = writer.query("SELECT count() FROM viewer_seconds WHERE screening_id = 'during-slow'")[0][0]
    for thread in threads:
        thread.join(timeout=3 * ANALYST_TIMEOUT_S + 30)
    print(f"\n10 inserts of 100 rows during 3 slow analyst queries: max {max(insert_s) * 1000:.0f} ms, "
          f"mean {sum(insert_s) / len(insert_s) * 1000:.0f} ms; slow queries ended "
          f"{min(finished.values()) - inserts_done:.1f}..{max(finished.values()) - inserts_done:.1f}s after the last insert")
    assert stored == 1000
    assert inserts_done < min(finished.values())
    assert all(status in (500, 503) and ("TIMEOUT_EXCEEDED" in text or "busy" in text) for status, text in answers), answers
    with connect(store.settings) as writer:
        writer.execute("ALTER TABLE viewer_seconds DELETE WHERE screening_id = 'during-slow' SETTINGS mutations_sync = 1")


def test_analyst_password_file_is_what_connect_uses(store, monkeypatch):
    """connect(settings) reads the writer's password; user=ANALYST the analyst's (no environment involved)."""
    for name in [k for k in os.environ if k.startswith("MOVIEMOTION_CLICKHOUSE")]:
        monkeypatch.delenv(name)
    with connect(store.settings) as writer, connect(store.settings, user=ANALYST) as analyst:
        assert (writer.user, analyst.user) == (WRITER, ANALYST)
        assert writer.query("SELECT 1") == analyst.query("SELECT 1") == [(1,)]
