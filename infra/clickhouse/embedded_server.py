"""The embedded store daemon: one process owns the chDB data dir and serves ClickHouse's HTTP interface.

chDB lets only one process open a data directory, so the sink, the CLI and dashboards all talk to this
daemon over HTTP on 127.0.0.1. Supported subset of https://clickhouse.com/docs/interfaces/http :
  - GET/POST `/` with the query in `?query=` (the POST body is then INSERT data) or in the POST body;
  - `default_format` (URL parameter) or a `FORMAT x` clause picks the output format (any chDB text format:
    TabSeparated, JSONEachRow, JSON, JSONCompact, CSV, Pretty ...); the default is TabSeparated;
  - `param_<name>` URL parameters fill `{name:Type}` placeholders;
  - `/ping` and a bare GET `/` answer "Ok.\n" without credentials;
  - errors answer ClickHouse's exception text and the `X-ClickHouse-Exception-Code` header.
Every query needs credentials (HTTP basic auth, or the X-ClickHouse-User / X-ClickHouse-Key headers) of one of
the two users of `store_auth` (401 otherwise, before the body is read):
  - `writer` runs anything on its own chDB session (POST; a GET runs read-only, as on ClickHouse);
  - `analyst` runs on a pool of `readonly=1` sessions with `max_execution_time`, after `analyst_guard` has
    checked ClickHouse's parse of the query (403: writes, file/url/remote... functions, INTO OUTFILE).
Request bodies are capped (413, nothing read): 64 MiB for the writer, 256 KiB (ClickHouse's max_query_size)
for the analyst. chDB runs queries of different sessions at the same time, so the writer never waits for an
analyst; analysts wait at most their time limit for a free session (503 after that).
Not supported: sessions, HTTP compression, chunked request bodies (411), other URL settings (ignored).
Grafana: the Altinity plugin (vertamedia-clickhouse-datasource, FORMAT JSON over HTTP, basic auth) fits this
subset; the official plugin's HTTP mode speaks the Native format and compression, which this daemon does not serve.

The daemon publishes `{"pid", "port", "url", "data_dir", "version"}` in `<state_dir>/clickhouse/store.json`
once it answers, and removes that file when it stops (SIGTERM/SIGINT).
Run it with `python -m infra.clickhouse.embedded_server [--state-dir DIR] [--port N] [--analyst-timeout S]`.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import logging
import os
import queue
import re
import signal
import threading
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from infra.clickhouse import analyst_guard
from infra.clickhouse.store_auth import ANALYST, WRITER, ensure_store_passwords
from schemas.secrets import Secret
from schemas.settings import Settings, load_settings

log = logging.getLogger(__name__)

STORE_FILE = "store.json"
DEFAULT_FORMAT = "TabSeparated"
_FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_ERROR_CODE = re.compile(r"Code:\s*(\d+)")
_CONTENT_TYPES = {"JSON": "application/json", "JSONCompact": "application/json", "JSONEachRow": "application/x-ndjson", "CSV": "text/csv"}
MAX_BODY = {WRITER: 64 * 1024 * 1024, ANALYST: 256 * 1024}  # bytes of request body per user
ANALYST_SESSIONS = 2  # analyst queries that run at once; more wait for a free session
_FORBIDDEN_CODES = {"164", "497"}  # READONLY, ACCESS_DENIED: 403 like ClickHouse's HTTP interface


@dataclass(frozen=True)
class StoreInfo:
    """Where a running embedded store answers (the content of store.json)."""

    url: str
    pid: int
    port: int = 0
    data_dir: str = ""
    version: str = ""


def store_dir(settings: Settings) -> Path:
    """The chDB data directory of the embedded store (also holds store.json and the daemon's log)."""
    return settings.state_dir / "clickhouse"


def read_store_info(settings: Settings) -> StoreInfo | None:
    """The published daemon address, or None when no daemon has published one (it may be stale: check the pid)."""
    path = store_dir(settings) / STORE_FILE
    try:
        return StoreInfo(**json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def _write_store_info(data_dir: Path, info: StoreInfo) -> None:
    tmp = data_dir / f".{STORE_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(asdict(info)))
    tmp.replace(data_dir / STORE_FILE)


def _remove_store_info(data_dir: Path) -> None:
    path = data_dir / STORE_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (FileNotFoundError, json.JSONDecodeError):
        pass


def format_clause(sql: str) -> str | None:
    """The output format named by a query's trailing `FORMAT x` clause (None for none, and for INSERTs)."""
    match = None if sql.lstrip()[:6].upper() == "INSERT" else _FORMAT_CLAUSE.search(sql)
    return match.group(1) if match else None


class QueryRefused(Exception):
    """A request the daemon answers with an HTTP error of its own (ClickHouse error code and text)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class _Lane:
    """One chDB session, used by one query at a time, and reopened after a query fails.

    Workaround for chDB 4.4.0 (docs/upstream-chdb-session.md, written to be filed upstream): a query that fails
    after producing output (a time limit, `throwIf`, the second statement of `SELECT 1; DROP ...`) leaves that
    output in its session, and the session's next query returns it before its own rows; in a shared pool another
    user's query would get it. Opening a session takes under a millisecond. Removable in one step: drop the
    `except` below once chDB clears a failed query's output (tests/test_store_daemon_security.py
    `test_a_failed_query_leaves_nothing_for_the_next` checks it)."""

    def __init__(self, open_session) -> None:
        self._open = open_session
        self._session = open_session()
        self._lock = threading.Lock()

    def query(self, sql: str, fmt: str, params: dict[str, str] | None = None) -> bytes:
        with self._lock:
            try:
                return self._session.query(sql, fmt, params=params or None).bytes()
            except Exception:
                self._session.close()
                self._session = self._open()
                raise

    def close(self) -> None:
        with self._lock:
            self._session.close()


class ChdbExecutor:
    """chDB sessions on one data dir: the writer's, a pool of read-only ones, and one that parses for the guard.

    Queries of different sessions run at the same time (chDB serializes only within a session), so a slow
    analyst query never holds up the writer's inserts."""

    def __init__(self, data_dir: Path, analyst_timeout_s: float, analyst_max_memory_mb: int,
                 analyst_sessions: int = ANALYST_SESSIONS) -> None:
        from chdb import session  # heavy import: only the daemon needs it

        def writer():
            opened = session.Session(str(data_dir))
            opened.query("SET session_timezone = 'UTC'", DEFAULT_FORMAT)
            return opened

        def reader():
            opened = writer()
            for statement in (f"SET max_execution_time = {analyst_timeout_s:g}",
                              f"SET max_memory_usage = {int(analyst_max_memory_mb) * 1024 * 1024}", "SET readonly = 1"):
                opened.query(statement, DEFAULT_FORMAT)  # readonly last: after it no setting can change
            return opened

        self.analyst_timeout_s = analyst_timeout_s
        self._writer = _Lane(writer)
        self.version = self.run("SELECT version()", DEFAULT_FORMAT).decode().strip()
        self._parser = _Lane(reader)
        self._pool_size = analyst_sessions
        self._readers: queue.Queue[_Lane] = queue.Queue()
        for _ in range(analyst_sessions):
            self._readers.put(_Lane(reader))

    def run(self, sql: str, fmt: str, params: dict[str, str] | None = None, readonly: bool = False) -> bytes:
        """Run `sql` on the writer's session, or (`readonly`) on a free read-only one (503 if none frees up in time)."""
        if not readonly:
            return self._writer.query(sql, fmt, params)
        try:
            reader = self._readers.get(timeout=self.analyst_timeout_s)
        except queue.Empty:
            raise QueryRefused(503, 202, f"all {self._pool_size} read-only sessions stayed busy for {self.analyst_timeout_s:g}s: retry later") from None
        try:
            return reader.query(sql, fmt, params)
        finally:
            self._readers.put(reader)

    def analyst_sql(self, sql: str, params: dict[str, str]) -> str:
        """The analyst's query as ClickHouse normalizes it (what then runs); QueryRefused when the guard refuses it.
        A query that does not parse (or holds more than one statement) is refused with ClickHouse's syntax error (400)."""
        try:
            normalized = self._parser.query("SELECT formatQuery({moviemotion_sql:String})", "TabSeparatedRaw",
                                            {"moviemotion_sql": analyst_guard.tsv_escape(sql)}).decode().rstrip("\n")
        except Exception as exc:  # chDB's error types: the query does not parse
            text = str(exc).split(" In scope SELECT formatQuery(")[0].rstrip(": .")
            code = _ERROR_CODE.search(text)
            raise QueryRefused(400, int(code.group(1)) if code else 62, re.sub(r"^Code: \d+\. DB::Exception: ", "", text)) from None
        reason = analyst_guard.output_refusal(normalized)
        if reason is None:
            reason = analyst_guard.refusal(self._parser.query(f"EXPLAIN AST {normalized}", "TabSeparated", params).decode())
        if reason is not None:
            raise QueryRefused(403, 497, f"{ANALYST}: {reason}")
        return normalized

    def close(self) -> None:
        self._parser.close()
        while not self._readers.empty():
            self._readers.get_nowait().close()
        self._writer.close()


def _exception_text(code: int, message: str, name: str) -> bytes:
    return f"Code: {code}. DB::Exception: {message}. ({name})\n".encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "moviemotion-chdb"
    executor: ChdbExecutor  # set on the subclass built by make_server
    passwords: dict[str, Secret]  # user -> password, likewise

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._handle(readonly=True)

    def do_POST(self) -> None:  # noqa: N802
        self._handle(readonly=False)

    def _credentials(self) -> tuple[str, str] | None:
        """(user, password) from basic auth or the X-ClickHouse-User/Key headers; None when neither is given."""
        header = self.headers.get("Authorization", "")
        user, key = self.headers.get("X-ClickHouse-User"), self.headers.get("X-ClickHouse-Key")
        if header:
            if user is not None or key is not None:
                raise QueryRefused(400, 495, "give credentials either as basic auth or as X-ClickHouse-User/Key headers, not both")
            scheme, _, encoded = header.partition(" ")
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            if scheme.lower() != "basic" or ":" not in decoded:
                raise QueryRefused(401, 516, "malformed Authorization header (expected Basic base64(user:password))")
            name, _, password = decoded.partition(":")
            return name, password
        if user is None and key is None:
            return None
        return user or "", key or ""

    def _authenticate(self) -> str:
        """The authenticated user's name; QueryRefused(401) for missing or wrong credentials."""
        given = self._credentials()
        if given is None:
            raise QueryRefused(401, 194, "credentials required: HTTP basic auth or X-ClickHouse-User/X-ClickHouse-Key (users writer, analyst)")
        name, password = given
        expected = self.passwords.get(name)
        ok = hmac.compare_digest(password.encode(), (expected.reveal() if expected else "\0").encode())
        if not (ok and expected):
            log.warning("refused a request from %s: wrong password or unknown user %r", self.client_address[0], name)
            raise QueryRefused(401, 516, f"{name}: Authentication failed: password is incorrect, or there is no user with such name")
        return name

    def _body_length(self, user: str) -> int:
        if self.headers.get("Transfer-Encoding"):
            raise QueryRefused(411, 1000, "chunked request bodies are not supported: send Content-Length")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            raise QueryRefused(400, 1000, f"bad Content-Length {self.headers.get('Content-Length')!r}")
        if length > MAX_BODY[user]:
            raise QueryRefused(413, 1000, f"request body of {length} bytes is over {user}'s limit of {MAX_BODY[user]} bytes"
                                          + (": split the insert into smaller batches" if user == WRITER else ""))
        return length

    def _handle(self, readonly: bool) -> None:
        url = urlsplit(self.path)
        args = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        has_body = (self.headers.get("Content-Length") or "0").strip() != "0" or bool(self.headers.get("Transfer-Encoding"))
        if url.path == "/ping" or (url.path == "/" and "query" not in args and not has_body):
            return self._reply(200, b"Ok.\n", "text/plain")
        if url.path != "/":
            return self._reply(404, f"Unknown path {url.path}\n".encode(), "text/plain")
        try:
            user = self._authenticate()
            length = self._body_length(user)
        except QueryRefused as exc:
            self.close_connection = self.close_connection or has_body  # an unread body: the connection cannot carry another request
            return self._refuse(exc)
        body_text = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
        sql = f"{args['query']}\n{body_text}" if "query" in args else body_text
        fmt = format_clause(args.get("query", body_text)) or args.get("default_format", DEFAULT_FORMAT)
        params = {k[len("param_"):]: v for k, v in args.items() if k.startswith("param_")}
        try:
            if user == ANALYST:
                sql = self.executor.analyst_sql(sql, params)
            answer = self.executor.run(sql, fmt, params, readonly=readonly or user == ANALYST)
        except QueryRefused as exc:
            return self._refuse(exc)
        except Exception as exc:  # chDB raises its own error types; all are query failures for the client
            text = str(exc)
            match = _ERROR_CODE.search(text)
            code = match.group(1) if match else "1000"
            status = 403 if code in _FORBIDDEN_CODES else 500
            return self._reply(status, (text + "\n").encode(), "text/plain", {"X-ClickHouse-Exception-Code": code})
        self._reply(200, answer, _CONTENT_TYPES.get(fmt, "text/plain"), {"X-ClickHouse-Format": fmt})

    def _refuse(self, exc: QueryRefused) -> None:
        names = {400: "SYNTAX_ERROR" if exc.code == 62 else "BAD_REQUEST", 401: "AUTHENTICATION_FAILED", 403: "ACCESS_DENIED",
                 411: "LENGTH_REQUIRED", 413: "REQUEST_TOO_LARGE", 503: "TOO_MANY_SIMULTANEOUS_QUERIES"}
        headers = {"X-ClickHouse-Exception-Code": str(exc.code)}
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="moviemotion-store"'
        if self.close_connection:
            headers["Connection"] = "close"
        self._reply(exc.status, _exception_text(exc.code, str(exc), names.get(exc.status, "ERROR")), "text/plain", headers)

    def _reply(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-ClickHouse-Server-Display-Name", "moviemotion-embedded")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server signature)
        log.debug("%s " + format, self.address_string(), *args)


def make_server(executor: ChdbExecutor, passwords: dict[str, Secret], host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) answering queries with `executor` for the users of `passwords`."""
    handler = type("StoreHandler", (_Handler,), {"executor": executor, "passwords": dict(passwords)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve(settings: Settings, port: int = 0) -> None:
    """Open the chDB data dir, make the users' passwords (first start), publish store.json and serve until
    SIGTERM/SIGINT. An analyst query's limits are the settings' `store_analyst_*`."""
    data_dir = store_dir(settings)
    data_dir.mkdir(parents=True, exist_ok=True)
    passwords = ensure_store_passwords(settings.state_dir)
    executor = ChdbExecutor(data_dir, settings.store_analyst_timeout_s, settings.store_analyst_max_memory_mb)
    server = make_server(executor, passwords, port=port)
    host, bound_port = server.server_address[:2]
    info = StoreInfo(url=f"http://{host}:{bound_port}", pid=os.getpid(), port=bound_port, data_dir=str(data_dir), version=executor.version)

    def stop(signum: int, _frame) -> None:
        log.info("signal %d: stopping the embedded store", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _write_store_info(data_dir, info)
    log.info("embedded ClickHouse %s serving %s on %s", executor.version, data_dir, info.url)
    try:
        server.serve_forever()
    finally:
        _remove_store_info(data_dir)
        server.server_close()
        executor.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the embedded chDB store over ClickHouse's HTTP interface.")
    parser.add_argument("--state-dir", type=Path, default=None, help="MoviEmotion state dir (default: settings).")
    parser.add_argument("--port", type=int, default=0, help="Port on 127.0.0.1 (default: a free one).")
    parser.add_argument("--analyst-timeout", type=float, default=None,
                        help="Seconds an analyst query may run (default: settings' store_analyst_timeout_s).")
    parser.add_argument("--analyst-max-memory-mb", type=int, default=None,
                        help="MiB one analyst query may use (default: settings' store_analyst_max_memory_mb).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(state_dir=args.state_dir.resolve() if args.state_dir else None,
                             store_analyst_timeout_s=args.analyst_timeout,
                             store_analyst_max_memory_mb=args.analyst_max_memory_mb)  # None: the settings' value
    serve(settings, args.port)


if __name__ == "__main__":
    main()
