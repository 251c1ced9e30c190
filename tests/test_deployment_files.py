"""The venue deployment (infra/docker-compose.yml) agrees with the code and files it uses; its accounts run for real.

No container image can be pulled here, so compose itself never runs in CI. Instead:
  - static checks load the compose file, Grafana's provisioning and the files under infra/compose/ and resolve every
    bind mount, secret, ${VAR}, listener, credential and environment variable against what consumes it;
  - the Kafka broker configuration the compose file mounts (infra/compose/kafka-server.properties, completed by
    infra/compose/kafka-start.sh, the service's entrypoint) is started for real on the Kafka 4.1.1 jars, with
    the secrets `python -m infra.deploy_secrets` writes; the compose `init` command that creates the users and
    ACLs (`python -m infra.secure_broker provision`, the secure local stack's code) runs against it with init's
    own environment, and the roles are exercised (camera writes faces only, the worker reads them);
  - its security settings are compared key by key with those of the secure local stack (`moviemotion up --secure`,
    BrokerSecurity.server_properties), which tests/test_security_kafka.py and tests/test_stack_secure.py run;
  - the ClickHouse users file the compose file mounts is loaded by a real clickhouse-server (18.16), its passwords
    put into the environment by infra/compose/env-from-files.sh (the services' wrapper) from the generated secrets;
    the worker's and Grafana's accounts are used with exactly their compose settings.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from kafka import KafkaConsumer
from kafka.admin import ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePatternFilter, ResourceType
from kafka.errors import TopicAuthorizationFailedError

from infra import deploy_secrets
from infra.clickhouse.client import ClickHouseError, ClickHouseUnavailable, NativeClient, connect
from infra.clickhouse.local_server import ClickHouseServerProcess, ServerUser
from infra.clickhouse.migrations import apply_migrations
from infra.kafka_broker import (BROKER_JVM_OPTS, BROKER_MAIN, LOG4J_CONFIG, STORAGE_TOOL, TOOL_JVM_OPTS, admin_client,
                                classpath, ensure_jars, ping)
from infra.kafka_security import (ADMIN_ROLE, ROLE_ACLS, BrokerSecurity, ScramUser, TlsMaterial, client_settings,
                                  generate_tls_material, kafka_python_kwargs, role_acls)
from infra.ports import free_ports
from schemas.secrets import Secret, read_secret_file
from infra.secure_broker import role_password_variable
from infra.topics import ensure_topics
from schemas.settings import Settings, load_settings
from producers.camera_producer import open_kafka_producer
from tests.fixtures.clickhouse import require_server_binary
from tests.test_security_clickhouse import score_rows

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
COMPOSE_FILE = INFRA / "docker-compose.yml"
GRAFANA_DIR = INFRA / "grafana"
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"
ENV_EXAMPLE = INFRA / ".env.example"
SETTINGS_SOURCE = REPO / "schemas" / "settings.py"
SECRETS_MOUNT = "/run/secrets"
APP_SERVICES = ("init", "worker")
TIMEOUT_S = 30

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_INNERMOST = re.compile(r"\$\{(" + _NAME + r")(?:(:?[-?])([^${}]*))?\}")
_PASSWORD_IN_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s@:]+:[^/\s@]*@", re.IGNORECASE)


# -- reading the files ----------------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


REQUIRED = "required-value"


def interpolate(text: str, env: dict[str, str] | None = None, strict: bool = False) -> str:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error} ($$ is a literal $). An unset required
    variable reads as REQUIRED, or is a KeyError when `strict`."""
    env = env or {}
    text = text.replace("$$", "\0")
    while True:
        match = _INNERMOST.search(text)
        if not match:
            return text.replace("\0", "$")
        name, op, arg = match.groups()
        value = env.get(name)
        if op in (":-", "-"):
            value = value if value not in (None, "") or (op == "-" and value is not None) else arg
        elif op in (":?", "?"):
            if value in (None, ""):
                if strict:
                    raise KeyError(f"${{{name}}} is required ({arg})")
                value = REQUIRED
        value = "" if value is None else value
        text = text[:match.start()] + value + text[match.end():]


def compose_variables() -> set[str]:
    """Every variable the compose file interpolates (in its keys and values; comments are not interpolated)."""
    return {name for text in walk_strings(compose()) for name in re.findall(r"(?<!\$)\$\{(" + _NAME + ")", text)}


def service(name: str) -> dict:
    services = compose()["services"]
    assert name in services, f"compose has no service {name!r}"
    return services[name]


def service_env(name: str) -> dict[str, str]:
    env = service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: interpolate(str(value)) for key, value in env.items()}


def bind_mounts(name: str) -> list[tuple[Path, str]]:
    """(host path, container path) of each bind mount of a service (host paths are relative to infra/)."""
    mounts = []
    for volume in service(name).get("volumes") or []:
        source, target = (volume.split(":") + [""])[:2] if isinstance(volume, str) else (volume["source"], volume["target"])
        if source.startswith((".", "/")):
            mounts.append(((INFRA / interpolate(source)).resolve(), target))
    return mounts


def host_path(name: str, container_path: str) -> Path | None:
    """Where a path inside a service's container comes from on the host (via its bind mounts), or None."""
    for source, target in bind_mounts(name):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target):].lstrip("/")
    return None


def secret_name(path: str) -> str | None:
    return path[len(SECRETS_MOUNT) + 1:] if path.startswith(SECRETS_MOUNT + "/") else None


def service_secrets(name: str) -> list[str]:
    return [entry if isinstance(entry, str) else entry["source"] for entry in service(name).get("secrets") or []]


