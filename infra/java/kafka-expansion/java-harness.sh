#!/bin/sh
# The PROCESS environment of the Java transforms that the Kafka expansion service expands (docs/runners.md):
# Beam's own Java SDK boot program (built from Beam's Go module by `make kafka-expansion`; its path comes in
# GLUTEFLOW_JAVA_BOOT), which asks the runner's provision service for its endpoints, fetches the staged jars
# and starts the Java SDK harness.
# Prism 2.77 passes --id='<id>' with the quotes inside the argument (it runs no shell), so the boot program
# announced an unknown worker id; the quotes are stripped here.
set -eu
BOOT="$GLUTEFLOW_JAVA_BOOT"  # set in the environment's config by infra/runners.kafka_expansion_service
args=""
for arg in "$@"; do
  case "$arg" in
    --id=\'*\') arg="--id=$(printf '%s' "${arg#--id=}" | tr -d "'")" ;;
  esac
  args="$args $(printf '%s' "$arg")"
done
# shellcheck disable=SC2086  # the arguments hold no spaces: ids and host:port endpoints
exec "$BOOT" $args
