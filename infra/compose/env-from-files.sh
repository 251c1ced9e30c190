#!/bin/sh
# Entrypoint wrapper of infra/docker-compose.yml for images that read a secret only from an environment variable
# (ClickHouse's users.d `from_env`, Grafana's provisioning `${VAR}`s): for each NAME before `--`, export NAME with the
# contents of the file named by $NAME_FILE (a docker secret; trailing newlines dropped), then exec the image's own
# entrypoint given after `--`. A missing, unreadable or empty file stops the container with a message that names the
# variable and the file, never the value.
set -eu
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  name=$1
  shift
  case "$name" in *[!A-Za-z0-9_]*|"") echo "env-from-files: bad variable name '$name'" >&2; exit 2;; esac
  eval "path=\${${name}_FILE:-}"
  if [ -z "$path" ]; then echo "env-from-files: ${name}_FILE is not set" >&2; exit 1; fi
  if [ ! -r "$path" ]; then echo "env-from-files: ${name}_FILE names $path, which is missing or unreadable" >&2; exit 1; fi
  value=$(cat "$path")
  if [ -z "$value" ]; then echo "env-from-files: ${name}_FILE names $path, which is empty" >&2; exit 1; fi
  export "$name=$value"
  unset "${name}_FILE"
done
if [ "$#" -eq 0 ]; then echo "env-from-files: usage: env-from-files.sh NAME... -- COMMAND [ARG...]" >&2; exit 2; fi
shift
if [ "$#" -eq 0 ]; then echo "env-from-files: no command after --" >&2; exit 2; fi
exec "$@"
