"""`moviemotion up --secure`: the local broker SASL_SSL with users and ACLs, driven through the real CLI.

The command runs as a subprocess (with -v: its whole console, DEBUG logs included, is checked for passwords);
clients connect with exactly the `export` lines it prints.
"""
from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner
from kafka.errors import TopicAuthorizationFailedError

from infra.kafka_broker import BrokerUnreachable, admin_client, ping
from infra.kafka_security import kafka_python_kwargs
from infra.ports import free_ports
from moviemotion.cli import main
from schemas.settings import Settings, load_settings
from producers.camera_producer import open_kafka_producer

pytestmark = pytest.mark.kafka
TIMEOUT_S = 30
# Client settings the developer's environment may hold; the test sets them only from the printed exports.
CLIENT_VARIABLES = ("KAFKA_BOOTSTRAP", "KAFKA_CONTROLLER_PORT", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM",
                    "KAFKA_USERNAME", "KAFKA_PASSWORD", "KAFKA_PASSWORD_FILE", "KAFKA_CA_FILE", "PROCESSOR_GROUP",
                    "STATE_DIR", "CLICKHOUSE_URL")


@dataclass(frozen=True)
class Stack:
    state_dir: Path
    bootstrap: str
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "moviemotion", "--state-dir", str(self.state_dir),
                               "--bootstrap", self.bootstrap, *args], env=self.env, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)

    def status(self) -> dict:
        done = self.cli("status", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture()
def stack(tmp_path) -> Iterator[Stack]:
    port, controller_port = free_ports(2)
    env = {name: value for name, value in os.environ.items()
           if name.removeprefix("MOVIEMOTION_") not in CLIENT_VARIABLES}
    env["MOVIEMOTION_KAFKA_CONTROLLER_PORT"] = str(controller_port)
    stack = Stack(tmp_path / "state", f"127.0.0.1:{port}", env)
    yield stack
    stack.cli("down")  # never leave a JVM or store behind, even on failure


def exports(output: str) -> dict[str, dict[str, str]]:
    """{username: {variable: value}} from the `export A=b C=d` lines `up --secure` prints."""
    found = {}
    for line in output.splitlines():
        if line.strip().startswith("export "):
            env = dict(word.split("=", 1) for word in shlex.split(line.strip())[1:])
            found[env["MOVIEMOTION_KAFKA_USERNAME"]] = env
    return found


def client(monkeypatch, env: dict[str, str]) -> Settings:
    """Settings as a client process that exported `env` gets them."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def secrets_in(state_dir: Path) -> list[str]:
    security = state_dir / "security"
    return [path.read_text().strip() for path in (*security.glob("*.password"), security / "tls" / "keystore.pass")]


def test_up_secure_serves_only_authenticated_roles_and_prints_no_password(stack, monkeypatch):
    up = stack.cli("-v", "up", "--secure", "--timeout", "120")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "(SASL_SSL): running" in up.stdout and "answering" in up.stdout

    security = stack.state_dir / "security"
    passwords = secrets_in(stack.state_dir)
    # Kafka's admin, camera and processor users, the TLS keystore, and the embedded store's writer and analyst.
    assert {path.name for path in security.glob("*.password")} >= {"clickhouse-writer.password", "clickhouse-analyst.password"}
    assert len(passwords) == 6 and all(passwords)
    broker_logs = "".join(path.read_text(errors="replace") for path in (stack.state_dir / "kafka" / "logs").glob("*"))
    for password in passwords:
        assert password not in up.stdout + up.stderr and password not in broker_logs
    assert stat.S_IMODE(security.stat().st_mode) == 0o700
    for path in (*security.glob("*.password"), security / "tls" / "keystore.pass", security / "tls" / "broker.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    roles = exports(up.stdout)
    assert set(roles) == {"admin", "camera", "processor"}
    assert roles["processor"]["MOVIEMOTION_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert roles["processor"]["MOVIEMOTION_KAFKA_CA_FILE"] == str(security / "tls" / "ca.pem")
    assert roles["camera"]["MOVIEMOTION_KAFKA_PASSWORD_FILE"] == str(security / "camera.password")

    # No credentials, or TLS without them: no answer, no topic list.
    assert not ping(stack.bootstrap, timeout_s=3)
    with pytest.raises(BrokerUnreachable):
        with admin_client(stack.bootstrap, timeout_s=3) as anonymous:
            anonymous.list_topics()

    processor = kafka_python_kwargs(client(monkeypatch, roles["processor"]))
    with admin_client(stack.bootstrap, TIMEOUT_S, processor) as admin:
        assert {"faces", "emotion-events", "dead-letters"} <= set(admin.list_topics())

    camera = client(monkeypatch, roles["camera"])
    assert camera.kafka_bootstrap == stack.bootstrap
    producer = open_kafka_producer(camera.kafka_bootstrap, timeout_s=15, security=kafka_python_kwargs(camera))
    try:
        assert producer.send("faces", key=b"seat-1", value=b"face").get(timeout=TIMEOUT_S).topic == "faces"
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send("emotion-events", key=b"seat-1", value=b"forged").get(timeout=TIMEOUT_S)
    finally:
        producer.close()

    report = stack.status()  # as the admin, from the state dir: no credentials in the environment
    assert report["broker_answering"] and report["secure"] and report["broker_pid"]
    assert set(report["topics"]) == {"faces", "emotion-events", "dead-letters"}

    again = stack.cli("up", "--secure")
    assert again.returncode == 0, again.stderr
    assert stack.status()["broker_pid"] == report["broker_pid"]
    assert secrets_in(stack.state_dir) == passwords  # made once, reused

    plain = stack.cli("up")
    assert plain.returncode != 0
    assert f"is running (pid {report['broker_pid']}) as a secure (SASL_SSL) broker" in plain.stderr
    assert "`moviemotion up --secure`" in plain.stderr

    down = stack.cli("down")
    assert down.returncode == 0, down.stderr
    after = stack.status()
    assert not after["broker_answering"] and after["broker_pid"] is None and after["secure"]


def test_up_secure_refuses_a_state_dir_with_a_plaintext_broker(kafka_broker, monkeypatch):
    settings = kafka_broker.settings
    monkeypatch.setenv("MOVIEMOTION_KAFKA_CONTROLLER_PORT", str(settings.kafka_controller_port))
    result = CliRunner().invoke(main, ["--state-dir", str(settings.state_dir), "--bootstrap", kafka_broker.bootstrap,
                                       "up", "--secure"])
    assert result.exit_code != 0
    assert f"is running (pid {kafka_broker.broker.pid()}) as a plaintext broker" in result.output
    assert not (settings.state_dir / "security").exists()
    assert ping(kafka_broker.bootstrap, timeout_s=5)
