"""`moviemotion up / status / down` through click's CliRunner against a temp state dir and free ports."""
from __future__ import annotations

import json
import socket
import time
import uuid

import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from infra.topics import PROCESSOR_GROUP, consumer_lag
from moviemotion.cli import main
from schemas.settings import load_settings
from tests.fixtures.kafka import distinct_free_ports, free_port

pytestmark = pytest.mark.kafka


@pytest.fixture()
def stack_args(tmp_path, monkeypatch):
    """CLI args + env for a private stack: its own state dir, broker and controller ports."""
    port, controller_port = distinct_free_ports(2)
    monkeypatch.setenv("MOVIEMOTION_KAFKA_CONTROLLER_PORT", str(controller_port))
    args = ["--state-dir", str(tmp_path / "state"), "--bootstrap", f"127.0.0.1:{port}"]
    yield args
    CliRunner().invoke(main, [*args, "down"])  # never leave a JVM or store behind, even on failure


def run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_up_status_down(stack_args):
    up = run([*stack_args, "up", "--timeout", "120"])
    assert up.exit_code == 0, up.output
    assert "answering" in up.output and "faces" in up.output

    status = run([*stack_args, "status", "--json"])
    assert status.exit_code == 0, status.output
    report = json.loads(status.output)
    settings = load_settings()
    assert report["broker_answering"] and report["local_broker"] and report["broker_pid"]
    assert report["topics"]["faces"]["partitions"] == settings.faces_partitions
    assert report["topics"]["faces"]["retention_ms"] == settings.faces_retention_ms
    assert report["topics"]["emotion-events"]["partitions"] == settings.events_partitions
    assert report["topics"]["dead-letters"]["partitions"] == 3
    assert report["consumer_group"] == PROCESSOR_GROUP and report["consumer_lag"] == {}
    assert set(report["store"]) >= {"running"}

    again = run([*stack_args, "up"])  # idempotent: reuses the same broker
    assert again.exit_code == 0, again.output
    assert json.loads(run([*stack_args, "status", "--json"]).output)["broker_pid"] == report["broker_pid"]

    text = run([*stack_args, "status"])
    assert f"pid {report['broker_pid']}" in text.output and f"retention  {settings.faces_retention_ms // 60_000}min" in text.output

    down = run([*stack_args, "down"])
    assert down.exit_code == 0, down.output
    after = json.loads(run([*stack_args, "status", "--json"]).output)
    assert not after["broker_answering"] and after["broker_pid"] is None and after["topics"] == {}
    assert not after["healthy"]


def test_status_of_a_stopped_stack_answers_quickly(stack_args):
    started = time.monotonic()
    result = run([*stack_args, "status"])
    assert result.exit_code == 0, result.output
    assert "not running, NOT answering" in result.output
    assert time.monotonic() - started < 30


def test_up_without_java_fails_with_a_clear_message(stack_args, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty dir: no java, no mvn
    result = CliRunner().invoke(main, [*stack_args, "up", "--timeout", "10"])
    assert result.exit_code != 0
    assert "`java` not found" in result.output


def test_up_on_a_taken_port_fails_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("MOVIEMOTION_KAFKA_CONTROLLER_PORT", str(free_port()))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "--bootstrap", f"127.0.0.1:{port}", "up"])
    assert result.exit_code != 0
    assert f"port {port}" in result.output and "already in use" in result.output


def test_up_against_an_unreachable_external_broker_fails_fast(tmp_path):
    bootstrap = f"127.0.0.2:{free_port()}"  # not 127.0.0.1: treated as an external cluster
    started = time.monotonic()
    result = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "--bootstrap", bootstrap, "up", "--timeout", "5"])
    assert result.exit_code != 0
    assert bootstrap in result.output and "does not answer" in result.output
    assert time.monotonic() - started < 30


def test_status_reports_the_configured_consumer_group(kafka_broker, tmp_path, monkeypatch):
    """`status` shows the lag of settings.processor_group ($MOVIEMOTION_PROCESSOR_GROUP), not the default group."""
    group = f"custom-processor-{uuid.uuid4().hex[:8]}"
    faces = kafka_broker.settings.topics.faces
    partition = TopicPartition(faces, 0)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    for i in range(3):
        producer.send(faces, b"not a face", key=b"console-test", partition=0)
    producer.flush(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, group_id=group, enable_auto_commit=False)
    consumer.assign([partition])
    consumer.commit({partition: OffsetAndMetadata(0, "", -1)})  # 3+ records behind on partition 0
    consumer.close()
    expected = consumer_lag(kafka_broker.bootstrap, group)
    assert expected[faces] >= 3

    monkeypatch.setenv("MOVIEMOTION_PROCESSOR_GROUP", group)
    args = ["--state-dir", str(tmp_path), "--bootstrap", kafka_broker.bootstrap, "status"]
    report = json.loads(run([*args, "--json"]).output)
    assert report["consumer_group"] == group != PROCESSOR_GROUP
    assert report["consumer_lag"] == expected
    assert f"consumer lag ({group}): {faces}={expected[faces]}" in run(args).output