def read_properties(text: str) -> dict[str, str]:
    props = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def kafka_entrypoint() -> Path:
    entrypoint = service("kafka").get("entrypoint")
    assert isinstance(entrypoint, list) and len(entrypoint) >= 2, "the kafka service runs infra/compose/kafka-start.sh"
    script = host_path("kafka", entrypoint[1])
    assert script is not None and script.is_file(), f"kafka entrypoint {entrypoint[1]} is not a mounted file"
    return script


def script_default(script: str, variable: str) -> str:
    match = re.search(rf"^{variable}=\$\{{\w+:-([^}}]+)\}}", script, re.MULTILINE)
    assert match, f"kafka-start.sh sets no default for {variable}"
    return match.group(1)


def kafka_template() -> tuple[Path, dict[str, str]]:
    """The mounted server.properties template the entrypoint reads, and its properties."""
    template = host_path("kafka", script_default(kafka_entrypoint().read_text(), "TEMPLATE"))
    assert template is not None and template.is_file(), "the kafka-server.properties the entrypoint reads is not mounted"
    return template, read_properties(template.read_text())


def script_properties(script: str) -> dict[str, str]:
    """Properties kafka-start.sh appends to the template (`echo "key=value"` lines; values hold shell variables)."""
    return dict(re.findall(r'^\s*echo "([a-z0-9.-]+)=(.*)"\s*$', script, re.MULTILINE))


def listeners(value: str) -> dict[str, str]:
    """{name: host:port} of a listeners / advertised.listeners value."""
    return dict(item.split("://", 1) for item in value.split(",") if item)


def settings_variables() -> set[str]:
    """Every MOVIEMOTION_* variable schemas/settings.py reads (secrets also as their *_FILE form)."""
    source = SETTINGS_SOURCE.read_text()
    names = {f"MOVIEMOTION_{name}" for name in re.findall(r'_env\("(' + _NAME + ')"', source)}
    for name in re.findall(r'read_secret\("(' + _NAME + r')"\)', source):
        names |= {name, name + "_FILE"}
    return names


def walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_strings(item)
    elif value is not None:
        yield str(value)


def env_example() -> dict[str, str]:
    return read_properties(ENV_EXAMPLE.read_text())


# -- CPU priority on a shared host ------------------------------------------------------------------------------


def test_the_broker_outranks_the_workers_for_cpu():
    """On one host under load, a starved broker makes camera producers drop frames (BENCHMARKS.md: 22,134 sends
    never acknowledged in a soak at 130 %), while a starved worker only adds lag. Docker's CPU shares are relative
    weights (1024 when unset) that only act under contention."""
    services = compose()["services"]
    shares = {name: int(service.get("cpu_shares", 1024)) for name, service in services.items()}
    assert shares["kafka"] > shares["clickhouse"] > shares["worker"], shares
    assert shares["kafka"] >= 2 * shares["worker"], shares


# -- mounts, Grafana --------------------------------------------------------------------------------------------


def test_compose_starts_with_an_empty_env_file():
    """Secrets are files, everything else has a default: no variable must be set (none holds a secret)."""
    for text in walk_strings(compose()):
        interpolate(text, strict=True)


def test_every_bind_mount_exists():
    for name in compose()["services"]:
        for source, target in bind_mounts(name):
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
            assert REPO in source.parents, f"{name}: {source} lies outside the repository"


def test_grafana_provisioning_and_dashboard_paths_resolve_to_the_mounted_files():
    env = service_env("grafana")
    provisioning = host_path("grafana", env["GF_PATHS_PROVISIONING"])
    assert provisioning == GRAFANA_DIR / "provisioning", f"GF_PATHS_PROVISIONING maps to {provisioning}"
    providers = yaml.safe_load((provisioning / "dashboards" / "moviemotion.yaml").read_text())["providers"]
    shipped = sorted(path.name for path in (GRAFANA_DIR / "dashboards").glob("*.json"))
    assert shipped, "no dashboards to provision"
    for provider in providers:
        folder = host_path("grafana", provider["options"]["path"])
        assert folder is not None, f"provider path {provider['options']['path']} is not inside a grafana mount"
        assert sorted(path.name for path in folder.glob("*.json")) == shipped


def test_datasource_variables_are_all_set_in_grafana_and_name_the_read_only_analyst():
    env = service_env("grafana")
    wrapped = wrapper_variables("grafana")
    text = (GRAFANA_DIR / "provisioning" / "datasources" / "clickhouse.yaml").read_text()
    needed = set(re.findall(r"\$\{(" + _NAME + r")\}", text))
    assert needed, "the datasource reads no variables?"
    for name in sorted(needed):
        if name in wrapped:  # exported by env-from-files.sh from its secret file
            assert secret_name(env.get(name + "_FILE", "")) in service_secrets("grafana"), name
        else:
            assert name in env, f"the datasource reads ${{{name}}}, which the grafana service does not set"
    datasource = yaml.safe_load(text)["datasources"][0]
    assert "${CLICKHOUSE_ANALYST_PASSWORD}" == datasource["secureJsonData"]["password"]
    users = clickhouse_users()
    assert users[env["CLICKHOUSE_ANALYST_USER"]]["profile"] == "readonly"
    assert env["CLICKHOUSE_DATABASE"] == service_env("clickhouse")["CLICKHOUSE_DB"]
    assert env["CLICKHOUSE_HOST"] in compose()["services"]
    assert "password" not in " ".join(datasource["jsonData"]).lower()


def wrapper_variables(name: str) -> list[str]:
    """The variables env-from-files.sh exports in a service (its arguments before `--`), after checking the
    wrapper is mounted where the entrypoint runs it and the image's entrypoint follows."""
    entrypoint = service(name).get("entrypoint") or []
    if "--" not in entrypoint:
        return []
    script = host_path(name, entrypoint[1])
    assert script == INFRA / "compose" / "env-from-files.sh", f"{name}: the wrapper {entrypoint[1]} is not mounted"
    separator = entrypoint.index("--")
    assert entrypoint[separator + 1:], f"{name}: nothing to run after the wrapper"
    return entrypoint[2:separator]


