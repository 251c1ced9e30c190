"""The local broker in its secure configuration (SASL_SSL, SCRAM users, ACLs) with its credentials in the state dir.

`local_credentials(state_dir)` makes once, then reuses, what the broker and its clients need, under
`<state_dir>/security/` (0700; keys and password files 0600, never printed): the TLS material (`tls/`) and one
password file per SCRAM user: `admin` (super user), `camera` (may only write `faces`), `processor` (the workers).
`start_secure_broker(settings)` starts or reuses the broker with them, creates the camera and processor users and
applies their ACLs (`moviemotion up --secure`, the tests' secure broker); `client_env` is what a client of one of
these roles sets to connect.

The compose deployment (infra/docker-compose.yml) gets the same users and ACLs from the same code:
`python -m infra.secure_broker provision` (its `init` service) connects as the admin given by the MOVIEMOTION_KAFKA_*
settings and runs `provision_roles` for the users whose passwords it finds in MOVIEMOTION_KAFKA_<ROLE>_PASSWORD_FILE.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from infra.kafka_broker import BrokerError, KafkaBroker, admin_client, ping
from infra.kafka_security import (ADMIN_ROLE, CAMERA_ROLE, PROCESSOR_ROLE, ROLE_ACLS, SASL_SSL, BrokerSecurity,
                                  ScramUser, SecurityConfigError, TlsMaterial, generate_tls_material, kafka_python_kwargs,
                                  load_tls_material, provision_roles, sasl_ssl_kwargs)
from schemas.secrets import SecretError, generate_password, read_secret, read_secret_file, secret_env, write_private
from schemas.settings import Settings, load_settings

SECURITY_DIR = "security"
# A dev stack outlives a test run: its certificates last a year (renew: stop the broker, delete security/tls/).
TLS_DAYS = 365
ADMIN, CAMERA, PROCESSOR = ADMIN_ROLE, CAMERA_ROLE, PROCESSOR_ROLE


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


def _wait_for_logins(bootstrap: str, users: list[ScramUser], client_kwargs, timeout: float) -> None:
    """New SCRAM credentials reach the broker through its metadata log: wait until each user can log in."""
    deadline = time.monotonic() + timeout
    for user in users:
        while not ping(bootstrap, timeout_s=5, security=client_kwargs(user)):
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
    users = [credentials.camera, credentials.processor]
    with admin_client(broker.bootstrap, min(timeout, 30), credentials.security.admin_kwargs()) as admin:
        provision_roles(admin, settings, users, credentials.security.mechanism)
    _wait_for_logins(broker.bootstrap, users, credentials.security.client_kwargs, timeout)
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


# -- the same roles on a running cluster (the compose deployment's `init`) --------------------------------------


def role_password_variable(role: str) -> str:
    """The variable holding a role's password for `provision` (…_FILE: a file with it, the compose way)."""
    return f"MOVIEMOTION_KAFKA_{role.upper()}_PASSWORD"


def users_from_env(env=None) -> list[ScramUser]:
    """One ScramUser per role (ROLE_ACLS) from MOVIEMOTION_KAFKA_<ROLE>_PASSWORD[_FILE]; SecretError when one is
    missing (every role of the deployment gets its own account)."""
    users = []
    for role in ROLE_ACLS:
        password = read_secret(role_password_variable(role), env)
        if password is None:
            raise SecretError(f"set {role_password_variable(role)}_FILE (the {role} user's password file)")
        users.append(ScramUser(role, password))
    return users


def provision(settings: Settings, users: list[ScramUser], timeout: float = 60) -> None:
    """As the admin of `settings` (SASL_SSL, super user), create or update `users` and their role ACLs on the
    cluster at `settings.kafka_bootstrap`, and return once each can log in."""
    if settings.kafka_username != ADMIN:
        raise SecurityConfigError(f"provisioning runs as the super user {ADMIN!r}, not {settings.kafka_username!r} "
                                  f"(MOVIEMOTION_KAFKA_USERNAME)")
    with admin_client(settings.kafka_bootstrap, min(timeout, 30), kafka_python_kwargs(settings)) as admin:
        provision_roles(admin, settings, users, settings.kafka_sasl_mechanism)
    ca_file = settings.kafka_ca_file or None
    _wait_for_logins(settings.kafka_bootstrap, users,
                     lambda user: sasl_ssl_kwargs(settings.kafka_sasl_mechanism, user.name, user.password, ca_file),
                     timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.secure_broker",
        description="Create the deployment's Kafka users (camera, processor) and their ACLs on a running SASL_SSL "
                    "cluster, as its admin. Connection: the MOVIEMOTION_KAFKA_* settings (admin user, password file, "
                    "CA); passwords: MOVIEMOTION_KAFKA_CAMERA_PASSWORD_FILE, MOVIEMOTION_KAFKA_PROCESSOR_PASSWORD_FILE.")
    parser.add_argument("command", choices=["provision"])
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for the broker and the logins")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        users = users_from_env()
        provision(settings, users, timeout=args.timeout)
    except (SecretError, SecurityConfigError, BrokerError) as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return 1
    print(f"provision: users {', '.join(user.name for user in users)} and their ACLs are in place on "
          f"{settings.kafka_bootstrap}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
