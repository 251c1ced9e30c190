"""Kafka security: SASL/SCRAM over TLS for every client, and the broker side of it (dev/test TLS, users, ACLs).

Clients: `kafka_python_kwargs(settings)` (kafka-python producers/consumers/admin) and `faust_credentials(settings)`
(the Faust worker's `broker_credentials`, i.e. aiokafka) are the only places settings become Kafka security
options; both build their TLS from `ssl_context(settings)`. PLAINTEXT (the local dev default) gives
`{"security_protocol": "PLAINTEXT"}` / None.

Broker side (local broker in secure mode, see `KafkaBroker(security=...)`):
  - `generate_tls_material(dir)`: a CA and a broker keystore for 127.0.0.1/localhost (infra/tls.py; keys 0600 in
    a 0700 dir; never commit them); `load_tls_material(dir)` reads it back;
  - `BrokerSecurity`: the server.properties of a SASL_SSL listener (SCRAM) + SASL_SSL controller listener (PLAIN,
    KRaft cannot use SCRAM there), StandardAuthorizer with deny-by-default and the admin as the only super user,
    and the `--add-scram` storage-format argument that creates the admin before the first start;
  - `create_scram_users`: further SCRAM users through the admin API;
  - `camera_acls` / `processor_acls` + `apply_acls`: the least-privilege ACLs of each role; `ROLE_ACLS` names the
    roles (`admin` is the super user, `camera` and `processor` get ACLs) and `provision_roles` creates their users and
    ACLs: the one definition shared by the secure local stack and the compose deployment (infra/secure_broker.py).
"""
from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from kafka.admin import (ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePattern, ResourceType,
                         ScramMechanism, UserScramCredentialUpsertion)

from infra.tls import CA_FILE, TlsError, issue_server_certificate, run_openssl_private
from schemas.secrets import Secret, generate_password, read_secret_file, write_private

PLAINTEXT = "PLAINTEXT"
SASL_SSL = "SASL_SSL"
SCRAM_MECHANISMS = {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256, "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}
DEFAULT_MECHANISM = "SCRAM-SHA-512"
LOCAL_TLS_HOSTS = ("127.0.0.1", "localhost")
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
BROKER_LISTENER = "SASL_SSL"
CONTROLLER_LISTENER = "CONTROLLER"
# Values that go into JAAS lines and `--add-scram` must not need quoting.
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_.-]+$")


class SecurityConfigError(ValueError):
    """Kafka security settings are incomplete or inconsistent."""


# -- clients ------------------------------------------------------------------------------------------------


def _protocol(settings) -> str:
    protocol = settings.kafka_security_protocol.strip().upper()
    if protocol not in (PLAINTEXT, SASL_SSL):
        raise SecurityConfigError(f"MOVIEMOTION_KAFKA_SECURITY_PROTOCOL must be {PLAINTEXT} or {SASL_SSL}, "
                                  f"got {settings.kafka_security_protocol!r}")
    return protocol


def _mechanism(name: str) -> str:
    mechanism = name.strip().upper()
    if mechanism not in SCRAM_MECHANISMS:
        raise SecurityConfigError(f"SASL mechanism must be one of {sorted(SCRAM_MECHANISMS)}, got {name!r}")
    return mechanism


def _credentials(settings) -> tuple[str, Secret]:
    if not settings.kafka_username:
        raise SecurityConfigError(f"{SASL_SSL} needs a user: set MOVIEMOTION_KAFKA_USERNAME")
    if settings.kafka_password is None:
        raise SecurityConfigError(f"{SASL_SSL} needs a password: set MOVIEMOTION_KAFKA_PASSWORD_FILE "
                                  f"(or MOVIEMOTION_KAFKA_PASSWORD)")
    return settings.kafka_username, settings.kafka_password