# -- variables, settings, secrets ---------------------------------------------------------------------------------


def test_every_compose_variable_is_documented():
    doc = DEPLOYMENT_DOC.read_text()
    example = env_example()
    missing = [name for name in sorted(compose_variables())
               if f"`{name}`" not in doc and name not in example]
    assert not missing, f"compose variables documented neither in docs/deployment.md nor infra/.env.example: {missing}"
    stale = [name for name in example if name not in compose_variables()]
    assert not stale, f"infra/.env.example sets variables the compose file does not use: {stale}"
    assert not [name for name in example if "PASSWORD" in name], ".env.example holds no passwords"


def test_app_services_set_only_variables_the_code_reads():
    known = settings_variables() | {role_password_variable(role) + "_FILE" for role in ROLE_ACLS}
    for name in APP_SERVICES:
        env = service_env(name)
        unknown = sorted(set(env) - known)
        assert not unknown, f"{name} sets variables nothing reads: {unknown}"
        assert env["MOVIEMOTION_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert secret_name(env["MOVIEMOTION_KAFKA_CA_FILE"]) in service_secrets(name)


def test_no_password_in_urls_values_or_commands():
    for text in walk_strings(compose()):
        assert not _PASSWORD_IN_URL.search(interpolate(text)), f"a password inside a URL: {text!r}"
    for name in compose()["services"]:
        for key, value in service_env(name).items():
            if "PASSWORD" in key.upper() or "SECRET" in key.upper():
                assert key.endswith("_FILE"), f"{name}: {key} holds a secret value; give it as {key}_FILE"
                assert secret_name(value) in service_secrets(name), f"{name}: {key}={value} is not one of its secrets"


def test_every_secret_is_declared_and_written_by_the_generator(tmp_path):
    declared = compose()["secrets"]
    for name in compose()["services"]:
        for secret in service_secrets(name):
            assert secret in declared, f"{name} uses undeclared secret {secret}"
        for value in service_env(name).values():
            if value.startswith(SECRETS_MOUNT + "/"):
                assert secret_name(value) in service_secrets(name), f"{name} reads {value} but does not mount it"
    files = {name: interpolate(entry["file"]) for name, entry in declared.items()}
    assert files == {name: f"./.secrets/{path}" for name, path in deploy_secrets.COMPOSE_SECRETS.items()}

    directory = tmp_path / "infra"  # the compose file's relative paths start at its own directory
    created = deploy_secrets.write_secrets(directory / deploy_secrets.DEFAULT_DIR.name, ("127.0.0.1",))
    assert sorted(created) == sorted(deploy_secrets.COMPOSE_SECRETS)
    for name, relative in files.items():
        path = directory / relative
        assert path.is_file() and path.stat().st_size > 0, name
    assert (directory / deploy_secrets.DEFAULT_DIR.name).stat().st_mode & 0o777 == 0o700
    assert deploy_secrets.DEFAULT_DIR.parent == INFRA
    before = {name: (directory / relative).read_bytes() for name, relative in files.items()}
    assert deploy_secrets.write_secrets(directory / deploy_secrets.DEFAULT_DIR.name, ("127.0.0.1",)) == []
    assert before == {name: (directory / relative).read_bytes() for name, relative in files.items()}  # no rotation
    (directory / files["kafka_keystore"]).unlink()  # a lost keystore is rebuilt on the kept CA
    rebuilt = deploy_secrets.write_secrets(directory / deploy_secrets.DEFAULT_DIR.name, ("127.0.0.1",))
    after = {name: (directory / relative).read_bytes() for name, relative in files.items()}
    assert sorted(rebuilt) == sorted(name for name in files if after[name] != before[name])
    assert "kafka_keystore" in rebuilt and "venue_ca" not in rebuilt
    assert not (set(service_secrets("worker")) & {"kafka_admin_password", "clickhouse_admin_password"})


def test_one_account_per_role():
    init, worker, grafana = service_env("init"), service_env("worker"), service_env("grafana")
    assert init["MOVIEMOTION_KAFKA_USERNAME"] == ADMIN_ROLE
    provisioned = {key for key in init if re.fullmatch(r"MOVIEMOTION_KAFKA_[A-Z]+_PASSWORD_FILE", key)}
    assert provisioned == {role_password_variable(role) + "_FILE" for role in ROLE_ACLS}
    for role in ROLE_ACLS:
        assert secret_name(init[role_password_variable(role) + "_FILE"]) == f"kafka_{role}_password"
    assert worker["MOVIEMOTION_KAFKA_USERNAME"] == "processor"
    assert secret_name(worker["MOVIEMOTION_KAFKA_PASSWORD_FILE"]) == "kafka_processor_password"
    # The processor's ACLs are made for init's group and topics: the worker must use the same ones.
    for key in ("MOVIEMOTION_PROCESSOR_GROUP", "MOVIEMOTION_KAFKA_BOOTSTRAP"):
        assert worker[key] == init[key], key
    users = clickhouse_users()
    sink_url, admin_url = worker["MOVIEMOTION_CLICKHOUSE_URL"], init["MOVIEMOTION_CLICKHOUSE_URL"]
    assert urllib.parse.urlsplit(sink_url).username == "sink" and users["sink"]["profile"] == "default"
    assert urllib.parse.urlsplit(admin_url).username == service_env("clickhouse")["CLICKHOUSE_USER"]
    assert grafana["CLICKHOUSE_ANALYST_USER"] == "analyst" and users["analyst"]["profile"] == "readonly"
    secrets_by_service = {name: set(service_secrets(name)) for name in compose()["services"]}
    for secret in ("kafka_admin_password", "clickhouse_admin_password"):
        holders = {name for name, held in secrets_by_service.items() if secret in held}
        assert holders <= {"init", "kafka", "clickhouse"}, f"{secret} is mounted in {holders}"
    for secret, owner in (("kafka_keystore", "kafka"), ("clickhouse_private_key", "clickhouse")):
        holders = {name for name, held in secrets_by_service.items() if secret in held}
        assert holders == {owner}, f"{secret} (a server's private key) is mounted in {holders}"


def test_env_file_and_secrets_are_ignored_and_kept_out_of_the_image():
    for path in ("infra/.env", "infra/.secrets/kafka_admin_password"):
        done = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert done.returncode == 0, f"{path} is not git-ignored"
    dockerfile = (INFRA / "Dockerfile").read_text()
    assert "COPY infra infra" not in dockerfile, "the image would receive infra/.secrets and infra/.env"
    ignored = (INFRA / "Dockerfile.dockerignore").read_text().split()
    assert "infra/.secrets" in ignored and "**/.env" in ignored


# -- Kafka: listeners, and the same security as the secure local stack -------------------------------------------


def test_kafka_listeners_protocols_and_ports_agree():
    script = kafka_entrypoint().read_text()
    _, props = kafka_template()
    bound = listeners(props["listeners"])
    protocols = dict(item.split(":") for item in props["listener.security.protocol.map"].split(","))
    assert set(protocols) == set(bound), "every listener needs exactly one protocol"
    assert set(protocols.values()) == {"SASL_SSL"}, "nothing may listen without TLS and SASL"
    controller = props["controller.listener.names"]
    assert controller in bound and props["inter.broker.listener.name"] in bound
    advertised = listeners(script_properties(script)["advertised.listeners"])
    assert controller not in advertised and set(advertised) == set(bound) - {controller}
    assert props["controller.quorum.voters"] == f"1@kafka:{bound[controller].rsplit(':', 1)[1]}"

    internal_address = script_default(script, "INTERNAL_ADDRESS")
    internal = props["inter.broker.listener.name"]
    assert internal_address.rsplit(":", 1)[1] == bound[internal].rsplit(":", 1)[1]
    for name in APP_SERVICES:
        assert service_env(name)["MOVIEMOTION_KAFKA_BOOTSTRAP"] == internal_address
    assert f"--bootstrap-server {internal_address}" in service("kafka")["healthcheck"]["test"][1]
    kafka_env = service_env("kafka")
    external = [name for name in advertised if name != internal]
    assert advertised[external[0]] == "${KAFKA_EXTERNAL_HOST}:${KAFKA_EXTERNAL_PORT}"
    published = [interpolate(port) for port in service("kafka")["ports"]]
    assert published == [f"127.0.0.1:{kafka_env['KAFKA_EXTERNAL_PORT']}:{bound[external[0]].rsplit(':', 1)[1]}"]


def test_kafka_security_equals_the_secure_local_stack():
    """BrokerSecurity.server_properties is what `moviemotion up --secure` and the secure tests run: the compose
    broker must have each of its settings (listener names differ; secrets are appended by kafka-start.sh)."""
    script = kafka_entrypoint().read_text()
    _, props = kafka_template()
    appended = script_properties(script)
    local = BrokerSecurity(TlsMaterial(Path("ca.pem"), Path("broker.p12"), Secret("ks")),
                           ScramUser(ADMIN_ROLE, Secret("pw"))).server_properties(1, 2)
    local_client_listener = local["inter.broker.listener.name"].lower()
    compose_controller = props["controller.listener.names"]
    client_listeners = [name for name in listeners(props["listeners"]) if name != compose_controller]
    secret_keys = {"ssl.keystore.password", "ssl.key.password"}
    for key, value in local.items():
        if key in ("listeners", "advertised.listeners", "listener.security.protocol.map", "inter.broker.listener.name",
                   "controller.listener.names"):
            continue  # structure: test_kafka_listeners_protocols_and_ports_agree
        if key.startswith(f"listener.name.{local_client_listener}."):
            keys = [key.replace(f".{local_client_listener}.", f".{name.lower()}.", 1) for name in client_listeners]
        else:
            keys = [key]
        for compose_key in keys:
            if key in secret_keys or key.endswith(".sasl.jaas.config"):
                assert compose_key in appended, f"kafka-start.sh does not write {compose_key}"
            elif key.endswith(".location"):
                assert secret_name(props[compose_key]) in service_secrets("kafka"), compose_key
            else:
                assert props.get(compose_key) == value, f"{compose_key}: compose {props.get(compose_key)!r}, local {value!r}"
    assert re.search(rf"^ADMIN={ADMIN_ROLE}$", script, re.MULTILINE)
    assert "--add-scram" in script and "kafka_admin_password" in script


# -- env-from-files.sh, for real --------------------------------------------------------------------------------


WRAPPER = INFRA / "compose" / "env-from-files.sh"


def run_wrapper(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(WRAPPER), *args], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=30)


