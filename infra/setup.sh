#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian machine: system packages (Java 17, Maven, clickhouse-server),
# the Python virtual environment in .venv with MoviEmotion installed, and Kafka's jars from Maven Central.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v clickhouse-server >/dev/null || missing+=(clickhouse-server clickhouse-client)
command -v openssl >/dev/null || missing+=(openssl)
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import moviemotion, pytest, hypothesis" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  touch .venv/.installed
fi

echo "setup: Kafka jars (Maven)"
.venv/bin/python -c "from infra.kafka_broker import ensure_jars; ensure_jars()"
