#!/usr/bin/env bash
# Entrypoint of the `kafka` service of infra/docker-compose.yml (image apache/kafka): builds server.properties from
# kafka-server.properties plus the secrets in /run/secrets, formats the storage on the first start (creating the
# SCRAM admin, which must exist before anyone can log in), then runs the broker. Also writes the admin client
# config the healthcheck uses. Secret values are never printed; the files holding them are 0600.
set -euo pipefail
umask 077

SECRETS=${SECRETS_DIR:-/run/secrets}
KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
TEMPLATE=${KAFKA_TEMPLATE:-/etc/moviemotion/kafka-server.properties}
CONFIG_DIR=${KAFKA_CONFIG_DIR:-/opt/kafka/config/moviemotion}
INTERNAL_ADDRESS=${KAFKA_INTERNAL_ADDRESS:-kafka:9092}   # what containers use (the tests run this script outside one)
MECHANISM=SCRAM-SHA-512

secret() {  # the contents of secret file $1, or exit naming the file (never the value)
  local path="$SECRETS/$1" value
  [ -r "$path" ] || { echo "kafka-start: secret $path is missing or unreadable" >&2; exit 1; }
  value=$(cat "$path")
  [ -n "$value" ] || { echo "kafka-start: secret $path is empty" >&2; exit 1; }
  case "$value" in *[!A-Za-z0-9_.-]*) echo "kafka-start: secret $path may only hold letters, digits and . _ -" >&2; exit 1;; esac
  printf '%s' "$value"
}

: "${CLUSTER_ID:?set CLUSTER_ID (KRaft cluster id)}"
: "${KAFKA_EXTERNAL_HOST:?set KAFKA_EXTERNAL_HOST (the address camera hosts use)}"
: "${KAFKA_EXTERNAL_PORT:?set KAFKA_EXTERNAL_PORT}"
ADMIN=admin
ADMIN_PASSWORD=$(secret kafka_admin_password)
KEYSTORE_PASSWORD=$(secret kafka_keystore_password)
SCRAM_MODULE=org.apache.kafka.common.security.scram.ScramLoginModule
PLAIN_MODULE=org.apache.kafka.common.security.plain.PlainLoginModule

mkdir -p "$CONFIG_DIR"
CONFIG="$CONFIG_DIR/server.properties"
{
  cat "$TEMPLATE"
  echo
  echo "advertised.listeners=INTERNAL://${INTERNAL_ADDRESS},EXTERNAL://${KAFKA_EXTERNAL_HOST}:${KAFKA_EXTERNAL_PORT}"
  echo "ssl.keystore.password=${KEYSTORE_PASSWORD}"
  echo "ssl.key.password=${KEYSTORE_PASSWORD}"
  echo "listener.name.internal.scram-sha-512.sasl.jaas.config=${SCRAM_MODULE} required username=\"${ADMIN}\" password=\"${ADMIN_PASSWORD}\";"
  echo "listener.name.external.scram-sha-512.sasl.jaas.config=${SCRAM_MODULE} required;"
  echo "listener.name.controller.plain.sasl.jaas.config=${PLAIN_MODULE} required username=\"${ADMIN}\" password=\"${ADMIN_PASSWORD}\" user_${ADMIN}=\"${ADMIN_PASSWORD}\";"
} > "$CONFIG"

# What the healthcheck (and an operator inside the container) connects with: the admin over INTERNAL.
cat > "$CONFIG_DIR/admin-client.properties" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=${MECHANISM}
sasl.jaas.config=${SCRAM_MODULE} required username="${ADMIN}" password="${ADMIN_PASSWORD}";
ssl.truststore.type=PEM
ssl.truststore.location=${SECRETS}/venue_ca
PROPS

LOG_DIR=$(sed -n 's/^log\.dirs=//p' "$CONFIG")
if [ ! -f "$LOG_DIR/meta.properties" ]; then
  echo "kafka-start: formatting $LOG_DIR (cluster $CLUSTER_ID) with the SCRAM admin"
  "$KAFKA_HOME/bin/kafka-storage.sh" format --ignore-formatted --cluster-id "$CLUSTER_ID" --config "$CONFIG" \
    --add-scram "${MECHANISM}=[name=${ADMIN},password=${ADMIN_PASSWORD}]" >/dev/null
fi
unset ADMIN_PASSWORD KEYSTORE_PASSWORD
exec "$KAFKA_HOME/bin/kafka-server-start.sh" "$CONFIG"
