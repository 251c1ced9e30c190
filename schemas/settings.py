"""Settings shared by every component, read from MOVIEMOTION_* environment variables.

One frozen dataclass; components take the fields they need. Defaults suit the local stack.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from schemas.secrets import Secret, read_secret, secret_env


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MOVIEMOTION_{name}", default)


@dataclass(frozen=True)
class Topics:
    faces: str = "faces"
    emotion_events: str = "emotion-events"
    dead_letters: str = "dead-letters"


@dataclass(frozen=True)
class Settings:
    state_dir: Path = field(default_factory=lambda: Path(_env("STATE_DIR", ".moviemotion")).resolve())
    kafka_bootstrap: str = field(default_factory=lambda: _env("KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    kafka_controller_port: int = field(default_factory=lambda: int(_env("KAFKA_CONTROLLER_PORT", "19093")))
    # Kafka client security (docs/security.md): PLAINTEXT (local dev) or SASL_SSL (SCRAM over TLS).
    kafka_security_protocol: str = field(default_factory=lambda: _env("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"))
    kafka_sasl_mechanism: str = field(default_factory=lambda: _env("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"))
    kafka_username: str = field(default_factory=lambda: _env("KAFKA_USERNAME", ""))
    # From $MOVIEMOTION_KAFKA_PASSWORD or the file named by $MOVIEMOTION_KAFKA_PASSWORD_FILE; never logged.
    kafka_password: Secret | None = field(default_factory=lambda: read_secret("MOVIEMOTION_KAFKA_PASSWORD"))
    # PEM CA bundle that signed the broker's certificate ('' = the system trust store).
    kafka_ca_file: str = field(default_factory=lambda: _env("KAFKA_CA_FILE", ""))
    faces_partitions: int = field(default_factory=lambda: int(_env("FACES_PARTITIONS", "12")))
    events_partitions: int = field(default_factory=lambda: int(_env("EVENTS_PARTITIONS", "12")))
    # `faces` retention.ms: 10 min, so a crop is unreadable 15 min after it was produced at worst (infra/topics.py).
    faces_retention_ms: int = field(default_factory=lambda: int(_env("FACES_RETENTION_MS", str(10 * 60 * 1000))))
    # Empty = the embedded chDB store under state_dir; else a clickhouse:// URL (native protocol).
    clickhouse_url: str = field(default_factory=lambda: _env("CLICKHOUSE_URL", ""))
    # Password of the URL's user, from $MOVIEMOTION_CLICKHOUSE_PASSWORD or ..._PASSWORD_FILE (keeps it out of the URL).
    clickhouse_password: Secret | None = field(default_factory=lambda: read_secret("MOVIEMOTION_CLICKHOUSE_PASSWORD"))
    # Embedded store: seconds an analyst query may run (its max_execution_time) and may wait for a free session.
    store_analyst_timeout_s: float = field(default_factory=lambda: float(_env("STORE_ANALYST_TIMEOUT_S", "60")))
    # Embedded store: memory one analyst query may use (its max_memory_usage), so a runaway query cannot take the
    # machine's memory from the writer and the worker.
    store_analyst_max_memory_mb: int = field(default_factory=lambda: int(_env("STORE_ANALYST_MAX_MEMORY_MB", "4096")))
    topics: Topics = field(default_factory=Topics)
    # Stream processing: inference micro-batches and the events sink's batches (size, wait).
    processor_group: str = field(default_factory=lambda: _env("PROCESSOR_GROUP", "moviemotion-processor"))
    max_batch: int = field(default_factory=lambda: int(_env("MAX_BATCH", "256")))
    batch_within_s: float = field(default_factory=lambda: float(_env("BATCH_WITHIN_S", "0.2")))
    sink_batch: int = field(default_factory=lambda: int(_env("SINK_BATCH", "1000")))
    sink_within_s: float = field(default_factory=lambda: float(_env("SINK_WITHIN_S", "0.5")))
    # A viewer with no frame for this long (wall clock) has their open second closed and published.
    idle_flush_s: float = field(default_factory=lambda: float(_env("IDLE_FLUSH_S", "2.0")))
    # Offsets are committed this often (seconds); a batch is never committed before it is stored.
    commit_interval_s: float = field(default_factory=lambda: float(_env("COMMIT_INTERVAL_S", "1.0")))
    engine_backend: str = field(default_factory=lambda: _env("ENGINE", "auto"))
    # Largest engine call: a micro-batch above it runs in chunks of this size (ONNX Runtime on a CPU is fastest at
    # about 64 faces per call; a GPU wants the whole micro-batch, up to TensorRT's profile maximum of 256).
    engine_batch: int = field(default_factory=lambda: int(_env("ENGINE_BATCH", "64")))
    # ONNX Runtime: copies of the model scoring chunks of a batch at once, one thread each (engines/parallel.py);
    # one per core of the worker's machine. TensorRT runs one engine on the GPU whatever this says.
    engine_lanes: int = field(default_factory=lambda: int(_env("ENGINE_LANES", "2")))
    # A viewer reacts when an emotion's probability rises this far above their own neutral baseline
    # (docs/emotion-metrics.md, "Reactions": calibrated for the shipped model; re-check it when a new model ships).
    reaction_threshold: float = field(default_factory=lambda: float(_env("REACTION_THRESHOLD", "0.10")))
    # The emotion model's precision (fp32, fp16, int8): int8 runs the shipped INT8 file on ONNX Runtime (2.6x the float
    # model's speed on the CPU, same accuracy: engines/models/MODEL_CARD.md), TensorRT's explicit INT8 on a GPU.
    model_precision: str = field(default_factory=lambda: _env("MODEL_PRECISION", "int8"))
    # Failover (docs/reliability.md, "Failover"): a worker that dies without leaving the group (SIGKILL, power loss)
    # is noticed after this session timeout, then its `faces` partitions go to the others. Faust's default is 60 s;
    # the broker refuses less than its group.min.session.timeout.ms (6 s by default). A stopped worker (SIGTERM)
    # leaves the group at once.
    worker_session_timeout_s: float = field(default_factory=lambda: float(_env("WORKER_SESSION_TIMEOUT_S", "8.0")))
    # Heartbeats to the group coordinator; a member learns of a rebalance at its next one (at most a third of the
    # session timeout, as Kafka recommends).
    worker_heartbeat_interval_s: float = field(default_factory=lambda: float(_env("WORKER_HEARTBEAT_INTERVAL_S", "1.0")))
    # A viewer's state (baseline, smoother, last emitted second) is released (tombstoned in the state table) this long
    # after their last frame, once their open second is closed: a worker running for weeks does not keep every past
    # screening's viewers. Longer than `faces` retention, so no frame of theirs can still be replayed.
    state_retention_s: float = field(default_factory=lambda: float(_env("STATE_RETENTION_S", str(15 * 60))))

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def load_settings(**overrides) -> Settings:
    return Settings().with_overrides(**overrides)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process's `load_settings()` give these settings (the fields a worker or
    producer child needs). Passwords never go here as values: one read from a file is passed as its *_FILE path;
    one from the environment reaches the child through the inherited environment."""
    return {
        "MOVIEMOTION_STATE_DIR": str(settings.state_dir),
        "MOVIEMOTION_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "MOVIEMOTION_CLICKHOUSE_URL": settings.clickhouse_url,
        "MOVIEMOTION_PROCESSOR_GROUP": settings.processor_group,
        "MOVIEMOTION_FACES_PARTITIONS": str(settings.faces_partitions),
        "MOVIEMOTION_COMMIT_INTERVAL_S": str(settings.commit_interval_s),
        "MOVIEMOTION_REACTION_THRESHOLD": str(settings.reaction_threshold),
        "MOVIEMOTION_MODEL_PRECISION": settings.model_precision,
        "MOVIEMOTION_WORKER_SESSION_TIMEOUT_S": str(settings.worker_session_timeout_s),
        "MOVIEMOTION_WORKER_HEARTBEAT_INTERVAL_S": str(settings.worker_heartbeat_interval_s),
        "MOVIEMOTION_STATE_RETENTION_S": str(settings.state_retention_s),
        "MOVIEMOTION_KAFKA_SECURITY_PROTOCOL": settings.kafka_security_protocol,
        "MOVIEMOTION_KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism,
        "MOVIEMOTION_KAFKA_USERNAME": settings.kafka_username,
        "MOVIEMOTION_KAFKA_CA_FILE": settings.kafka_ca_file,
        **secret_env("MOVIEMOTION_KAFKA_PASSWORD", settings.kafka_password),
        **secret_env("MOVIEMOTION_CLICKHOUSE_PASSWORD", settings.clickhouse_password),
    }