def test_env_from_files_exports_the_file_and_hides_the_path(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret-value\n")
    done = run_wrapper({"PW_FILE": str(secret)}, "PW", "--", "sh", "-c", 'printf "%s|%s" "$PW" "${PW_FILE-unset}"')
    assert done.returncode == 0, done.stderr
    assert done.stdout == "s3cret-value|unset"


@pytest.mark.parametrize("case", ["unset", "missing", "empty"])
def test_env_from_files_refuses_a_missing_or_empty_secret(tmp_path, case):
    empty = tmp_path / "empty"
    empty.write_text("")
    env = {"unset": {}, "missing": {"PW_FILE": str(tmp_path / "nope")}, "empty": {"PW_FILE": str(empty)}}[case]
    done = run_wrapper(env, "PW", "--", "true")
    assert done.returncode == 1 and "PW_FILE" in done.stderr


# -- the ClickHouse users of the compose file, on a real clickhouse-server -------------------------------------------


def clickhouse_users() -> dict[str, dict[str, str]]:
    """{user: {profile, password_env, database_env}} from the users.d file the clickhouse service mounts."""
    files = [source for source, target in bind_mounts("clickhouse")
             if target.startswith("/etc/clickhouse-server/users.d/") and source.name == "clickhouse-users.xml"]
    assert len(files) == 1, "the clickhouse service mounts infra/compose/clickhouse-users.xml into users.d"
    users = {}
    for user in ElementTree.parse(files[0]).getroot().find("users"):
        users[user.tag] = {"profile": user.findtext("profile"),
                           "password_env": user.find("password").get("from_env"),
                           "database_env": user.find("allow_databases/database").get("from_env")}
    return users


def clickhouse_tls_config() -> tuple[Path, dict[str, str]]:
    """The TLS file the clickhouse service mounts into config.d, and its settings (tag: text, nested tags flattened)."""
    mounted = [(source, target) for source, target in bind_mounts("clickhouse")
               if target.startswith("/etc/clickhouse-server/config.d/")]
    assert len(mounted) == 1, f"the clickhouse service mounts {len(mounted)} config.d files, expected its TLS file"
    source = mounted[0][0]
    assert source.is_file(), f"{source} is not a file"
    return source, {element.tag: (element.text or "").strip() for element in ElementTree.parse(source).iter()
                    if len(element) == 0}


def test_clickhouse_clients_speak_tls_and_only_tls_ports_are_published():
    _, tls = clickhouse_tls_config()
    native, https = tls["tcp_port_secure"], tls["https_port"]
    for key in ("certificateFile", "privateKeyFile"):
        assert secret_name(tls[key]) in service_secrets("clickhouse"), f"{key} {tls[key]} is not a mounted secret"
    assert deploy_secrets.COMPOSE_SECRETS[secret_name(tls["certificateFile"])].endswith(".pem")
    published = {interpolate(str(port)).rsplit(":", 1)[1] for port in service("clickhouse")["ports"]}
    assert published == {native, https}, f"clickhouse publishes {published}: only its TLS ports may leave the host"
    ca_file = deploy_secrets.COMPOSE_SECRETS["venue_ca"]
    for name in APP_SERVICES:
        url = urllib.parse.urlsplit(service_env(name)["MOVIEMOTION_CLICKHOUSE_URL"])
        assert (url.scheme, url.hostname, str(url.port)) == ("clickhouses", "clickhouse", native), f"{name}: {url}"
        ca = urllib.parse.parse_qs(url.query)["ca_certs"][0]
        assert secret_name(ca) in service_secrets(name), f"{name}: ca_certs {ca} is not mounted"
        assert deploy_secrets.COMPOSE_SECRETS[secret_name(ca)] == ca_file
    grafana = service_env("grafana")
    assert grafana["CLICKHOUSE_PORT"] == native
    assert "CLICKHOUSE_CA_CERT" in wrapper_variables("grafana")
    assert deploy_secrets.COMPOSE_SECRETS[secret_name(grafana["CLICKHOUSE_CA_CERT_FILE"])] == ca_file
    datasource = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "clickhouse.yaml").read_text())
    source = datasource["datasources"][0]
    assert source["jsonData"]["secure"] is True and source["jsonData"]["tlsAuthWithCACert"] is True
    assert not source["jsonData"].get("tlsSkipVerify")
    assert source["secureJsonData"]["tlsCACert"] == "${CLICKHOUSE_CA_CERT}"


