"""The venue's TLS material (infra/tls.py): one CA, server certificates it signs, private files, clear errors."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra.tls import CA_FILE, CA_KEY_FILE, TlsError, ensure_ca, issue_server_certificate, load_server_certificate


def verifies(ca: Path, certificate: Path, host: str) -> bool:
    """`openssl verify` of `certificate` against `ca` for `host` (a DNS name or an IP address)."""
    flag = "-verify_ip" if host.replace(".", "").isdigit() else "-verify_hostname"
    done = subprocess.run(["openssl", "verify", "-CAfile", str(ca), flag, host, str(certificate)],
                          capture_output=True, text=True)
    return done.returncode == 0


def test_a_server_certificate_verifies_for_its_hosts_only(tmp_path):
    tls = tmp_path / "tls"
    certificate = issue_server_certificate(tls, "clickhouse", ("clickhouse", "127.0.0.1", "ch.venue.lan"), days=2)
    ca = tls / CA_FILE
    for host in ("clickhouse", "127.0.0.1", "ch.venue.lan"):
        assert verifies(ca, certificate.certificate_file, host), host
    for host in ("kafka", "10.0.0.9"):
        assert not verifies(ca, certificate.certificate_file, host), host
    other_ca = ensure_ca(tmp_path / "other")
    assert not verifies(other_ca, certificate.certificate_file, "clickhouse")


def test_keys_are_private_and_the_ca_is_kept(tmp_path):
    tls = tmp_path / "tls"
    ca = ensure_ca(tls, days=2)
    before = ca.read_bytes()
    first = issue_server_certificate(tls, "broker", ("kafka",), days=2)
    second = issue_server_certificate(tls, "clickhouse", ("clickhouse",), days=2)
    assert ca.read_bytes() == before, "issuing a certificate replaced the CA"
    assert tls.stat().st_mode & 0o777 == 0o700
    for key in (tls / CA_KEY_FILE, first.private_key_file, second.private_key_file):
        assert key.stat().st_mode & 0o077 == 0, f"{key.name} is readable by others"
    assert load_server_certificate(tls, "broker") == first


def test_missing_material_and_hosts_are_clear_errors(tmp_path):
    with pytest.raises(TlsError, match="clickhouse.pem, clickhouse.key missing"):
        ensure_ca(tmp_path)
        load_server_certificate(tmp_path, "clickhouse")
    with pytest.raises(TlsError, match="at least one host"):
        issue_server_certificate(tmp_path, "clickhouse", ())
