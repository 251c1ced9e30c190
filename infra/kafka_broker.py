"""Local single-node Kafka: one KRaft JVM (broker + controller) run from the Maven-resolved jars.

`ensure_jars()` resolves infra/kafka/lib with Maven when missing; `KafkaBroker` formats its storage once,
launches the JVM detached (own session, pid file), waits until it answers a metadata request and stops it.
Everything lives under `state_dir/kafka/` (server.properties, cluster.id, data/, logs/, broker.pid).
With `security=BrokerSecurity(...)` (infra/kafka_security.py) it listens SASL_SSL only, with ACLs enforced; a state
dir keeps the mode it was formatted in (starting it in the other one is a BrokerError).
`admin_client` and `ping` are the shared Kafka-admin entry points for the rest of infra/; `security` is the
client options from `kafka_python_kwargs(settings)` (None = plaintext).
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from kafka import KafkaAdminClient
from kafka.errors import KafkaError, UnknownBrokerIdError

from infra.kafka_security import BROKER_LISTENER, BrokerSecurity

# How often the broker deletes expired segments (here and in infra/compose/kafka-server.properties): part of how
# long a crop can stay readable (infra.topics.crop_lifetime_ms).
RETENTION_CHECK_INTERVAL_MS = 60 * 1000
log = logging.getLogger(__name__)

INFRA_DIR = Path(__file__).resolve().parent
POM = INFRA_DIR / "pom.xml"
KAFKA_DIR = INFRA_DIR / "kafka"
JARS_DIR = KAFKA_DIR / "lib"
LOG4J_CONFIG = KAFKA_DIR / "log4j2.properties"
# Written after a successful Maven run; holds the pom's hash so a changed pom re-resolves.
JARS_MARKER = ".resolved-pom-sha256"
BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
BROKER_JVM_OPTS = ("-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                   "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")
TOOL_JVM_OPTS = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")
LOCAL_HOSTS = ("127.0.0.1", "localhost")


class BrokerError(RuntimeError):
    """The local broker could not be prepared, started, reached or stopped."""


class ToolMissing(BrokerError):
    """A required executable (java, mvn) is not installed."""


class BrokerUnreachable(BrokerError):
    """No Kafka broker answered at the bootstrap address in time."""


def require_executable(name: str, purpose: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"`{name}` not found on PATH; it is needed to {purpose}. Install it (Debian: apt-get install "
                          f"{'openjdk-17-jre-headless' if name == 'java' else 'maven'}) and retry.")
    return path


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def jars_complete() -> bool:
    marker = JARS_DIR / JARS_MARKER
    return marker.is_file() and marker.read_text().strip() == _pom_digest()


def ensure_jars(timeout: float = 900) -> Path:
    """Return infra/kafka/lib, running Maven first if it is missing, incomplete or older than the pom."""
    if jars_complete():
        return JARS_DIR
    mvn = require_executable("mvn", "resolve the Kafka jars from Maven Central")
    log.info("Resolving Kafka jars into %s with Maven (first run downloads ~55 MB)", JARS_DIR)
    cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"Maven did not finish resolving Kafka jars within {timeout:.0f}s: {' '.join(cmd)}") from exc
    if done.returncode != 0:
        raise BrokerError(f"Maven failed (exit {done.returncode}) resolving Kafka jars: {' '.join(cmd)}\n"
                          f"{_tail_text(done.stdout + done.stderr)}")
    (JARS_DIR / JARS_MARKER).write_text(_pom_digest())
    return JARS_DIR


def classpath(jars_dir: Path) -> str:
    return f"{jars_dir}/*"


def split_bootstrap(bootstrap: str) -> tuple[str, int]:
    """'host:port' -> (host, port); one clear error for anything else."""
    host, sep, port = bootstrap.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or "," in bootstrap:
        raise BrokerError(f"expected a single host:port bootstrap address, got {bootstrap!r}")
    return host, int(port)


def is_local_bootstrap(bootstrap: str) -> bool:
    return "," not in bootstrap and split_bootstrap(bootstrap)[0] in LOCAL_HOSTS


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _port_open(bootstrap: str, timeout_s: float) -> bool:
    host, port = split_bootstrap(bootstrap.split(",")[0])
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@contextmanager
def admin_client(bootstrap: str, timeout_s: float = 15,
                 security: Mapping[str, Any] | None = None) -> Iterator[KafkaAdminClient]:
    """A KafkaAdminClient whose bootstrap and requests give up after `timeout_s` (BrokerUnreachable)."""
    ms = max(1000, int(timeout_s * 1000))
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="moviemotion-admin",
                                 request_timeout_ms=ms, bootstrap_timeout_ms=ms, **(security or {}))
    except KafkaError as exc:
        raise BrokerUnreachable(f"no Kafka broker answered at {bootstrap} within {timeout_s:.0f}s ({exc}); "
                                f"is the stack up? (`moviemotion up`)") from exc
    try:
        yield admin
    finally:
        admin.close()


def is_transient(exc: BaseException) -> bool:
    """True for a failure that waiting cures: no broker answered (stopped, restarting) or Kafka says to retry (no
    leader or coordinator yet, a node not ready, a timeout). kafka-python's admin reports a partition without a
    leader yet (leader -1, just after a restart) as `UnknownBrokerIdError`, which it does not mark retriable: it is
    transient too. Authorization or configuration errors are not."""
    if isinstance(exc, (BrokerUnreachable, UnknownBrokerIdError)):
        return True
    return isinstance(exc, KafkaError) and bool(exc.retriable)


def ping(bootstrap: str, timeout_s: float = 5, security: Mapping[str, Any] | None = None) -> bool:
    """True when a broker at `bootstrap` answers a metadata request within `timeout_s`."""
    if not _port_open(bootstrap, timeout_s):
        return False
    try:
        with admin_client(bootstrap, timeout_s, security) as admin:
            admin.describe_cluster()
    except (KafkaError, BrokerUnreachable):
        return False
    return True


def _tail_text(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _tail_file(path: Path, lines: int = 30) -> str:
    if not path.is_file():
        return ""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 64 * 1024))
        return _tail_text(fh.read().decode("utf-8", "replace"), lines)


def _process_alive(pid: int) -> bool:
    """True for a live, non-zombie process; reaps it first when it is our own exited child."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace").split("\0")
    except (FileNotFoundError, ProcessLookupError):
        return []


