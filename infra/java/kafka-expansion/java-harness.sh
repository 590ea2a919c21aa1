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
# the boot program writes the staged jars (~140 MB), a pathing jar and the options file where it runs: a
# directory named by this process id, which the boot program keeps (exec). The runner ends a harness with
# SIGKILL, so nothing runs after it: directories whose process is gone are removed when the next one starts.
BASE="${TMPDIR:-/tmp}/gluteflow-java-harness"
mkdir -p "$BASE"
for dir in "$BASE"/*; do
  if [ -d "$dir" ] && [ ! -d "/proc/${dir##*/}" ]; then rm -rf "$dir"; fi
done
WORK="$BASE/$$"
mkdir -p "$WORK"
cd "$WORK"
# shellcheck disable=SC2086  # the arguments hold no spaces: ids and host:port endpoints
exec "$BOOT" $args --semi_persist_dir="$WORK"
