"""Integration fixtures: whole clusters as real processes on 127.0.0.1, and a real broker."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from synergy.cluster import AgentProcessSpec
from synergy.hardware.analysis import analyze_model
from synergy.hardware.model import TensorSpec
from synergy.models.zoo import build_model

#: Three devices with different boards; emulation timing off so tests run fast.
FAST = ("--no-chip-timing", "--no-link-shaping")
GLASSES = AgentProcessSpec("glasses", ("--preset", "glasses", *FAST))
WATCH = AgentProcessSpec("watch", ("--preset", "watch", *FAST))
RING = AgentProcessSpec("ring", ("--preset", "ring", *FAST))
EARBUD = AgentProcessSpec("earbud", ("--preset", "earbud", *FAST))
THREE_DEVICES = (GLASSES, WATCH, RING)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


@pytest.fixture
def mosquitto() -> Iterator[int]:
    """A real mosquitto broker on a free port, started and stopped by the test."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.fail("mosquitto is not installed: run `apt-get install mosquitto` (make test does it as root)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        pytest.fail(f"mosquitto did not listen on port {port}")
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