class KafkaBroker:
    """One local KRaft node (broker+controller) on 127.0.0.1 with its state under `state_dir/kafka/`."""

    def __init__(self, state_dir: Path, port: int = 19092, controller_port: int = 19093,
                 security: BrokerSecurity | None = None) -> None:
        if port == controller_port:
            raise BrokerError(f"broker and controller ports must differ (both {port})")
        self.state_dir = Path(state_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.security = security
        self.home = self.state_dir / "kafka"
        self.data_dir = self.home / "data"
        self.logs_dir = self.home / "logs"
        self.config_file = self.home / "server.properties"
        self.cluster_id_file = self.home / "cluster.id"
        self.pid_file = self.home / "broker.pid"
        self.out_file = self.logs_dir / "broker.out"

    @classmethod
    def from_settings(cls, settings, security: BrokerSecurity | None = None) -> "KafkaBroker":
        host, port = split_bootstrap(settings.kafka_bootstrap)
        if host not in LOCAL_HOSTS:
            raise BrokerError(f"the local broker listens on 127.0.0.1 only; bootstrap {settings.kafka_bootstrap!r} "
                              f"names a remote broker")
        return cls(settings.state_dir, port=port, controller_port=settings.kafka_controller_port, security=security)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __repr__(self) -> str:
        return f"KafkaBroker({self.bootstrap}, state={self.home})"

    # -- process ------------------------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of this broker's live JVM, or None (a stale pid file does not count)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        cmd = _cmdline(pid)
        ours = BROKER_MAIN in cmd and str(self.config_file) in cmd
        return pid if ours and _process_alive(pid) else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def formatted_secure(self) -> bool | None:
        """Whether the formatted storage belongs to a SASL_SSL broker (per the server.properties it was started
        with); None while the storage is not formatted."""
        if not (self.data_dir / "meta.properties").is_file() or not self.config_file.is_file():
            return None
        listeners = [line for line in self.config_file.read_text().splitlines() if line.startswith("listeners=")]
        return any(f"{BROKER_LISTENER}://" in line for line in listeners)

    def require_mode(self, secure: bool) -> None:
        """BrokerError when this state dir's broker was set up (or runs) in the other mode than `secure`."""
        formatted = self.formatted_secure()
        if formatted is None or formatted == secure:
            return
        modes = {True: "secure (SASL_SSL)", False: "plaintext"}
        pid = self.pid()
        state = f"is running (pid {pid})" if pid else "was set up (its data is kept there)"
        raise BrokerError(f"the Kafka broker in {self.home} {state} as a {modes[formatted]} broker, but a "
                          f"{modes[secure]} one was asked for: use `moviemotion up{' --secure' if formatted else ''}` "
                          f"with this state dir, or another --state-dir{' after `moviemotion down`' if pid else ''}")

    def log_tail(self, lines: int = 30) -> str:
        parts = [(name, _tail_file(path, lines)) for name, path in
                 (("broker.out", self.out_file), ("server.log", self.logs_dir / "server.log"))]
        text = "\n".join(f"--- {name} (last lines) ---\n{tail}" for name, tail in parts if tail)
        return text or f"(no broker log yet under {self.logs_dir})"

    def start(self, timeout: float = 90) -> None:
        """Start (or reuse) the broker and return once it answers metadata requests; BrokerError otherwise."""
        self.require_mode(secure=self.security is not None)
        if self.is_running():
            log.info("Reusing running broker %s (pid %s)", self.bootstrap, self.pid())
            self.wait_ready(timeout)
            return
        self.pid_file.unlink(missing_ok=True)  # stale: its process is gone or is not this broker
        for port in (self.port, self.controller_port):
            if port_in_use(port):
                raise BrokerError(f"port {port} on 127.0.0.1 is already in use by another process; "
                                  f"choose other ports (--bootstrap / MOVIEMOTION_KAFKA_CONTROLLER_PORT)")
        java = require_executable("java", "run the Kafka broker")
        jars = ensure_jars()
        for path in (self.data_dir, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.config_file.touch(mode=0o600)  # holds the keystore and admin passwords in secure mode
        self.config_file.chmod(0o600)
        self.config_file.write_text(self._server_properties())
        self._format_storage(java, jars, timeout)
        self._launch(java, jars)
        try:
            self.wait_ready(timeout)
        except BrokerError:
            self.stop()
            raise

    def wait_ready(self, timeout: float = 90) -> None:
        """Block until the broker answers a metadata request; BrokerError if it dies or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                raise BrokerError(f"Kafka broker {self.bootstrap} is not running (exited or never started).\n"
                                  f"{self.log_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            admin = self.security.admin_kwargs() if self.security else None
            if ping(self.bootstrap, timeout_s=min(3.0, max(remaining, 0.5)), security=admin):
                return
            time.sleep(min(0.5, max(deadline - time.monotonic(), 0)))
        raise BrokerError(f"Kafka broker {self.bootstrap} did not answer within {timeout:.0f}s.\n{self.log_tail()}")

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the broker, wait up to `timeout`, then SIGKILL; removes the pid file. No-op when stopped."""
        pid = self.pid()
        if pid is not None:
            self._signal(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                log.warning("Broker pid %s ignored SIGTERM for %.0fs; killing it", pid, timeout)
                self._signal(pid, signal.SIGKILL)
                if not self._wait_exit(pid, 10):
                    raise BrokerError(f"Kafka broker pid {pid} survived SIGKILL")
        self.pid_file.unlink(missing_ok=True)

    # -- internals ----------------------------------------------------------------------------------------

    def _server_properties(self) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "12",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.check.interval.ms": str(RETENTION_CHECK_INTERVAL_MS),
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        if self.security is not None:
            props.update(self.security.server_properties(self.port, self.controller_port))
        header = "# Generated by infra/kafka_broker.py on every start; edit the code, not this file.\n"
        return header + "".join(f"{key}={value}\n" for key, value in props.items())

    def _cluster_id(self) -> str:
        if self.cluster_id_file.is_file():
            return self.cluster_id_file.read_text().strip()
        cluster_id = "-"
        while cluster_id.startswith("-"):  # like Kafka's Uuid.randomUuid: a leading '-' reads as an option to the CLI
            cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        self.cluster_id_file.write_text(cluster_id + "\n")
        return cluster_id

    def _format_storage(self, java: str, jars: Path, timeout: float) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return
        cmd = [java, *TOOL_JVM_OPTS, f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", f"-Dkafka.logs.dir={self.logs_dir}",
               "-cp", classpath(jars), STORAGE_TOOL, "format", "--ignore-formatted",
               "-t", self._cluster_id(), "-c", str(self.config_file),
               *(self.security.format_args() if self.security else ())]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"formatting Kafka storage took longer than {timeout:.0f}s") from exc
        if done.returncode != 0:
            raise BrokerError(f"formatting Kafka storage in {self.data_dir} failed (exit {done.returncode}):\n"
                              f"{_tail_text(done.stdout + done.stderr)}")

    def _launch(self, java: str, jars: Path) -> None:
        cmd = [java, *BROKER_JVM_OPTS, f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
               f"-Dkafka.logs.dir={self.logs_dir}", "-cp", classpath(jars), BROKER_MAIN, str(self.config_file)]
        with self.out_file.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.home, start_new_session=True)
        self.pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + 10  # /proc/<pid>/cmdline reads empty while the launcher execs the JVM
        while self.pid() is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        log.info("Started Kafka broker %s (pid %s), logs in %s", self.bootstrap, proc.pid, self.logs_dir)

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)  # launched as session leader: its group id is its pid
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)

    @staticmethod
    def _wait_exit(pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _process_alive(pid):
                return True
            time.sleep(0.2)
        return not _process_alive(pid)
