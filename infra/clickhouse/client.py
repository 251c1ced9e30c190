"""The one ClickHouse client API every component uses, for the embedded store and for real servers.

`connect(settings)` gives an `HttpClient` talking to the embedded daemon (address from store.json; as its
`writer`, or with `user=ANALYST` as its read-only analyst) when `settings.clickhouse_url` is empty, else a
`NativeClient` (clickhouse-driver, native protocol) for `clickhouse://user:pass@host:port/db`. Both behave the same:
  - params use clickhouse-driver's `%(name)s` syntax and escaping on both;
  - DateTime values go in as `datetime` (naive = UTC) and come back as naive UTC `datetime`s
    (real servers are expected to run in UTC, like the local ones);
  - data goes in with `insert(table, rows)`; `execute` refuses INSERT ... VALUES (...) with inline data,
    which hangs over 18.16's native protocol;
  - server-side failures raise `ClickHouseError`, an unreachable store raises `ClickHouseUnavailable`
    (retry policy is the caller's).
"""
from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

from clickhouse_driver import Client as DriverClient
from clickhouse_driver import errors as driver_errors
from clickhouse_driver.util.escape import escape_params

from infra.clickhouse.embedded_server import format_clause, read_store_info
from infra.clickhouse.store_auth import WRITER, store_password
from schemas.secrets import Secret, url_with_password
from schemas.settings import Settings

_INLINE_VALUES = re.compile(r"^\s*INSERT\s+INTO\s+.*?\bVALUES\s*\(", re.IGNORECASE | re.DOTALL)


class ClickHouseUnavailable(ConnectionError):
    """The store/server cannot be reached (not running, refused, timed out)."""


_ERROR_CODE = re.compile(r"Code:\s*(\d+)")


class ClickHouseError(RuntimeError):
    """The server answered with an exception (bad SQL, unknown table, bad data ...)."""

    @property
    def code(self) -> int | None:
        """ClickHouse's error code ('Code: 252. DB::Exception: ...', as both clients word the message), if any."""
        match = _ERROR_CODE.search(str(self))
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple]


