"""The local broker in its secure configuration (SASL_SSL, SCRAM users, ACLs) with its credentials in the state dir.

`local_credentials(state_dir)` makes once, then reuses, what the broker and its clients need, under
`<state_dir>/security/` (0700; keys and password files 0600, never printed): the TLS material (`tls/`) and one
password file per SCRAM user: `admin` (super user), `camera` (may only write `faces`), `processor` (the workers).
`start_secure_broker(settings)` starts or reuses the broker with them, creates the camera and processor users and
applies their ACLs (`moviemotion up --secure`, the tests' secure broker); `client_env` is what a client of one of
these roles sets to connect.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from infra.kafka_broker import BrokerError, KafkaBroker, admin_client, ping
from infra.kafka_security import (SASL_SSL, BrokerSecurity, ScramUser, SecurityConfigError, TlsMaterial, apply_acls,
                                  camera_acls, create_scram_users, generate_password, generate_tls_material,
                                  load_tls_material, processor_acls, write_private)
from infra.secrets import read_secret_file, secret_env
from moviemotion.settings import Settings

SECURITY_DIR = "security"
# A dev stack outlives a test run: its certificates last a year (renew: stop the broker, delete security/tls/).
TLS_DAYS = 365
ADMIN, CAMERA, PROCESSOR = "admin", "camera", "processor"


@dataclass(frozen=True)
class LocalCredentials:
    """The secure local broker's TLS material and admin (`security`), and the camera and processor users."""

    security: BrokerSecurity
    camera: ScramUser
    processor: ScramUser


def security_dir(state_dir: Path) -> Path:
    return Path(state_dir) / SECURITY_DIR


def _tls(directory: Path, create: bool) -> TlsMaterial:
    try:
        return load_tls_material(directory)
    except SecurityConfigError:
        if not create:
            raise
    return generate_tls_material(directory, days=TLS_DAYS)


def _user(directory: Path, name: str, create: bool) -> ScramUser:
    path = directory / f"{name}.password"
    if create and not path.is_file():
        write_private(path, generate_password().reveal())
    return ScramUser(name, read_secret_file(path))


def local_credentials(state_dir: Path, create: bool = True) -> LocalCredentials:
    """The credentials in `<state_dir>/security/`; missing ones are generated when `create`, else an error
    (SecurityConfigError / SecretError naming the missing file)."""
    directory = security_dir(state_dir)
    if create:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
    admin, camera, processor = (_user(directory, name, create) for name in (ADMIN, CAMERA, PROCESSOR))
    return LocalCredentials(BrokerSecurity(_tls(directory / "tls", create), admin), camera, processor)


def _wait_for_logins(bootstrap: str, credentials: LocalCredentials, timeout: float) -> None:
    """New SCRAM credentials reach the broker through its metadata log: wait until each user can log in."""
    deadline = time.monotonic() + timeout
    for user in (credentials.camera, credentials.processor):
        while not ping(bootstrap, timeout_s=5, security=credentials.security.client_kwargs(user)):
            if time.monotonic() > deadline:
                raise BrokerError(f"Kafka user {user.name} could not log in to {bootstrap} within {timeout:.0f}s")
            time.sleep(0.5)


def start_secure_broker(settings: Settings, timeout: float = 90) -> tuple[KafkaBroker, LocalCredentials]:
    """Start (or reuse) the SASL_SSL broker of `settings.state_dir` on `settings.kafka_bootstrap`, create (or update)
    the camera and processor users and their ACLs as the admin, and return once both can log in."""
    KafkaBroker.from_settings(settings).require_mode(secure=True)  # before writing credentials into a plaintext one
    credentials = local_credentials(settings.state_dir)
    broker = KafkaBroker.from_settings(settings, security=credentials.security)
    broker.start(timeout=timeout)
    camera, processor = credentials.camera, credentials.processor
    with admin_client(broker.bootstrap, min(timeout, 30), credentials.security.admin_kwargs()) as admin:
        create_scram_users(admin, [camera, processor], credentials.security.mechanism)
        apply_acls(admin, camera_acls(settings, camera.principal) + processor_acls(settings, processor.principal))
    _wait_for_logins(broker.bootstrap, credentials, timeout)
    return broker, credentials


def client_env(settings: Settings, credentials: LocalCredentials, user: ScramUser) -> dict[str, str]:
    """The MOVIEMOTION_* variables that make a client connect as `user` (its password as a file path, never a value)."""
    env = {
        "MOVIEMOTION_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "MOVIEMOTION_KAFKA_SECURITY_PROTOCOL": SASL_SSL,
        "MOVIEMOTION_KAFKA_SASL_MECHANISM": credentials.security.mechanism,
        "MOVIEMOTION_KAFKA_CA_FILE": str(credentials.security.tls.ca_file),
        "MOVIEMOTION_KAFKA_USERNAME": user.name,
        **secret_env("MOVIEMOTION_KAFKA_PASSWORD", user.password),
    }
    if user.name == PROCESSOR:  # its ACLs cover this consumer group (and the topics named after it)
        env["MOVIEMOTION_PROCESSOR_GROUP"] = settings.processor_group
    return env
