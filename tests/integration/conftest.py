"""Integration fixtures: whole clusters as real processes on 127.0.0.1, a real broker, and a
check that every test leaves no child process behind.

No fixed ports: the daemons bind port 0 and report the address they got (see
:mod:`synergy.cluster`). Only mosquitto needs a number up front; it is started on a port the
kernel just handed out and, should another process take that port in between, started again
on another one (:func:`start_mosquitto`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from synergy.cluster import AgentProcessSpec
from synergy.hardware.analysis import analyze_model
from synergy.hardware.model import TensorSpec
from synergy.models.zoo import build_model
from tests.support import eventually_sync

#: Three devices with different boards; emulation timing off so tests run fast.
FAST = ("--no-chip-timing", "--no-link-shaping")
GLASSES = AgentProcessSpec("glasses", ("--preset", "glasses", *FAST))
WATCH = AgentProcessSpec("watch", ("--preset", "watch", *FAST))
RING = AgentProcessSpec("ring", ("--preset", "ring", *FAST))
EARBUD = AgentProcessSpec("earbud", ("--preset", "earbud", *FAST))
THREE_DEVICES = (GLASSES, WATCH, RING)


#: Seconds a test's children get to finish exiting before they count as leaked.
LEAK_GRACE_S = 5.0
#: Ports mosquitto is tried on before the fixture gives up.
MOSQUITTO_ATTEMPTS = 5


def model_input(model_name: str, seed: int = 7) -> tuple[TensorSpec, np.ndarray]:
    """A deterministic int8 input for a zoo model, with the spec the wire needs."""
    hardware = analyze_model(build_model(model_name), model_name)
    spec = hardware.inputs[0]
    rng = np.random.default_rng(seed)
    return spec, rng.integers(-64, 64, size=spec.shape).astype(np.int8)


def whole_model_output(model_name: str, array: np.ndarray) -> np.ndarray:
    """The reference: the whole model in one onnxruntime session."""
    model = build_model(model_name)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: array.astype(np.float32)})[0])


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


def unused_port() -> int:
    """A port the kernel considers free right now (it may be taken again before it is used)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def exited(self) -> bool:
        return self.process.poll() is not None

    def listening(self) -> bool:
        # mosquitto logs "mosquitto version X running" once every listener is open.
        return " running" in self.log()

    def started(self) -> bool:
        """Listening, or gone (the caller tells which)."""
        return self.exited() or self.listening()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_mosquitto(binary: str, work_dir: Path, write_config: Callable[[int, int], Path] | None = None) -> Broker:
    """mosquitto listening on 127.0.0.1, on a fresh port; another port if the bind fails.

    ``write_config(port, attempt)`` writes the configuration to use (default: anonymous
    plaintext on the port) and returns its path.
    """

    def plaintext(port: int, attempt: int) -> Path:
        # A listener bound to 127.0.0.1 makes mosquitto exit when the bind fails (with `-p`
        # alone it would carry on with only its IPv6 socket).
        config = work_dir / f"mosquitto-{attempt}.conf"
        config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        return config

    failures: list[str] = []
    for attempt in range(MOSQUITTO_ATTEMPTS):
        port = unused_port()
        config = (write_config or plaintext)(port, attempt)
        log_path = work_dir / f"mosquitto-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [binary, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        broker = Broker(port, process, log_path)
        try:
            eventually_sync(broker.started, timeout_s=10, what="mosquitto to start")
        except AssertionError as exc:
            failures.append(f"port {port}: {exc}")
            broker.stop()
            continue
        if broker.exited():  # most likely the port was taken in between: try another
            failures.append(f"port {port}: exit {process.returncode}: {broker.log()[-300:]}")
            continue
        return broker
    raise AssertionError("mosquitto did not start:\n" + "\n".join(failures))


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[int]:
    """A real mosquitto broker on a free port, started and stopped by the test."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.fail("mosquitto is not installed: run `apt-get install mosquitto` (make test does it as root)")
    broker = start_mosquitto(binary, tmp_path)
    try:
        yield broker.port
    finally:
        broker.stop()


# -- leak check ------------------------------------------------------------------------------

_PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    """Orphaned grandchildren are re-parented to this process instead of init, so a daemon
    left behind by a child that exited (e.g. ``synergy demo``'s agents) is still seen below."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _live_descendants() -> dict[int, str]:
    """pid -> command line of every live (not zombie) process descending from this one."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            fields = stat.read_text().rpartition(")")[2].split()
            if fields[0] != "Z":
                parents[int(stat.parent.name)] = int(fields[1])
    ours: dict[int, str] = {}
    for pid in parents:
        ancestor = parents.get(pid)
        seen = {pid}
        while ancestor is not None and ancestor not in seen:
            if ancestor == os.getpid():
                ours[pid] = _command_line(pid)
                break
            seen.add(ancestor)
            ancestor = parents.get(ancestor)
    return ours


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _check_no_leaks(before: set[int]) -> None:
    def new_children() -> dict[int, str]:
        return {pid: cmd for pid, cmd in _live_descendants().items() if pid not in before}

    try:
        eventually_sync(lambda: not new_children(), timeout_s=LEAK_GRACE_S, what="child processes to exit")
        return
    except AssertionError:
        leaked = new_children()
    for pid in leaked:  # so that one leak does not fail the tests after it
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    pytest.fail("processes left behind: " + "; ".join(f"{pid}: {cmd}" for pid, cmd in sorted(leaked.items())))


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fail the test if a process it started (directly or not) is still alive after it."""
    _become_subreaper()
    before = set(_live_descendants())
    yield
    _check_no_leaks(before)


@pytest.fixture(autouse=True, scope="module")
def no_leaked_processes_from_module_fixtures() -> Iterator[None]:
    """The same for module-scoped fixtures (a cluster shared by a module's tests)."""
    _become_subreaper()
    before = set(_live_descendants())
    yield
    _check_no_leaks(before)