def tls_context(ca_file: str | Path | None) -> ssl.SSLContext:
    """A client TLS context verifying the broker's certificate and host name against `ca_file` (None: system CAs)."""
    if ca_file and not Path(ca_file).is_file():
        raise SecurityConfigError(f"Kafka CA file {ca_file} does not exist")
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def ssl_context(settings) -> ssl.SSLContext:
    return tls_context(settings.kafka_ca_file or None)


def sasl_ssl_kwargs(mechanism: str, username: str, password: Secret, ca_file: str | Path | None) -> dict[str, Any]:
    """kafka-python options for SASL (SCRAM) over TLS."""
    return {
        "security_protocol": SASL_SSL,
        "sasl_mechanism": _mechanism(mechanism),
        "sasl_plain_username": username,
        "sasl_plain_password": password.reveal(),
        "ssl_context": tls_context(ca_file),
    }


def kafka_python_kwargs(settings) -> dict[str, Any]:
    """Security options for kafka-python's KafkaProducer/KafkaConsumer/KafkaAdminClient from `settings`."""
    if _protocol(settings) == PLAINTEXT:
        return {"security_protocol": PLAINTEXT}
    username, password = _credentials(settings)
    return sasl_ssl_kwargs(settings.kafka_sasl_mechanism, username, password, settings.kafka_ca_file or None)


def faust_credentials(settings):
    """`broker_credentials` for faust.App (aiokafka): SASLCredentials over TLS, or None for PLAINTEXT."""
    if _protocol(settings) == PLAINTEXT:
        return None
    import faust  # the worker's dependency; camera hosts only need kafka_python_kwargs

    username, password = _credentials(settings)
    return faust.SASLCredentials(username=username, password=password.reveal(), ssl_context=ssl_context(settings),
                                 mechanism=_mechanism(settings.kafka_sasl_mechanism))


def client_settings(settings, user: "ScramUser", ca_file: Path, mechanism: str = DEFAULT_MECHANISM):
    """`settings` switched to SASL_SSL as `user` (e.g. a camera host's or a worker's own account)."""
    return settings.with_overrides(kafka_security_protocol=SASL_SSL, kafka_sasl_mechanism=mechanism,
                                   kafka_username=user.name, kafka_password=user.password, kafka_ca_file=str(ca_file))


# -- TLS material (dev / tests) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsMaterial:
    """A CA certificate (PEM, what clients trust) and the broker's PKCS#12 keystore signed by it."""

    ca_file: Path
    keystore_file: Path
    keystore_password: Secret


KEYSTORE_FILE, KEYSTORE_PASSWORD_FILE, BROKER_CERTIFICATE = "broker.p12", "keystore.pass", "broker"


def generate_tls_material(directory: Path, hosts: Iterable[str] = LOCAL_TLS_HOSTS, days: int = 30,
                          timeout: float = 60) -> TlsMaterial:
    """A CA (kept if `directory` has one) + a new broker certificate for `hosts`, as a PKCS#12 keystore (0700 dir;
    keys and password files 0600)."""
    directory = Path(directory)
    try:
        broker = issue_server_certificate(directory, BROKER_CERTIFICATE, hosts, days, timeout)
        password = generate_password()
        write_private(directory / KEYSTORE_PASSWORD_FILE, password.reveal())
        issue_keystore = ["pkcs12", "-export", "-in", broker.certificate_file.name, "-inkey",
                          broker.private_key_file.name, "-certfile", CA_FILE, "-name", BROKER_CERTIFICATE,
                          "-out", KEYSTORE_FILE, "-passout", f"file:{KEYSTORE_PASSWORD_FILE}"]
        run_openssl_private([issue_keystore], directory, timeout)
    except TlsError as exc:
        raise SecurityConfigError(str(exc)) from None
    return load_tls_material(directory)


def load_tls_material(directory: Path) -> TlsMaterial:
    """The material `generate_tls_material(directory)` wrote; SecurityConfigError naming what is missing."""
    directory = Path(directory)
    missing = [name for name in (CA_FILE, KEYSTORE_FILE, KEYSTORE_PASSWORD_FILE) if not (directory / name).is_file()]
    if missing:
        raise SecurityConfigError(f"TLS material in {directory} is incomplete: {', '.join(missing)} missing")
    return TlsMaterial(ca_file=directory / CA_FILE, keystore_file=directory / KEYSTORE_FILE,
                       keystore_password=read_secret_file(directory / KEYSTORE_PASSWORD_FILE))


