"""The embedded store daemon: one process owns the chDB data dir and serves ClickHouse's HTTP interface.

chDB lets only one process open a data directory, so the sink, the CLI and dashboards all talk to this
daemon over HTTP on 127.0.0.1. Supported subset of https://clickhouse.com/docs/interfaces/http :
  - GET/POST `/` with the query in `?query=` (the POST body is then INSERT data) or in the POST body;
  - `default_format` (URL parameter) or a `FORMAT x` clause picks the output format (any chDB text format:
    TabSeparated, JSONEachRow, JSON, JSONCompact, CSV, Pretty ...); the default is TabSeparated;
  - `param_<name>` URL parameters fill `{name:Type}` placeholders;
  - `/ping` and a bare `/` answer "Ok.\n";
  - errors answer HTTP 500 with ClickHouse's exception text and the `X-ClickHouse-Exception-Code` header.
Not supported: authentication (the daemon only listens on loopback), sessions, HTTP compression, other
URL settings (ignored), read-only GET (GET runs any query). Grafana: the Altinity plugin
(vertamedia-clickhouse-datasource, FORMAT JSON over HTTP) fits this subset; the official plugin's HTTP mode
speaks the Native format and compression, which this daemon does not serve. Queries run one at a time on a single chDB session (a lock), threads serve HTTP.

The daemon publishes `{"pid", "port", "url", "data_dir", "version"}` in `<state_dir>/clickhouse/store.json`
once it answers, and removes that file when it stops (SIGTERM/SIGINT).
Run it with `python -m infra.clickhouse.embedded_server [--state-dir DIR] [--port N]`.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import threading
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from schemas.settings import Settings, load_settings

log = logging.getLogger(__name__)

STORE_FILE = "store.json"
DEFAULT_FORMAT = "TabSeparated"
_FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_ERROR_CODE = re.compile(r"Code:\s*(\d+)")
_CONTENT_TYPES = {"JSON": "application/json", "JSONCompact": "application/json", "JSONEachRow": "application/x-ndjson", "CSV": "text/csv"}


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


class ChdbExecutor:
    """One chDB session used by every HTTP thread, one query at a time."""

    def __init__(self, data_dir: Path) -> None:
        from chdb import session  # heavy import: only the daemon needs it

        self._session = session.Session(str(data_dir))
        self._lock = threading.Lock()
        self.run("SET session_timezone = 'UTC'", DEFAULT_FORMAT)
        self.version = self.run("SELECT version()", DEFAULT_FORMAT).decode().strip()

    def run(self, sql: str, fmt: str, params: dict[str, str] | None = None) -> bytes:
        with self._lock:
            return self._session.query(sql, fmt, params=params or None).bytes()

    def close(self) -> None:
        with self._lock:
            self._session.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "moviemotion-chdb"
    executor: ChdbExecutor  # set on the subclass built by make_server

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._handle(b"")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length) if length else b"")

    def _handle(self, body: bytes) -> None:
        url = urlsplit(self.path)
        args = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if url.path == "/ping" or (url.path == "/" and "query" not in args and not body):
            return self._reply(200, b"Ok.\n", "text/plain")
        if url.path != "/":
            return self._reply(404, f"Unknown path {url.path}\n".encode(), "text/plain")
        body_text = body.decode("utf-8", errors="replace")
        sql = f"{args['query']}\n{body_text}" if "query" in args else body_text
        fmt = format_clause(args.get("query", body_text)) or args.get("default_format", DEFAULT_FORMAT)
        params = {k[len("param_"):]: v for k, v in args.items() if k.startswith("param_")}
        try:
            answer = self.executor.run(sql, fmt, params)
        except Exception as exc:  # chDB raises its own error types; all are query failures for the client
            text = str(exc)
            code = _ERROR_CODE.search(text)
            return self._reply(500, (text + "\n").encode(), "text/plain", {"X-ClickHouse-Exception-Code": code.group(1) if code else "1000"})
        self._reply(200, answer, _CONTENT_TYPES.get(fmt, "text/plain"), {"X-ClickHouse-Format": fmt})

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


def make_server(executor: ChdbExecutor, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) answering queries with `executor`."""
    handler = type("StoreHandler", (_Handler,), {"executor": executor})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve(data_dir: Path, port: int = 0) -> None:
    """Open the chDB data dir, publish store.json and serve until SIGTERM/SIGINT."""
    data_dir.mkdir(parents=True, exist_ok=True)
    executor = ChdbExecutor(data_dir)
    server = make_server(executor, port=port)
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(state_dir=args.state_dir.resolve() if args.state_dir else None)
    serve(store_dir(settings), args.port)


if __name__ == "__main__":
    main()
