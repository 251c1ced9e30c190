"""Kafka with SASL/SCRAM over TLS and ACLs, on a real broker started that way; secrets from env or files.

The module's broker is started by `start_secure_broker` (infra/secure_broker.py, what `moviemotion up --secure` runs):
throw-away TLS material in its tmp state dir, an admin created at storage format time, camera and processor users
created through the admin API, and the role ACLs from infra/kafka_security.py. Clients are built
with the same functions the producer and the worker use (`kafka_python_kwargs`, `faust_credentials`).
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer
from kafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from infra.clickhouse.client import connect
from infra.kafka_broker import BrokerError, KafkaBroker, admin_client, ping
from infra.kafka_security import (PLAINTEXT, SASL_SSL, BrokerSecurity, ScramUser, SecurityConfigError, client_settings,
                                  faust_credentials, generate_tls_material, kafka_python_kwargs,
                                  tls_context)
from schemas.secrets import Secret, SecretError, generate_password, read_secret, url_with_password
from infra.secure_broker import start_secure_broker
from infra.stack import up
from infra.topics import ensure_topics
from moviemotion.cli import main
from schemas.settings import settings_env
from moviemotion.pipeline_run import publish_video, start_worker, stop_worker, wait_until_scored
from schemas.settings import Settings, load_settings
from producers.camera_producer import BrokerUnavailable, CameraConfig, open_kafka_producer
from tests.fixtures.kafka import distinct_free_ports

pytestmark = [pytest.mark.kafka]
TIMEOUT_S = 30


@dataclass(frozen=True)
class SecureKafka:
    broker: KafkaBroker
    security: BrokerSecurity
    camera: ScramUser
    processor: ScramUser
    settings: Settings  # plaintext client settings pointing at the broker (processor_group has the ACLs)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def as_user(self, user: ScramUser) -> Settings:
        return client_settings(self.settings, user, self.security.tls.ca_file)

    def kwargs(self, user: ScramUser) -> dict:
        return kafka_python_kwargs(self.as_user(user))


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory) -> Iterator[SecureKafka]:
    state_dir = tmp_path_factory.mktemp("secure-kafka")
    port, controller_port = distinct_free_ports(2)
    settings = load_settings(state_dir=state_dir, kafka_bootstrap=f"127.0.0.1:{port}",
                             kafka_controller_port=controller_port, processor_group=f"secure-{uuid.uuid4().hex[:8]}")
    try:
        broker, credentials = start_secure_broker(settings, timeout=120)
        ensure_topics(broker.bootstrap, settings, security=credentials.security.admin_kwargs())
        yield SecureKafka(broker, credentials.security, credentials.camera, credentials.processor, settings)
    finally:
        KafkaBroker.from_settings(settings).stop()


def consume(bootstrap: str, topic: str, security: dict, group: str | None, timeout_ms: int = 10_000) -> list:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             consumer_timeout_ms=timeout_ms, **security)
    try:
        return list(consumer)
    finally:
        consumer.close()


def send(producer, topic: str, value: bytes):
    return producer.send(topic, key=b"seat-1", value=value).get(timeout=TIMEOUT_S)


# -- the broker refuses what it must ------------------------------------------------------------------------


def test_plaintext_and_unauthenticated_clients_are_refused(secure_kafka):
    assert not ping(secure_kafka.bootstrap, timeout_s=3)
    tls_only = {"security_protocol": "SSL", "ssl_context": tls_context(secure_kafka.security.tls.ca_file)}
    assert not ping(secure_kafka.bootstrap, timeout_s=3, security=tls_only)
    with pytest.raises(BrokerUnavailable):
        open_kafka_producer(secure_kafka.bootstrap, timeout_s=3)
    assert ping(secure_kafka.bootstrap, timeout_s=5, security=secure_kafka.security.admin_kwargs())


def test_wrong_password_is_refused_as_an_authentication_failure(secure_kafka):
    impostor = ScramUser(secure_kafka.camera.name, Secret("not-the-password"))
    with pytest.raises(BrokerUnavailable):
        open_kafka_producer(secure_kafka.bootstrap, timeout_s=3, security=secure_kafka.kwargs(impostor))
    server_log = (secure_kafka.broker.logs_dir / "server.log").read_text()
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in server_log


def test_untrusted_certificate_is_refused(secure_kafka, tmp_path):
    other_ca = generate_tls_material(tmp_path / "other-tls").ca_file
    camera = client_settings(secure_kafka.settings, secure_kafka.camera, other_ca)
    assert not ping(secure_kafka.bootstrap, timeout_s=3, security=kafka_python_kwargs(camera))


# -- ACLs per role ------------------------------------------------------------------------------------------


def test_camera_writes_faces_but_cannot_read_it_or_write_other_topics(secure_kafka):
    topics = secure_kafka.settings.topics
    camera = secure_kafka.kwargs(secure_kafka.camera)
    producer = open_kafka_producer(secure_kafka.bootstrap, timeout_s=15, security=camera)
    try:
        assert send(producer, topics.faces, b"face").topic == topics.faces
        for topic in (topics.emotion_events, topics.dead_letters):
            with pytest.raises(TopicAuthorizationFailedError):
                send(producer, topic, b"forged")
    finally:
        producer.close()
    with pytest.raises(GroupAuthorizationFailedError):
        consume(secure_kafka.bootstrap, topics.faces, camera, group=secure_kafka.settings.processor_group)
    with pytest.raises(TopicAuthorizationFailedError):
        consume(secure_kafka.bootstrap, topics.faces, camera, group=None)


def test_processor_reads_faces_and_writes_its_topics(secure_kafka):
    settings, topics = secure_kafka.settings, secure_kafka.settings.topics
    marker = uuid.uuid4().hex.encode()
    camera_producer = open_kafka_producer(secure_kafka.bootstrap, timeout_s=15, security=secure_kafka.kwargs(secure_kafka.camera))
    try:
        send(camera_producer, topics.faces, marker)
    finally:
        camera_producer.close()
    processor = secure_kafka.kwargs(secure_kafka.processor)
    group = f"{settings.processor_group}-probe"
    assert marker in [m.value for m in consume(secure_kafka.bootstrap, topics.faces, processor, group=group)]

    changelog = f"{settings.processor_group}-probe-changelog"  # like Faust's; not the worker test's real one
    with admin_client(secure_kafka.bootstrap, TIMEOUT_S, processor) as admin:
        admin.create_topics({changelog: {"num_partitions": 1}}, timeout_ms=TIMEOUT_S * 1000)
    producer = open_kafka_producer(secure_kafka.bootstrap, timeout_s=15, security=processor)
    try:
        for topic in (topics.emotion_events, topics.dead_letters, changelog):
            assert send(producer, topic, marker).topic == topic
        with pytest.raises(TopicAuthorizationFailedError):
            send(producer, topics.faces, b"forged face")
    finally:
        producer.close()
    with pytest.raises(GroupAuthorizationFailedError):
        consume(secure_kafka.bootstrap, topics.emotion_events, processor, group="someone-elses-group")


# -- the real producer and worker with their own credentials; secrets from files, never in logs --------------


def write_secret_file(path: Path, secret: Secret) -> Path:
    path.write_text(secret.reveal() + "\n")
    path.chmod(0o600)
    return path


def role_settings(monkeypatch, secure_kafka, user: ScramUser, password_file: Path, **overrides) -> Settings:
    """Settings exactly as a deployed process gets them: from MOVIEMOTION_* variables and a password file."""
    for name, value in {"KAFKA_SECURITY_PROTOCOL": SASL_SSL, "KAFKA_USERNAME": user.name,
                        "KAFKA_CA_FILE": str(secure_kafka.security.tls.ca_file),
                        "KAFKA_PASSWORD_FILE": str(password_file)}.items():
        monkeypatch.setenv(f"MOVIEMOTION_{name}", value)
    monkeypatch.delenv("MOVIEMOTION_KAFKA_PASSWORD", raising=False)
    return load_settings(kafka_bootstrap=secure_kafka.bootstrap, **overrides)


@pytest.mark.slow
def test_producer_and_worker_run_on_the_secure_broker_without_leaking_passwords(
        secure_kafka, embedded_settings, sample_screening, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="kafka")  # the stack CLI quiets it to WARNING process-wide
    screening_id = f"secure-{uuid.uuid4().hex[:8]}"
    camera = role_settings(monkeypatch, secure_kafka, secure_kafka.camera,
                           write_secret_file(tmp_path / "camera.pw", secure_kafka.camera.password),
                           state_dir=embedded_settings.state_dir)
    config = CameraConfig(screening_id, sample_screening.theater_id, sample_screening.camera_id)
    stats = publish_video(camera, sample_screening.video_path, sample_screening.seat_map_path, config, fps=5.0)
    assert stats.published > 0 and stats.delivery_errors == 0

    processor_file = write_secret_file(tmp_path / "processor.pw", secure_kafka.processor.password)
    processor = role_settings(monkeypatch, secure_kafka, secure_kafka.processor, processor_file,
                              state_dir=embedded_settings.state_dir, processor_group=secure_kafka.settings.processor_group)
    child_env = settings_env(processor)
    assert child_env["MOVIEMOTION_KAFKA_PASSWORD_FILE"] == str(processor_file.resolve())
    assert secure_kafka.processor.password.reveal() not in child_env.values()
    log_path = tmp_path / "worker.log"
    worker = start_worker(processor, log_path)
    try:
        with connect(embedded_settings) as client:
            wait_until_scored(client, screening_id, stats.published, timeout_s=300, worker=worker)
    finally:
        stop_worker(worker)

    # kafka-python's admin client logs its whole configuration at DEBUG: the password shows as the mask.
    assert ping(secure_kafka.bootstrap, 5, kafka_python_kwargs(camera))
    assert "'sasl_plain_password': '***'" in caplog.text
    worker_log = log_path.read_text(errors="replace")
    assert "Authenticated as processor via SASL / SCRAM-SHA-512" in worker_log
    logs = worker_log + caplog.text
    for secret in (secure_kafka.camera.password, secure_kafka.processor.password, secure_kafka.security.admin.password):
        assert secret.reveal() not in logs
    assert secure_kafka.processor.password.reveal() not in " ".join(worker.args)


# -- settings and secrets (no broker) -----------------------------------------------------------------------


def test_password_from_env_or_file_and_never_in_repr(tmp_path):
    password = generate_password()
    from_env = read_secret("PW", {"PW": password.reveal()})
    from_file = read_secret("PW", {"PW_FILE": str(write_secret_file(tmp_path / "pw", password))})
    assert from_env.reveal() == from_file.reveal() == password.reveal()
    assert from_file.file == (tmp_path / "pw").resolve() and from_env.file is None
    assert read_secret("PW", {}) is None
    settings = load_settings(kafka_password=from_file, clickhouse_password=from_env)
    for text in (repr(settings), str(settings), f"{settings.kafka_password}", repr({"pw": password.reveal()})):
        assert password.reveal() not in text
    assert f"{password.reveal()}" == password.reveal()  # formatting (JAAS lines, files) still gets the value


def test_secret_misconfiguration_is_one_clear_error(tmp_path):
    with pytest.raises(SecretError, match="not both"):
        read_secret("PW", {"PW": "a", "PW_FILE": "/x"})
    with pytest.raises(SecretError, match="cannot read secret file"):
        read_secret("PW", {"PW_FILE": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecretError, match="is empty"):
        read_secret("PW", {"PW_FILE": str(tmp_path / "empty")})
    with pytest.raises(SecretError, match="set but empty"):
        read_secret("PW", {"PW": ""})


def test_security_settings_become_client_options(tmp_path):
    plain = load_settings(kafka_security_protocol=PLAINTEXT)
    assert kafka_python_kwargs(plain) == {"security_protocol": PLAINTEXT} and faust_credentials(plain) is None
    ca = generate_tls_material(tmp_path / "tls").ca_file
    secure = client_settings(plain, ScramUser("processor", Secret("pw")), ca)
    kwargs = kafka_python_kwargs(secure)
    assert (kwargs["security_protocol"], kwargs["sasl_mechanism"], kwargs["sasl_plain_username"]) == (SASL_SSL, "SCRAM-SHA-512", "processor")
    assert kwargs["sasl_plain_password"] == "pw" and kwargs["ssl_context"].check_hostname
    credentials = faust_credentials(secure)
    assert (credentials.username, credentials.mechanism.value, credentials.protocol.value) == ("processor", "SCRAM-SHA-512", SASL_SSL)
    with pytest.raises(SecurityConfigError, match="PLAINTEXT or SASL_SSL"):
        kafka_python_kwargs(plain.with_overrides(kafka_security_protocol="SSL"))
    with pytest.raises(SecurityConfigError, match="MOVIEMOTION_KAFKA_USERNAME"):
        kafka_python_kwargs(secure.with_overrides(kafka_username=""))
    with pytest.raises(SecurityConfigError, match="PASSWORD_FILE"):
        kafka_python_kwargs(plain.with_overrides(kafka_security_protocol=SASL_SSL, kafka_username="x"))
    with pytest.raises(SecurityConfigError, match="does not exist"):
        kafka_python_kwargs(secure.with_overrides(kafka_ca_file=str(tmp_path / "nope.pem")))
    with pytest.raises(SecurityConfigError, match="mechanism"):
        kafka_python_kwargs(secure.with_overrides(kafka_sasl_mechanism="PLAIN"))


def test_clickhouse_password_goes_into_the_url_not_the_settings_url():
    secret = Secret("p@ss:w/rd")
    assert url_with_password("clickhouse://sink@127.0.0.1:9000/db", secret) == "clickhouse://sink:p%40ss%3Aw%2Frd@127.0.0.1:9000/db"
    assert url_with_password("clickhouse://sink@127.0.0.1:9000/db", None) == "clickhouse://sink@127.0.0.1:9000/db"
    with pytest.raises(SecretError, match="already contains a password"):
        url_with_password("clickhouse://sink:x@127.0.0.1:9000/db", secret)
    with pytest.raises(SecretError, match="names no user"):
        url_with_password("clickhouse://127.0.0.1:9000/db", secret)


def test_cli_reports_a_bad_secret_file_as_one_usage_error(tmp_path):
    missing = tmp_path / "kafka.pw"
    result = CliRunner().invoke(main, ["status"], env={"MOVIEMOTION_KAFKA_PASSWORD_FILE": str(missing)})
    assert result.exit_code == 2
    assert f"cannot read secret file {missing}" in result.output and "Traceback" not in result.output


def test_local_plaintext_stack_refuses_sasl_settings(tmp_path):
    secure = client_settings(load_settings(state_dir=tmp_path, kafka_bootstrap=f"127.0.0.1:{distinct_free_ports(1)[0]}"),
                             ScramUser("camera", Secret("pw")), generate_tls_material(tmp_path / "tls").ca_file)
    with pytest.raises(BrokerError, match="plaintext"):
        up(secure, timeout=5)
