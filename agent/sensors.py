"""Emulated sensors: frames of the model's input shape, generated or replayed from a file.

A real camera or microphone delivers samples at its own rate; the emulation produces int8
samples (what the MAX7800x's data memory holds) at the sensor's rate. Generated frames are
deterministic per (device, seq), so runs are reproducible. A ``.npy`` file of shape
``(N, *input_shape)`` or ``input_shape`` is replayed in a loop.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from synergy.errors import InvalidArgument
from synergy.hardware.model import TensorSpec
from synergy.types import SensorSpec
from synergy.wire.tensors import Array, narrow

__all__ = ["EmulatedSensor"]

#: Generated samples stay in a moderate range, like a normalised sensor reading.
SAMPLE_LOW, SAMPLE_HIGH = -64, 64


class EmulatedSensor:
    def __init__(self, spec: SensorSpec, device_id: str) -> None:
        self.spec = spec
        self._device_id = device_id
        self._recording: np.ndarray | None = None
        if spec.source:
            path = Path(spec.source)
            if not path.is_file():
                raise InvalidArgument(f"sensor {spec.type}: recording {path} does not exist")
            self._recording = np.load(path)

    @property
    def period_s(self) -> float:
        return 1.0 / self.spec.rate_hz

    def capture(self, seq: int, inputs: tuple[TensorSpec, ...]) -> dict[str, Array]:
        """One frame for the given input tensors."""
        if self._recording is not None:
            return {t.name: self._replay(seq, t) for t in inputs}
        seed = zlib.crc32(f"{self._device_id}/{self.spec.type}/{seq}".encode())
        rng = np.random.default_rng(seed)
        return {t.name: rng.integers(SAMPLE_LOW, SAMPLE_HIGH, size=t.shape, dtype=np.int8) for t in inputs}

    def _replay(self, seq: int, spec: TensorSpec) -> Array:
        assert self._recording is not None
        data = self._recording
        if tuple(data.shape) == spec.shape:
            return narrow(data, spec)
        if tuple(data.shape[1:]) == spec.shape:
            return narrow(data[seq % data.shape[0]], spec)
        if tuple(data.shape[1:]) == spec.shape[1:]:  # frames stored without the batch axis
            return narrow(data[seq % data.shape[0]][None, ...], spec)
        raise InvalidArgument(
            f"sensor {self.spec.type}: recording of shape {list(data.shape)} does not hold frames of {list(spec.shape)}"
        )