def test_clickhouse_users_read_variables_the_service_sets():
    env, wrapped = service_env("clickhouse"), wrapper_variables("clickhouse")
    for user, entry in clickhouse_users().items():
        assert entry["password_env"] in wrapped, f"{user}: nothing exports ${entry['password_env']}"
        assert secret_name(env[entry["password_env"] + "_FILE"]) == f"clickhouse_{user}_password"
        assert entry["database_env"] in env, f"{user}: ${entry['database_env']} is not set"
    assert secret_name(env["CLICKHOUSE_PASSWORD_FILE"]) == "clickhouse_admin_password"


def container_to_host(value: str, secrets_dir: Path) -> str:
    """A compose value with /run/secrets/<name> mapped to the generated file of that secret."""
    name = secret_name(value)
    return str(secrets_dir / deploy_secrets.COMPOSE_SECRETS[name]) if name else value


def settings_as(monkeypatch, service_name: str, secrets_dir: Path, **replace: str) -> Settings:
    """Settings exactly as a service's process reads them: its MOVIEMOTION_* environment (secret paths mapped to the
    generated files; `replace` swaps container host names for local addresses)."""
    for key in list(os.environ):
        if key.startswith("MOVIEMOTION_"):
            monkeypatch.delenv(key)
    for key, value in service_env(service_name).items():
        for old, new in replace.items():
            value = value.replace(old, new)
        monkeypatch.setenv(key, container_to_host(value, secrets_dir))
    return load_settings()


