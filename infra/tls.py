"""TLS material for the venue's servers: one CA, and a server certificate it signs for each server (openssl CLI).

`ensure_ca(dir)` creates the CA once (ca.pem, what clients trust; ca.key, which signs); `issue_server_certificate(
dir, name, hosts)` writes `<name>.pem` (certificate) and `<name>.key` (private key) for those host names and
addresses. Keys are 0600 in a 0700 directory. The Kafka broker's material (infra/kafka_security.py) and a compose
deployment's ClickHouse certificate (infra/deploy_secrets.py) both come from here.
"""
from __future__ import annotations

import ipaddress
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

CA_FILE, CA_KEY_FILE = "ca.pem", "ca.key"

_CA_CONFIG = """[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = MoviEmotion dev CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

_SERVER_CONFIG = """[req]
distinguished_name = dn
prompt = no
[dn]
CN = {cn}
[v3_server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = {san}
authorityKeyIdentifier = keyid
"""


class TlsError(ValueError):
    """TLS material cannot be made or is incomplete."""


@dataclass(frozen=True)
class ServerCertificate:
    """A server's certificate (PEM, signed by the CA) and its private key (PEM, 0600)."""

    certificate_file: Path
    private_key_file: Path


def _san_entry(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return f"DNS:{host}"
    return f"IP:{host}"


def _openssl(args: list[str], cwd: Path, timeout: float) -> None:
    try:
        done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise TlsError("`openssl` not found on PATH; it generates the TLS material "
                       "(Debian: apt-get install openssl)") from None
    except subprocess.TimeoutExpired:
        raise TlsError(f"openssl {args[0]} did not finish within {timeout:.0f}s") from None
    if done.returncode != 0:
        raise TlsError(f"openssl {args[0]} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")


def _private_directory(directory: Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    return directory


def run_openssl_private(steps: list[list[str]], directory: Path, timeout: float) -> None:
    """Run openssl `steps` in `directory`, every file they create readable by the owner only."""
    old_umask = os.umask(0o077)  # openssl creates the key files: private from the start
    try:
        for step in steps:
            _openssl(step, directory, timeout)
    finally:
        os.umask(old_umask)


def ensure_ca(directory: Path, days: int = 30, timeout: float = 60) -> Path:
    """The CA certificate under `directory`, created (with its key) when either file is missing."""
    directory = _private_directory(directory)
    if not ((directory / CA_FILE).is_file() and (directory / CA_KEY_FILE).is_file()):
        (directory / "ca.cnf").write_text(_CA_CONFIG)
        run_openssl_private([["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", CA_KEY_FILE, "-out", CA_FILE,
                       "-days", str(days), "-config", "ca.cnf"]], directory, timeout)
    return directory / CA_FILE


def issue_server_certificate(directory: Path, name: str, hosts: Iterable[str], days: int = 30,
                             timeout: float = 60) -> ServerCertificate:
    """A new key and certificate `<name>.key` / `<name>.pem` for `hosts` (the first is the subject's CN), signed by
    the CA under `directory` (created if missing)."""
    hosts = tuple(hosts)
    if not hosts:
        raise TlsError(f"a certificate for {name} needs at least one host name or address")
    directory = Path(directory)
    ensure_ca(directory, days, timeout)
    config = f"{name}.cnf"
    (directory / config).write_text(_SERVER_CONFIG.format(cn=hosts[0], san=",".join(_san_entry(h) for h in hosts)))
    run_openssl_private([
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-config", config],
        ["x509", "-req", "-in", f"{name}.csr", "-CA", CA_FILE, "-CAkey", CA_KEY_FILE, "-CAcreateserial",
         "-out", f"{name}.pem", "-days", str(days), "-extfile", config, "-extensions", "v3_server"],
    ], directory, timeout)
    return load_server_certificate(directory, name)


def load_server_certificate(directory: Path, name: str) -> ServerCertificate:
    """What `issue_server_certificate(directory, name, ...)` wrote; TlsError naming what is missing."""
    directory = Path(directory)
    certificate = ServerCertificate(directory / f"{name}.pem", directory / f"{name}.key")
    missing = [path.name for path in (directory / CA_FILE, certificate.certificate_file, certificate.private_key_file)
               if not path.is_file()]
    if missing:
        raise TlsError(f"TLS material in {directory} is incomplete: {', '.join(missing)} missing")
    return certificate