# -- broker: SASL_SSL listener, users ---------------------------------------------------------------------


@dataclass(frozen=True)
class ScramUser:
    name: str
    password: Secret

    @property
    def principal(self) -> str:
        return f"User:{self.name}"


def _safe_token(value: str, what: str) -> str:
    if not _SAFE_TOKEN.match(value):
        raise SecurityConfigError(f"{what} may only contain letters, digits and . _ - (it goes into the broker's "
                                  f"JAAS config unquoted)")
    return value


@dataclass(frozen=True)
class BrokerSecurity:
    """What a local broker needs for SASL_SSL: its TLS material and the admin (super user, inter-broker) account."""

    tls: TlsMaterial
    admin: ScramUser
    mechanism: str = DEFAULT_MECHANISM

    def __post_init__(self) -> None:
        _mechanism(self.mechanism)
        _safe_token(self.admin.name, "the admin user name")
        _safe_token(self.admin.password.reveal(), "the admin password")
        _safe_token(self.tls.keystore_password.reveal(), "the keystore password")

    def server_properties(self, port: int, controller_port: int) -> dict[str, str]:
        """server.properties entries that replace the PLAINTEXT listeners (secrets inside: write the file 0600)."""
        mech = _mechanism(self.mechanism)
        user, password = self.admin.name, self.admin.password.reveal()
        scram_login = f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{user}" password="{password}";'
        plain_login = (f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{user}" '
                       f'password="{password}" user_{user}="{password}";')
        broker, controller = BROKER_LISTENER.lower(), CONTROLLER_LISTENER.lower()
        keystore_password = self.tls.keystore_password.reveal()
        return {
            "listeners": f"{BROKER_LISTENER}://127.0.0.1:{port},{CONTROLLER_LISTENER}://127.0.0.1:{controller_port}",
            "advertised.listeners": f"{BROKER_LISTENER}://127.0.0.1:{port}",
            "listener.security.protocol.map": f"{CONTROLLER_LISTENER}:SASL_SSL,{BROKER_LISTENER}:SASL_SSL",
            "inter.broker.listener.name": BROKER_LISTENER,
            "sasl.mechanism.inter.broker.protocol": mech,
            f"listener.name.{broker}.sasl.enabled.mechanisms": mech,
            f"listener.name.{broker}.{mech.lower()}.sasl.jaas.config": scram_login,
            # KRaft controllers cannot verify SCRAM (its credentials live in the metadata they serve): PLAIN over TLS.
            "sasl.mechanism.controller.protocol": "PLAIN",
            f"listener.name.{controller}.sasl.enabled.mechanisms": "PLAIN",
            f"listener.name.{controller}.plain.sasl.jaas.config": plain_login,
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.tls.keystore_file),
            "ssl.keystore.password": keystore_password,
            "ssl.key.password": keystore_password,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.tls.ca_file),
            "ssl.client.auth": "none",
            "authorizer.class.name": STANDARD_AUTHORIZER,
            "super.users": self.admin.principal,
            "allow.everyone.if.no.acl.found": "false",
        }

    def format_args(self) -> list[str]:
        """`kafka-storage format` arguments creating the admin's SCRAM credential (the first user must exist
        before the broker starts: nobody could authenticate to create it)."""
        return ["--add-scram", f"{_mechanism(self.mechanism)}=[name={self.admin.name},"
                               f"password={self.admin.password.reveal()}]"]

    def client_kwargs(self, user: ScramUser) -> dict[str, Any]:
        """kafka-python options to connect as `user` (trusting this broker's CA)."""
        return sasl_ssl_kwargs(self.mechanism, user.name, user.password, self.tls.ca_file)

    def admin_kwargs(self) -> dict[str, Any]:
        return self.client_kwargs(self.admin)


