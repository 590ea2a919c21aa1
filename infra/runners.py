"""Beam's streaming runners as gluteflow installs them (docs/runners.md).

* **Prism**: Beam's local portable runner, a Go command built from Beam's Go module at the Python SDK's
  version by ``make prism`` into ``.cache/prism/v<version>/prism`` (``GLUTEFLOW_PRISM`` overrides it). The
  Python SDK would download a release binary, which this machine cannot reach.
* **Flink**: Beam's Flink job server assembled by ``make flink`` from its Maven modules into
  ``.cache/flink/beam-flink-job-server.jar`` (a launcher jar whose manifest holds the classpath) and
  passed to the Python ``FlinkRunner`` as ``flink_job_server_jar`` (``GLUTEFLOW_FLINK_JOB_SERVER``
  overrides); ``flink_master=[local]`` runs an embedded Flink cluster inside the job server.
* **Kafka expansion service**: Beam's Java ``KafkaIO`` behind ``ExpansionService``, assembled by
  ``make kafka-expansion`` into ``.cache/kafka-expansion/beam-kafka-expansion-service.jar``
  (``GLUTEFLOW_KAFKA_EXPANSION`` overrides), for ``apache_beam.io.kafka.ReadFromKafka``. The transforms it
  expands run in a PROCESS environment: Beam's Java SDK boot program (built from Beam's Go module into
  ``.cache/java-boot/v<version>/boot``) started through ``infra/java/kafka-expansion/java-harness.sh``.

Each locator raises :class:`RunnerUnavailable` with what is missing and the command that installs it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.external import JavaJarExpansionService
from apache_beam.version import __version__ as beam_version

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache"

ENV_PRISM = "GLUTEFLOW_PRISM"
ENV_FLINK_JOB_SERVER = "GLUTEFLOW_FLINK_JOB_SERVER"
ENV_KAFKA_EXPANSION = "GLUTEFLOW_KAFKA_EXPANSION"
ENV_JAVA_BOOT = "GLUTEFLOW_JAVA_BOOT"

PRISM_DEFAULT = CACHE / "prism" / f"v{beam_version}" / "prism"  # built at the installed SDK's version
FLINK_JOB_SERVER_DEFAULT = CACHE / "flink" / "beam-flink-job-server.jar"
KAFKA_EXPANSION_DEFAULT = CACHE / "kafka-expansion" / "beam-kafka-expansion-service.jar"
JAVA_BOOT_DEFAULT = CACHE / "java-boot" / f"v{beam_version}" / "boot"
JAVA_HARNESS = REPO / "infra" / "java" / "kafka-expansion" / "java-harness.sh"
# Beam's Java boot program adds -javaagent:/opt/apache/beam/jars/jamm.jar (a path inside Beam's container
# image) unless this experiment is set; outside the image the JVM would not start.
JAVA_PROCESS_EXPERIMENT = "--experiments=disable_jamm_agent"


class RunnerUnavailable(RuntimeError):
    """A runner's binary or jars are not installed (the message says how to install them)."""


def _located(env: str, default: Path, what: str, make_target: str, needs: str) -> Path:
    if shutil.which(needs) is None and not os.environ.get(env):
        raise RunnerUnavailable(f"{what}: no `{needs}` on PATH (needed to build and run it)")
    path = Path(os.environ.get(env) or default)
    if not path.is_file():
        raise RunnerUnavailable(f"{what}: {path} not found: run `make {make_target}` (or set {env})")
    return path


def prism_binary() -> Path:
    """The Prism binary: ``GLUTEFLOW_PRISM`` or ``.cache/prism/prism``."""
    return _located(ENV_PRISM, PRISM_DEFAULT, "Prism", "prism", "go")


def flink_job_server_jar() -> Path:
    """The Flink job server launcher jar: ``GLUTEFLOW_FLINK_JOB_SERVER`` or ``.cache/flink/...``."""
    return _located(ENV_FLINK_JOB_SERVER, FLINK_JOB_SERVER_DEFAULT, "Flink job server", "flink", "java")


def kafka_expansion_jar() -> Path:
    """The Kafka expansion service launcher jar: ``GLUTEFLOW_KAFKA_EXPANSION`` or ``.cache/...``."""
    return _located(
        ENV_KAFKA_EXPANSION, KAFKA_EXPANSION_DEFAULT, "Kafka expansion service", "kafka-expansion", "java"
    )


def java_boot() -> Path:
    """Beam's Java SDK boot program: ``GLUTEFLOW_JAVA_BOOT`` or ``.cache/java-boot/v<version>/boot``."""
    return _located(
        ENV_JAVA_BOOT, JAVA_BOOT_DEFAULT, "Beam's Java SDK boot program", "kafka-expansion", "java"
    )


def kafka_expansion_service() -> JavaJarExpansionService:
    """Beam's Java Kafka expansion service, started by the SDK on a free port for the pipeline's
    construction; the transforms it expands run as a PROCESS environment (Beam's Java SDK harness
    from the same jars, no Docker), on runners that start such environments (Prism)."""
    environment = {"command": str(JAVA_HARNESS), "env": {ENV_JAVA_BOOT: str(java_boot())}}
    return JavaJarExpansionService(
        str(kafka_expansion_jar()),
        extra_args=[
            "{{PORT}}",
            "--defaultEnvironmentType=PROCESS",
            f"--defaultEnvironmentConfig={json.dumps(environment)}",
        ],
    )


def prism_args() -> list[str]:
    """Beam options for ``PrismRunner`` with the project's binary; the SDK harness runs in this process
    (``LOOPBACK``), so transforms see this process's files and environment."""
    return [
        "--runner=PrismRunner",
        f"--prism_location={prism_binary()}",
        "--environment_type=LOOPBACK",
        "--prism_log_level=warn",
        JAVA_PROCESS_EXPERIMENT,  # for cross-language transforms; the Python harness ignores it
    ]


def prism_options(streaming: bool = True, extra: Sequence[str] = ()) -> PipelineOptions:
    """:func:`prism_args` as options (``--streaming`` unless ``streaming`` is false, then ``extra``)."""
    return PipelineOptions([*prism_args(), *(["--streaming"] if streaming else []), *extra])


def flink_options(streaming: bool = True, parallelism: int = 1, extra: Sequence[str] = ()) -> PipelineOptions:
    """Options for Beam's ``FlinkRunner`` on an embedded Flink (``[local]``) started by the job server jar."""
    args = [
        "--runner=FlinkRunner",
        f"--flink_job_server_jar={flink_job_server_jar()}",
        "--flink_master=[local]",
        f"--parallelism={parallelism}",
        "--environment_type=LOOPBACK",
    ]
    return PipelineOptions([*args, *(["--streaming"] if streaming else []), *extra])
