"""Lifecycle of the embedded store daemon: start (idempotent), stop, status.

The daemon (`infra.clickhouse.embedded_server`) runs detached with its log at
`<state_dir>/clickhouse/store.log`; every wait here has a timeout and failures quote that log.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from infra.clickhouse.client import ClickHouseUnavailable, HttpClient, connect
from infra.clickhouse.embedded_server import STORE_FILE, StoreInfo, read_store_info, store_dir
from infra.clickhouse.migrations import CORE_TABLES, applied_migrations, existing_tables
from schemas.settings import Settings

log = logging.getLogger(__name__)

LOG_FILE = "store.log"
_POLL_S = 0.1

__all__ = ["StoreError", "StoreInfo", "start_store", "stop_store", "store_status"]


class StoreError(RuntimeError):
    """The embedded store daemon could not be started or stopped."""


def _alive(pid: int) -> bool:
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)  # our own exited child would linger as a zombie
        if reaped:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _log_tail(settings: Settings, lines: int = 20) -> str:
    try:
        tail = (store_dir(settings) / LOG_FILE).read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(tail)


def _answering(info: StoreInfo | None) -> bool:
    return info is not None and _alive(info.pid) and HttpClient(info.url, timeout=2).ping()


def _wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(_POLL_S)
    return predicate()


def _spawn(settings: Settings) -> subprocess.Popen:
    directory = store_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOG_FILE, "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "infra.clickhouse.embedded_server", "--state-dir", str(settings.state_dir),
             "--analyst-timeout", f"{settings.store_analyst_timeout_s:g}",
             "--analyst-max-memory-mb", str(settings.store_analyst_max_memory_mb)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[2],
        )


def start_store(settings: Settings, timeout: float = 30.0) -> StoreInfo:
    """Start the embedded store daemon, or return the one already running for this state dir."""
    if settings.clickhouse_url:
        raise ValueError(f"a real ClickHouse server is configured ({settings.clickhouse_url.split('@')[-1]}); the embedded store is not used")
    info = read_store_info(settings)
    if info is not None and _alive(info.pid):
        if _wait_until(lambda: _answering(info), timeout):
            return info
        raise StoreError(f"embedded store pid {info.pid} runs but does not answer at {info.url}; log tail:\n{_log_tail(settings)}")
    (store_dir(settings) / STORE_FILE).unlink(missing_ok=True)  # stale: its daemon is gone
    proc = _spawn(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = read_store_info(settings)
        if _answering(info):  # ours, or another starter's that won the data dir's lock
            log.info("embedded store %s (pid %d)", info.url, info.pid)
            return info
        if proc.poll() is not None:
            raise StoreError(f"embedded store exited with code {proc.returncode}; log tail:\n{_log_tail(settings)}")
        time.sleep(_POLL_S)
    proc.kill()
    proc.wait(timeout=5)
    raise StoreError(f"embedded store did not answer within {timeout:.0f}s; log tail:\n{_log_tail(settings)}")


def stop_store(settings: Settings, timeout: float = 30.0) -> bool:
    """Stop the embedded store daemon (SIGTERM, then SIGKILL after `timeout`). False if none was running."""
    info = read_store_info(settings)
    if info is None:
        return False
    if not _alive(info.pid):
        (store_dir(settings) / STORE_FILE).unlink(missing_ok=True)
        return False
    os.kill(info.pid, signal.SIGTERM)
    if not _wait_until(lambda: not _alive(info.pid), timeout):
        log.warning("embedded store pid %d ignored SIGTERM for %.0fs: killing it", info.pid, timeout)
        os.kill(info.pid, signal.SIGKILL)
        if not _wait_until(lambda: not _alive(info.pid), 5.0):
            raise StoreError(f"embedded store pid {info.pid} survived SIGKILL")
    (store_dir(settings) / STORE_FILE).unlink(missing_ok=True)
    return True


def store_status(settings: Settings) -> dict:
    """running, url, pid, version, applied migrations and row counts of the core tables."""
    status: dict = {"running": False, "url": None, "pid": None, "version": None, "migrations": [], "row_counts": {}}
    if not settings.clickhouse_url:
        info = read_store_info(settings)
        if not _answering(info):
            return status
        status.update(url=info.url, pid=info.pid)
    else:
        status["url"] = settings.clickhouse_url.split("@")[-1]
    try:
        with connect(settings, timeout=10) as client:
            status["version"] = ".".join(map(str, client.server_version()))
            status["migrations"] = applied_migrations(client)
            present = existing_tables(client)
            status["row_counts"] = {t: client.query(f"SELECT count() FROM {t}")[0][0] for t in CORE_TABLES if t in present}
    except ClickHouseUnavailable:
        return status
    status["running"] = True
    return status
