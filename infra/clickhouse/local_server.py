"""A real `clickhouse-server` process in a work dir (tests, fault tests, local runs without chDB).

Writes a minimal config.xml + users.xml (UTC, loopback only, free ports unless given), starts the binary
detached, waits (with a timeout) until it answers `/ping`. Extra users (e.g. a read-only analyst and a
sink user) come from `ServerUser` entries rendered into the users file.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from infra.ports import free_ports

SERVER_BINARIES = ("clickhouse-server", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server")

_CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger>
    <level>information</level>
    <log>{dir}/log/server.log</log>
    <errorlog>{dir}/log/server.err.log</errorlog>
    <size>10M</size>
    <count>2</count>
    <console>0</console>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{tcp_port}</tcp_port>
  <http_port>{http_port}</http_port>
  <path>{dir}/data/</path>
  <tmp_path>{dir}/tmp/</tmp_path>
  <user_files_path>{dir}/user_files/</user_files_path>
  <format_schema_path>{dir}/format_schemas/</format_schema_path>
  <users_config>{dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
"""

_USERS = """<?xml version="1.0"?>
<yandex>
  <profiles>
    <default><max_memory_usage>4000000000</max_memory_usage></default>
    <readonly><readonly>1</readonly></readonly>
  </profiles>
  <users>
{users}
  </users>
  <quotas>
    <default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default>
  </quotas>
</yandex>
"""

_USER = """    <{name}>
      <password>{password}</password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>{profile}</profile>
      <quota>default</quota>{databases}
    </{name}>"""


@dataclass(frozen=True)
class ServerUser:
    """A users.xml entry. profile 'readonly' gives a read-only user; databases limits what it may open."""

    name: str
    password: str = ""
    profile: str = "default"
    databases: tuple[str, ...] = ()

    def render(self) -> str:
        allowed = "".join(f"<database>{escape(db)}</database>" for db in self.databases)
        return _USER.format(
            name=self.name,
            password=escape(self.password),
            profile=self.profile,
            databases=f"\n      <allow_databases>{allowed}</allow_databases>" if allowed else "",
        )


def render_users(users: tuple[ServerUser, ...]) -> str:
    return _USERS.format(users="\n".join(user.render() for user in users))


def find_server_binary() -> str | None:
    """Path of the clickhouse-server binary, or None when it is not installed."""
    for candidate in SERVER_BINARIES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class ClickHouseServerProcess:
    """A clickhouse-server started from `work_dir`. Start it with `.start()` (or use it as a context manager)."""

    def __init__(
        self,
        work_dir: Path,
        tcp_port: int | None = None,
        http_port: int | None = None,
        users: tuple[ServerUser, ...] = (ServerUser("default"),),
        binary: str | None = None,
    ) -> None:
        self.work_dir = Path(work_dir).resolve()
        picked = free_ports(2)
        self.tcp_port = tcp_port or picked[0]
        self.http_port = http_port or picked[1]
        self.users = users
        self.binary = binary or find_server_binary()
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Native-protocol URL for `connect` / `Settings.clickhouse_url` (the default user)."""
        return self.url_for("default")

    def url_for(self, user: str, database: str = "default") -> str:
        password = next(u.password for u in self.users if u.name == user)
        auth = f"{user}:{password}" if password else user
        return f"clickhouse://{auth}@127.0.0.1:{self.tcp_port}/{database}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def write_config(self) -> Path:
        for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
            (self.work_dir / sub).mkdir(parents=True, exist_ok=True)
        (self.work_dir / "users.xml").write_text(render_users(self.users))
        config = self.work_dir / "config.xml"
        config.write_text(_CONFIG.format(dir=self.work_dir, tcp_port=self.tcp_port, http_port=self.http_port))
        return config

    def start(self, timeout: float = 30.0) -> "ClickHouseServerProcess":
        if self.binary is None:
            raise FileNotFoundError("clickhouse-server is not installed (apt-get install clickhouse-server)")
        if self.running():
            return self
        config = self.write_config()
        with open(self.work_dir / "log" / "stdout.log", "ab") as out:
            self._proc = subprocess.Popen(
                [self.binary, f"--config-file={config}"],
                cwd=self.work_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(timeout)
        return self

    def _ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/ping", timeout=1) as response:
                return response.read() == b"Ok.\n"
        except OSError:
            return False

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.work_dir / "log" / "server.err.log").read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no error log)"

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ping():
                return
            if self._proc.poll() is not None:
                raise RuntimeError(f"clickhouse-server exited with code {self._proc.returncode}; error log:\n{self._log_tail()}")
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"clickhouse-server did not answer on {self.http_url} within {timeout:.0f}s; error log:\n{self._log_tail()}")

    def _signal_and_wait(self, signum: int, timeout: float) -> bool:
        if not self.running():
            return True
        os.kill(self._proc.pid, signum)
        try:
            self._proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (SIGTERM), SIGKILL if it does not exit within `timeout`."""
        if not self._signal_and_wait(signal.SIGTERM, timeout):
            self.kill()

    def kill(self) -> None:
        """Hard crash (SIGKILL), for fault tests."""
        if not self._signal_and_wait(signal.SIGKILL, 10.0):
            raise RuntimeError(f"clickhouse-server pid {self._proc.pid} survived SIGKILL")

    def restart(self, timeout: float = 30.0) -> "ClickHouseServerProcess":
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> "ClickHouseServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