def create_scram_users(admin, users: Iterable[ScramUser], mechanism: str = DEFAULT_MECHANISM) -> None:
    """Create or update SCRAM credentials through a connected super-user KafkaAdminClient."""
    scram = SCRAM_MECHANISMS[_mechanism(mechanism)]
    result = admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(user.name, scram, user.password.reveal()) for user in users])
    failed = {name: error for name, error in result.items() if error}
    if failed:
        raise SecurityConfigError(f"creating SCRAM users failed: {failed}")


# -- ACLs ---------------------------------------------------------------------------------------------------


def _allow(principal: str, resource: ResourceType, name: str, operations: Iterable[ACLOperation],
           pattern: ACLResourcePatternType = ACLResourcePatternType.LITERAL) -> list[ACL]:
    return [ACL(principal, "*", operation, ACLPermissionType.ALLOW, ResourcePattern(resource, name, pattern))
            for operation in operations]


def camera_acls(settings, principal: str) -> list[ACL]:
    """A camera host may write (and describe) the faces topic, nothing else."""
    return _allow(principal, ResourceType.TOPIC, settings.topics.faces, (ACLOperation.WRITE, ACLOperation.DESCRIBE))


def processor_acls(settings, principal: str) -> list[ACL]:
    """A worker reads faces, reads/writes emotion-events, writes dead-letters, owns its consumer group and the
    Faust internal topics named after it (changelogs, assignor leader topic), which it may create."""
    read, write, describe = ACLOperation.READ, ACLOperation.WRITE, ACLOperation.DESCRIBE
    group, topic, prefixed = ResourceType.GROUP, ResourceType.TOPIC, ACLResourcePatternType.PREFIXED
    own = settings.processor_group
    return [
        *_allow(principal, topic, settings.topics.faces, (read, describe)),
        *_allow(principal, topic, settings.topics.emotion_events, (read, write, describe)),
        *_allow(principal, topic, settings.topics.dead_letters, (write, describe)),
        *_allow(principal, topic, own, (read, write, describe, ACLOperation.CREATE, ACLOperation.DESCRIBE_CONFIGS),
                prefixed),
        *_allow(principal, group, own, (read, describe), prefixed),
    ]


# The deployment's Kafka accounts: `admin` is the only super user (server.properties `super.users`); every other
# role gets exactly the ACLs its function builds. The secure local stack and the compose file's `init` both create
# these through `provision_roles`; tests/test_deployment_files.py checks the compose file names the same roles.
ADMIN_ROLE, CAMERA_ROLE, PROCESSOR_ROLE = "admin", "camera", "processor"
ROLE_ACLS = {CAMERA_ROLE: camera_acls, PROCESSOR_ROLE: processor_acls}


def role_acls(settings, users: Iterable[ScramUser]) -> list[ACL]:
    """The ACLs of each user, by role: a user named after a role in ROLE_ACLS gets that role's ACLs."""
    acls: list[ACL] = []
    for user in users:
        if user.name not in ROLE_ACLS:
            raise SecurityConfigError(f"Kafka user {user.name!r} has no role; roles: {sorted(ROLE_ACLS)}")
        acls += ROLE_ACLS[user.name](settings, user.principal)
    return acls


def provision_roles(admin, settings, users: Iterable[ScramUser], mechanism: str = DEFAULT_MECHANISM) -> None:
    """Create (or update) the SCRAM users and their role ACLs through a connected super-user KafkaAdminClient."""
    users = list(users)
    create_scram_users(admin, users, mechanism)
    apply_acls(admin, role_acls(settings, users))


def apply_acls(admin, acls: list[ACL]) -> None:
    """Create `acls` through a connected super-user KafkaAdminClient (idempotent on the broker)."""
    result = admin.create_acls(acls)
    if result.get("failed"):
        raise SecurityConfigError(f"creating ACLs failed: {result['failed']}")