class WrappedClickHouse(ClickHouseServerProcess):
    """clickhouse-server started through env-from-files.sh with the clickhouse service's environment, with the
    compose users file in users.d (the admin, the image's CLICKHOUSE_USER, in users.xml) and the compose TLS file in
    config.d, its ports and /run/secrets paths mapped to free local ports and the generated secret files."""

    def __init__(self, work_dir: Path, env: dict[str, str], wrapped: list[str], users: tuple[ServerUser, ...],
                 secrets_dir: Path):
        super().__init__(work_dir, users=users)
        self.env, self.wrapped, self.secrets_dir = env, wrapped, secrets_dir
        self.tls_port, self.https_port = free_ports(2)

    def write_tls_config(self) -> Path:
        source, settings = clickhouse_tls_config()
        text = source.read_text()
        ports = {"tcp_port_secure": self.tls_port, "https_port": self.https_port}
        for tag, port in ports.items():
            text, count = re.subn(rf"<{tag}>{settings[tag]}</{tag}>", f"<{tag}>{port}</{tag}>", text)
            assert count == 1, tag
        for value in settings.values():
            if secret_name(value):
                text = text.replace(f">{value}<", f">{container_to_host(value, self.secrets_dir)}<")
        assert SECRETS_MOUNT not in re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL), "an unmapped secret path"
        target = self.work_dir / "config.d" / "moviemotion-tls.xml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def start(self, timeout: float = 60.0) -> "WrappedClickHouse":
        require_server_binary()
        config = self.write_config()
        self.write_tls_config()
        (self.work_dir / "users.d").mkdir(exist_ok=True)
        shutil.copy(INFRA / "compose" / "clickhouse-users.xml", self.work_dir / "users.d" / "moviemotion-users.xml")
        with open(self.work_dir / "log" / "stdout.log", "ab") as out:
            self._proc = subprocess.Popen(["sh", str(WRAPPER), *self.wrapped, "--", self.binary,
                                           f"--config-file={config}"], cwd=self.work_dir, env=self.env,
                                          stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        self._wait_ready(timeout)
        return self


def tls_handshake(port: int, ca_file: Path, server_hostname: str) -> None:
    """A TLS handshake with 127.0.0.1:port that verifies the certificate against `ca_file` for `server_hostname`."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname):
            pass


@pytest.mark.clickhouse_server
def test_compose_clickhouse_users_on_a_real_server(tmp_path, monkeypatch):
    secrets_dir = tmp_path / "secrets"
    deploy_secrets.write_secrets(secrets_dir, ("127.0.0.1",))
    ch_env = service_env("clickhouse")
    database = ch_env["CLICKHOUSE_DB"]
    env = {"PATH": os.environ["PATH"], **{key: container_to_host(value, secrets_dir) for key, value in ch_env.items()}}
    admin_name = ch_env["CLICKHOUSE_USER"]
    admin_password = read_secret_file(env["CLICKHOUSE_PASSWORD_FILE"]).reveal()
    server = WrappedClickHouse(tmp_path / "ch", env, wrapper_variables("clickhouse"),
                               users=(ServerUser(admin_name, admin_password),), secrets_dir=secrets_dir)
    server.start()
    native_port = clickhouse_tls_config()[1]["tcp_port_secure"]
    ca_file = secrets_dir / deploy_secrets.COMPOSE_SECRETS["venue_ca"]
    # The services' URLs, with the container address and CA path mapped to this machine.
    mapped = {f"clickhouse:{native_port}": f"127.0.0.1:{server.tls_port}", f"{SECRETS_MOUNT}/venue_ca": str(ca_file)}
    try:
        with NativeClient(server.url) as admin:  # the image creates CLICKHOUSE_DB; here the admin does (in-container)
            for name in (database, "elsewhere"):
                admin.execute(f"CREATE DATABASE IF NOT EXISTS {name}")
            admin.execute("CREATE TABLE IF NOT EXISTS elsewhere.notes (x UInt8) ENGINE = Memory")
        with connect(settings_as(monkeypatch, "init", secrets_dir, **mapped)) as init:
            apply_migrations(init)  # what init's `moviemotion up` does, with init's URL and password file

        sink = settings_as(monkeypatch, "worker", secrets_dir, **mapped)
        assert sink.clickhouse_password is not None and sink.clickhouse_password.file is not None
        assert sink.clickhouse_url.startswith("clickhouses://sink@127.0.0.1:")
        screening = f"compose-{uuid.uuid4().hex[:8]}"
        with connect(sink) as client:
            client.insert("frame_scores", score_rows(screening, 3))
            assert client.query("SELECT count() FROM frame_scores WHERE screening_id = %(s)s", {"s": screening}) == [(3,)]
            with pytest.raises(ClickHouseError, match="Access denied to database elsewhere"):
                client.query("SELECT count() FROM elsewhere.notes")

        # TLS: the certificate verifies for the name the containers use; plaintext and another CA get nowhere.
        tls_handshake(server.tls_port, ca_file, "clickhouse")
        tls_handshake(server.https_port, ca_file, "clickhouse")
        sink_password = sink.clickhouse_password
        plaintext = load_settings(clickhouse_url=f"clickhouse://sink@127.0.0.1:{server.tls_port}/{database}",
                                  clickhouse_password=sink_password)
        with connect(plaintext, timeout=5) as client, pytest.raises(ClickHouseUnavailable):
            client.query("SELECT 1")
        other_ca = generate_tls_material(tmp_path / "other-ca").ca_file
        stranger = load_settings(clickhouse_url=sink.clickhouse_url.replace(str(ca_file), str(other_ca)),
                                 clickhouse_password=sink_password)
        with connect(stranger, timeout=5) as client, pytest.raises(ClickHouseUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            client.query("SELECT 1")

        grafana = service_env("grafana")  # Grafana's datasource: user, database, password file, port, CA as provisioned
        assert grafana["CLICKHOUSE_PORT"] == native_port
        analyst_password = read_secret_file(container_to_host(grafana["CLICKHOUSE_ANALYST_PASSWORD_FILE"], secrets_dir))
        grafana_ca = container_to_host(grafana["CLICKHOUSE_CA_CERT_FILE"], secrets_dir)
        analyst_url = (f"clickhouses://{grafana['CLICKHOUSE_ANALYST_USER']}@127.0.0.1:{server.tls_port}/"
                       f"{grafana['CLICKHOUSE_DATABASE']}?ca_certs={grafana_ca}")
        with connect(load_settings(clickhouse_url=analyst_url, clickhouse_password=analyst_password)) as analyst:
            assert analyst.query("SELECT count() FROM frame_scores WHERE screening_id = %(s)s", {"s": screening}) == [(3,)]
            with pytest.raises(ClickHouseError, match="readonly"):
                analyst.insert("frame_scores", score_rows("forged", 1))
            with pytest.raises(ClickHouseError, match="readonly"):
                analyst.execute("DROP TABLE frame_scores")
        wrong = load_settings(clickhouse_url=analyst_url, clickhouse_password=Secret("guess"))
        with connect(wrong) as client, pytest.raises(ClickHouseError, match="[Ww]rong password"):
            client.query("SELECT 1")
    finally:
        server.stop()


# -- the compose Kafka broker, for real ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ComposeKafka:
    internal: str  # what the containers use (kafka:9092 in compose)
    external: str  # what camera hosts use
    secrets_dir: Path
    logs: Path
    kafka_home: Path  # stand-ins for the image's /opt/kafka/bin scripts
    config_dir: Path  # the image's /opt/kafka/config/moviemotion


def fake_kafka_home(home: Path, logs_dir: Path) -> Path:
    """bin/kafka-storage.sh and bin/kafka-server-start.sh of the apache/kafka image, on the local Kafka 4.1.1 jars."""
    jars = classpath(ensure_jars())
    bin_dir = home / "bin"
    bin_dir.mkdir(parents=True)
    common = f'-Dlog4j2.configurationFile={LOG4J_CONFIG} -Dkafka.logs.dir={logs_dir} -cp "{jars}"'
    tool = f'exec java {" ".join(TOOL_JVM_OPTS)} {common}'
    scripts = {"kafka-storage.sh": f'{tool} {STORAGE_TOOL} "$@"',
               "kafka-broker-api-versions.sh": f'{tool} org.apache.kafka.tools.BrokerApiVersionsCommand "$@"',
               "kafka-server-start.sh": f'exec java {" ".join(BROKER_JVM_OPTS)} {common} {BROKER_MAIN} "$@"'}
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return home


@pytest.fixture(scope="module")
def compose_kafka(tmp_path_factory) -> Iterator[ComposeKafka]:
    """kafka-start.sh run as the kafka service runs it (its environment, the mounted template, secrets as compose
    mounts them), with container addresses and paths mapped to this machine: listeners on free local ports,
    log.dirs and /run/secrets in a temp dir. Every other line of the template is used as it is."""
    work = tmp_path_factory.mktemp("compose-kafka")
    generated = work / "generated"
    deploy_secrets.write_secrets(generated, ("127.0.0.1",))
    run_secrets = work / "run-secrets"  # /run/secrets/<name> as compose mounts it
    run_secrets.mkdir()
    for name in service_secrets("kafka"):
        shutil.copy(generated / deploy_secrets.COMPOSE_SECRETS[name], run_secrets / name)

    template_path, props = kafka_template()
    internal_port, controller_port, external_port = free_ports(3)
    bound = listeners(props["listeners"])
    ports = {name: str(port) for name, port in zip(bound, (internal_port, controller_port, external_port))}
    controller = props["controller.listener.names"]
    mapped = {
        "listeners": ",".join(f"{name}://127.0.0.1:{ports[name]}" for name in bound),
        "controller.quorum.voters": f"1@127.0.0.1:{ports[controller]}",
        "log.dirs": str(work / "data"),
        **{key: value.replace(SECRETS_MOUNT, str(run_secrets)) for key, value in props.items()
           if value.startswith(SECRETS_MOUNT + "/")},
    }
    text = template_path.read_text()
    for key, value in mapped.items():
        text, count = re.subn(rf"^{re.escape(key)}=.*$", f"{key}={value}", text, flags=re.MULTILINE)
        assert count == 1, key
    template = work / "kafka-server.properties"
    template.write_text(text)
    internal_name = props["inter.broker.listener.name"]
    external_name = next(name for name in bound if name not in (controller, internal_name))

    logs = work / "logs"
    logs.mkdir()
    home = fake_kafka_home(work / "kafka-home", logs)
    env = {**service_env("kafka"), "PATH": os.environ["PATH"], "SECRETS_DIR": str(run_secrets),
           "KAFKA_HOME": str(home), "KAFKA_TEMPLATE": str(template),
           "KAFKA_CONFIG_DIR": str(work / "config"), "KAFKA_INTERNAL_ADDRESS": f"127.0.0.1:{ports[internal_name]}",
           "KAFKA_EXTERNAL_PORT": ports[external_name]}
    with open(logs / "start.out", "wb") as out:
        proc = subprocess.Popen(["bash", str(kafka_entrypoint())], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    kafka = ComposeKafka(f"127.0.0.1:{ports[internal_name]}", f"127.0.0.1:{ports[external_name]}", generated, logs,
                         home, work / "config")
    try:
        admin = ScramUser(ADMIN_ROLE, read_secret_file(run_secrets / "kafka_admin_password"))
        security = kafka_python_kwargs(client_settings(load_settings(), admin, run_secrets / "venue_ca"))
        deadline = time.monotonic() + 180
        while not ping(kafka.internal, timeout_s=5, security=security):
            assert proc.poll() is None, f"kafka-start.sh exited {proc.returncode}:\n{(logs / 'start.out').read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"compose broker did not answer:\n{(logs / 'start.out').read_text()[-3000:]}"
            time.sleep(1)
        yield kafka
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.mark.kafka
def test_compose_kafka_healthcheck_answers_as_the_admin(compose_kafka):
    """The kafka service's healthcheck command (Kafka's own tool, with the admin client config kafka-start.sh wrote)
    succeeds against the broker, and the same tool without that config (plaintext, anonymous) does not."""
    command = service("kafka")["healthcheck"]["test"][1]
    local = (command.replace("kafka:9092", compose_kafka.internal)
             .replace("/opt/kafka/bin/", f"{compose_kafka.kafka_home}/bin/")
             .replace("/opt/kafka/config/moviemotion/", f"{compose_kafka.config_dir}/"))
    assert local != command and "/opt/kafka" not in local
    assert (compose_kafka.config_dir / "admin-client.properties").stat().st_mode & 0o777 == 0o600
    assert subprocess.run(["sh", "-c", local], timeout=120).returncode == 0
    anonymous = re.sub(r"--command-config \S+", "", local)
    assert subprocess.run(["sh", "-c", f"timeout 20 {anonymous}"], timeout=60).returncode != 0


def compose_settings(monkeypatch, service_name: str, kafka: ComposeKafka) -> Settings:
    return settings_as(monkeypatch, service_name, kafka.secrets_dir, **{"kafka:9092": kafka.internal})


@pytest.mark.kafka
def test_compose_broker_gets_the_roles_from_init_and_enforces_them(compose_kafka, monkeypatch):
    # 1. init's provisioning command, with init's environment.
    init_env = {key: container_to_host(value.replace("kafka:9092", compose_kafka.internal), compose_kafka.secrets_dir)
                for key, value in service_env("init").items()}
    command = service("init")["command"]
    provision = command[-1].split("&&")[0].strip()  # the image's WORKDIR holds the repo's infra/ package
    assert provision.startswith("python -m infra.secure_broker provision"), command
    env = {key: value for key, value in os.environ.items() if not key.startswith("MOVIEMOTION_")}
    done = subprocess.run(["sh", "-c", provision], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**env, **init_env, "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"})
    assert done.returncode == 0, done.stdout + done.stderr
    passwords = [read_secret_file(compose_kafka.secrets_dir / path).reveal()
                 for name, path in deploy_secrets.COMPOSE_SECRETS.items() if name.startswith("kafka_") and "password" in name]
    output = done.stdout + done.stderr + (compose_kafka.logs / "start.out").read_text(errors="replace")
    assert not [secret for secret in passwords if secret in output], "a password reached a log"

    # 2. The broker holds exactly the ACLs the secure local stack gives these roles for init's settings.
    init = compose_settings(monkeypatch, "init", compose_kafka)
    users = [ScramUser(role, Secret("-")) for role in ROLE_ACLS]
    any_acl = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                        ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
    with admin_client(init.kafka_bootstrap, TIMEOUT_S, kafka_python_kwargs(init)) as admin:
        acls, error = admin.describe_acls(any_acl)
    assert error.errno == 0, error
    assert set(acls) == set(role_acls(init, users))
    ensure_topics(init.kafka_bootstrap, init, security=kafka_python_kwargs(init))  # init's `moviemotion up` step

    # 3. A camera host on the external listener writes faces only; the worker (its compose env) reads them.
    worker = compose_settings(monkeypatch, "worker", compose_kafka)
    camera = client_settings(worker, ScramUser("camera", read_secret_file(compose_kafka.secrets_dir / "kafka_camera_password")),
                             compose_kafka.secrets_dir / deploy_secrets.COMPOSE_SECRETS["venue_ca"])
    producer = open_kafka_producer(compose_kafka.external, timeout_s=15, security=kafka_python_kwargs(camera))
    marker = uuid.uuid4().hex.encode()
    try:
        producer.send(worker.topics.faces, key=b"seat-1", value=marker).get(timeout=TIMEOUT_S)
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(worker.topics.emotion_events, key=b"seat-1", value=b"forged").get(timeout=TIMEOUT_S)
    finally:
        producer.close()
    consumer = KafkaConsumer(worker.topics.faces, bootstrap_servers=worker.kafka_bootstrap,
                             group_id=f"{worker.processor_group}-compose-test", auto_offset_reset="earliest",
                             consumer_timeout_ms=15_000, **kafka_python_kwargs(worker))
    try:
        assert any(message.value == marker for message in consumer)  # stops at the marker (or after 15 s idle)
    finally:
        consumer.close()
    assert not ping(compose_kafka.internal, timeout_s=3), "an anonymous client got an answer"


def test_compose_keeps_the_crop_promise():
    """The venue's `faces` retention (FACES_RETENTION_MS's default in the compose file) and its broker's retention
    check (kafka-server.properties) keep every crop unreadable 15 minutes after it was produced, as the local stack
    does (tests/test_kafka_broker.py reads the same back from a running broker)."""
    from infra.kafka_broker import RETENTION_CHECK_INTERVAL_MS
    from infra.topics import CROP_PROMISE_MS, crop_lifetime_ms

    env = compose()["x-moviemotion-env"]["MOVIEMOTION_FACES_RETENTION_MS"]
    retention_ms = int(re.fullmatch(r"\$\{FACES_RETENTION_MS:-(\d+)\}", env).group(1))
    properties = (INFRA / "compose" / "kafka-server.properties").read_text()
    check_ms = int(re.search(r"^log\.retention\.check\.interval\.ms=(\d+)$", properties, re.M).group(1))
    assert check_ms == RETENTION_CHECK_INTERVAL_MS
    assert crop_lifetime_ms(retention_ms, check_ms) <= CROP_PROMISE_MS
    assert f"FACES_RETENTION_MS={retention_ms}" in ENV_EXAMPLE.read_text()