class ClickHouseClient(ABC):
    """Same methods on the embedded store and on a real server."""

    @abstractmethod
    def _result(self, sql: str, params: Mapping[str, Any] | None) -> QueryResult: ...

    def result(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        """Run a query (without a FORMAT clause) and return column names, ClickHouse types and rows."""
        if format_clause(sql):
            raise ValueError(f"drop the `FORMAT {format_clause(sql)}` clause: the client returns rows (the CLI has --format)")
        return self._result(sql, params)

    @abstractmethod
    def _execute(self, sql: str, params: Mapping[str, Any] | None) -> None: ...

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement whose answer is not needed (DDL, ALTER, INSERT ... SELECT)."""
        if _INLINE_VALUES.match(sql):
            raise ValueError("INSERT ... VALUES with inline data never completes over 18.16's native protocol: use insert(table, rows)")
        self._execute(sql, params)

    @abstractmethod
    def _insert(self, table: str, columns: list[str], rows: Sequence[Mapping[str, Any]], settings: Mapping[str, Any],
                query_id: str | None) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        return self.result(sql, params).rows

    def query_dicts(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict]:
        res = self.result(sql, params)
        return [dict(zip(res.columns, row)) for row in res.rows]

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]], *, dedup_token: str | None = None,
               query_id: str | None = None) -> int:
        """Insert rows (dicts with the same keys; missing table columns take their DEFAULT) in one batch.

        `dedup_token`: ClickHouse's `insert_deduplication_token`, with `deduplicate_blocks_in_dependent_materialized_views`
        so the views' blocks are deduplicated too; only for servers and tables that support it (22.2+, a table with
        `non_replicated_deduplication_window`: see infra/clickhouse/sink.py). `query_id`: the INSERT's id in
        `system.processes` (the embedded daemon ignores it)."""
        if not rows:
            return 0
        columns = list(rows[0])
        if any(row.keys() != rows[0].keys() for row in rows):
            raise ValueError(f"insert into {table}: every row must have the same columns as the first ({columns})")
        settings = {} if dedup_token is None else {
            "insert_deduplication_token": dedup_token, "deduplicate_blocks_in_dependent_materialized_views": 1}
        self._insert(table, columns, rows, settings, query_id)
        return len(rows)

    def server_version(self) -> tuple[int, ...]:
        return parse_version(self.query("SELECT version()")[0][0])

    def __enter__(self) -> "ClickHouseClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_version(text: str) -> tuple[int, ...]:
    """'18.16.1' -> (18, 16, 1)."""
    return tuple(int(part) for part in text.split(".") if part.isdigit())


# What clickhouse-driver's escaping needs to know about the server: its timezone (UTC).
_UTC_CONTEXT = SimpleNamespace(server_info=SimpleNamespace(get_timezone=lambda: "UTC"))


def substitute(sql: str, params: Mapping[str, Any] | None) -> str:
    """Fill `%(name)s` placeholders exactly like clickhouse-driver does (no params: SQL untouched)."""
    return sql if params is None else sql % escape_params(dict(params), _UTC_CONTEXT)


def _utc_text(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} to ClickHouse: {value!r}")


def _unwrap(ch_type: str, wrapper: str) -> str | None:
    return ch_type[len(wrapper) + 1 : -1] if ch_type.startswith(wrapper + "(") else None


def from_json(ch_type: str, value: Any) -> Any:
    """A JSONCompact cell as the Python value clickhouse-driver would return for that type."""
    if value is None:
        return None
    for wrapper in ("Nullable", "LowCardinality"):
        inner = _unwrap(ch_type, wrapper)
        if inner is not None:
            return from_json(inner, value)
    inner = _unwrap(ch_type, "Array")
    if inner is not None:
        return [from_json(inner, item) for item in value]
    if ch_type.startswith(("Int", "UInt")):
        return int(value)
    if ch_type.startswith("Float"):
        return float(value)
    if ch_type.startswith("DateTime"):
        return datetime.fromisoformat(value)
    if ch_type == "Date":
        return date.fromisoformat(value)
    if ch_type.startswith("Decimal"):
        return Decimal(str(value))
    return value


class HttpClient(ClickHouseClient):
    """ClickHouse's HTTP interface (the embedded store daemon; also works against a real server's HTTP port)."""

    def __init__(self, url: str, timeout: float = 30.0, user: str | None = None, password: Secret | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.user = user
        self._headers = {}
        if user is not None:  # basic auth, as ClickHouse's HTTP interface takes it (never in the URL)
            token = base64.b64encode(f"{user}:{password.reveal() if password else ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    def _post(self, sql: str, data: bytes | None = None, **args: str) -> bytes:
        if data is None:
            url, body = f"{self.url}/?{urllib.parse.urlencode(args)}", sql.encode()
        else:
            url, body = f"{self.url}/?{urllib.parse.urlencode({'query': sql, **args})}", data
        request = urllib.request.Request(url, data=body, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            raise ClickHouseError(exc.read().decode(errors="replace").strip()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClickHouseUnavailable(f"ClickHouse store at {self.url} unreachable ({reason}); is it running? (`moviemotion up`)") from exc

    def _result(self, sql: str, params: Mapping[str, Any] | None) -> QueryResult:
        answer = self._post(substitute(sql, params), default_format="JSONCompact")
        if not answer.strip():
            return QueryResult([], [], [])
        doc = json.loads(answer)
        names = [col["name"] for col in doc["meta"]]
        types = [col["type"] for col in doc["meta"]]
        rows = [tuple(from_json(t, v) for t, v in zip(types, row)) for row in doc["data"]]
        return QueryResult(names, types, rows)

    def _execute(self, sql: str, params: Mapping[str, Any] | None) -> None:
        self._post(substitute(sql, params))

    def _insert(self, table: str, columns: list[str], rows: Sequence[Mapping[str, Any]], settings: Mapping[str, Any],
                query_id: str | None) -> None:
        lines = "\n".join(json.dumps(row, default=_json_default) for row in rows)
        # Settings go in the statement: the embedded daemon ignores URL settings.
        clause = substitute(" SETTINGS " + ", ".join(f"{name} = %({name})s" for name in settings), settings) if settings else ""
        args = {"query_id": query_id} if query_id else {}
        self._post(f"INSERT INTO {table} ({', '.join(columns)}){clause} FORMAT JSONEachRow", lines.encode(), **args)

    def ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=self.timeout) as response:
                return response.read() == b"Ok.\n"
        except OSError:
            return False

    def close(self) -> None:
        """Nothing held between requests."""


def _as_utc(value: Any) -> Any:
    return value.replace(tzinfo=timezone.utc) if isinstance(value, datetime) and value.tzinfo is None else value


class NativeClient(ClickHouseClient):
    """A real clickhouse-server over the native protocol (clickhouse-driver)."""

    _UNREACHABLE = (driver_errors.NetworkError, driver_errors.SocketTimeoutError, EOFError, OSError)

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self._client = DriverClient.from_url(url)
        self._client.connection.connect_timeout = min(timeout, 10.0)
        self._client.connection.send_receive_timeout = timeout

    def _run(self, sql: str, params: Any = None, **kwargs: Any) -> Any:
        try:
            return self._client.execute(sql, params, **kwargs)
        except driver_errors.ServerException as exc:
            raise ClickHouseError(f"Code: {exc.code}. {exc.message.split('Stack trace:')[0].strip()}") from None
        except self._UNREACHABLE as exc:
            self._client.disconnect()
            raise ClickHouseUnavailable(f"ClickHouse server {self._safe_url()} unreachable: {exc}") from exc

    def _safe_url(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl()

    def _result(self, sql: str, params: Mapping[str, Any] | None) -> QueryResult:
        rows, columns = self._run(sql, params, with_column_types=True)
        return QueryResult([name for name, _ in columns], [ch_type for _, ch_type in columns], [tuple(row) for row in rows])

    def _execute(self, sql: str, params: Mapping[str, Any] | None) -> None:
        self._run(sql, params)

    def _insert(self, table: str, columns: list[str], rows: Sequence[Mapping[str, Any]], settings: Mapping[str, Any],
                query_id: str | None) -> None:
        values = [{name: _as_utc(row[name]) for name in columns} for row in rows]
        self._run(f"INSERT INTO {table} ({', '.join(columns)}) VALUES", values, settings=dict(settings) or None,
                  query_id=query_id)

    def close(self) -> None:
        self._client.disconnect()


def connect(settings: Settings, timeout: float = 30.0, user: str = WRITER) -> ClickHouseClient:
    """The configured store: the embedded daemon (clickhouse_url == '') as `user` (the writer, or the read-only
    analyst; its password from the state dir), or a real server as the URL's user (`user` is then not used: give
    an analyst the analyst's URL)."""
    if settings.clickhouse_url:
        return NativeClient(url_with_password(settings.clickhouse_url, settings.clickhouse_password), timeout)
    info = read_store_info(settings)
    if info is None:
        raise ClickHouseUnavailable(f"store not running: run `moviemotion up` (no store.json under {settings.state_dir})")
    return HttpClient(info.url, timeout, user, store_password(settings.state_dir, user))
