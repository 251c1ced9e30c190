"""Kafka's own command-line tools run from the Maven-resolved jars (tests read topics with them, not with Python).

`console_consumer` runs `org.apache.kafka.tools.consumer.ConsoleConsumer` with the DefaultMessageFormatter
printing key and value as raw bytes (no deserializer), separated by random per-call marker strings, and a
random null literal. Values are therefore returned byte-exact, binary included (a value would only be
mis-split if it contained the 20+ byte random marker).
"""
from __future__ import annotations

import secrets
import subprocess
import tempfile
from pathlib import Path

from infra.kafka_broker import LOG4J_CONFIG, TOOL_JVM_OPTS, BrokerError, classpath, require_executable

CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
JVM_START_MARGIN_S = 30.0


class KafkaToolError(BrokerError):
    """A Kafka command-line tool failed or overran its time limit."""


def console_consumer(jars_dir: Path, bootstrap: str, topic: str, max_messages: int, timeout_s: float,
                     from_beginning: bool = True, partition: int | None = None) -> list[tuple[bytes | None, bytes | None]]:
    """Read up to `max_messages` (key, value) pairs from `topic` with Kafka's console consumer.

    Stops at `max_messages`, or when no new message arrives for `timeout_s` (then returns what it read).
    Keys and values are raw bytes; a null key/value is None. `partition` restricts reading to one partition
    (records then come in offset order). The JVM is killed after `timeout_s` + 30 s of start-up margin.
    """
    if max_messages <= 0:
        raise ValueError(f"max_messages must be positive, got {max_messages}")
    token = secrets.token_hex(8)
    field_sep, record_sep, null = f"|mm-field-{token}|", f"|mm-record-{token}|", f"|mm-null-{token}|"
    java = require_executable("java", "run Kafka's console consumer")
    formatter = {"print.key": "true", "print.value": "true", "key.separator": field_sep,
                 "line.separator": record_sep, "null.literal": null}
    with tempfile.TemporaryDirectory(prefix="kafka-tool-logs-") as logs_dir:
        cmd = [java, *TOOL_JVM_OPTS, f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", f"-Dkafka.logs.dir={logs_dir}",
               "-cp", classpath(Path(jars_dir)), CONSOLE_CONSUMER, "--bootstrap-server", bootstrap,
               "--topic", topic, "--max-messages", str(max_messages), "--timeout-ms", str(int(timeout_s * 1000))]
        if partition is not None:
            cmd += ["--partition", str(partition), "--offset", "earliest" if from_beginning else "latest"]
        elif from_beginning:
            cmd.append("--from-beginning")
        for key, value in formatter.items():
            cmd += ["--property", f"{key}={value}"]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=timeout_s + JVM_START_MARGIN_S,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise KafkaToolError(f"console consumer on {topic} at {bootstrap} ran past "
                                 f"{timeout_s + JVM_START_MARGIN_S:.0f}s") from exc
    if done.returncode != 0:
        stderr = "\n".join(done.stderr.decode("utf-8", "replace").strip().splitlines()[-20:])
        raise KafkaToolError(f"console consumer on {topic} at {bootstrap} failed (exit {done.returncode}):\n{stderr}")
    return parse_console_output(done.stdout, field_sep.encode(), record_sep.encode(), null.encode())


def parse_console_output(stdout: bytes, field_sep: bytes, record_sep: bytes,
                         null: bytes) -> list[tuple[bytes | None, bytes | None]]:
    """Split the formatter's `key<field_sep>value<record_sep>` stream back into (key, value) pairs."""
    records = stdout.split(record_sep)
    if records and records[-1] == b"":
        records.pop()
    pairs = []
    for record in records:
        key, sep, value = record.partition(field_sep)
        if not sep:
            raise KafkaToolError(f"unparseable console-consumer record (no key separator): {record[:80]!r}")
        pairs.append((None if key == null else key, None if value == null else value))
    return pairs
