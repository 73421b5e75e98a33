"""Board profiles: every limit of an accelerator board, as data.

The numbers come from HARDWARE.md §1 (Analog Devices' MAX78000/MAX78002 documentation).
One :class:`BoardProfile` is used by the coordinator (planning), by the agents' emulated
boards (refusing what does not fit) and by the profiler alike, so the three never disagree.
A user can describe another board in a YAML or JSON file with the same field names
(see ``docs/boards.md``); :func:`load_board` reads either a preset name or such a file.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synergy.errors import InvalidArgument, NotFound

__all__ = ["BOARD_PRESETS", "BoardProfile", "MAX78000", "MAX78002", "load_board"]

#: Every CNN processor's weight memory word is 72 bits wide (nine bytes) on both chips.
WEIGHT_WORD_BITS = 72
#: 64 processors in 4 quadrants of 16; 4 processors share one data-memory instance.
PROCESSORS = 64
PROCESSORS_PER_QUADRANT = 16
PROCESSORS_PER_DATA_INSTANCE = 4


@dataclass(frozen=True)
class BoardProfile:
    """The limits and clocks of one accelerator board (one device's compute part)."""

    name: str
    #: Accelerator kind: "MAX78000", "MAX78002" or "cpu".
    accelerator: str
    #: Weight memory words (72 bit) per CNN processor; one entry per processor.
    weight_words_per_processor: tuple[int, ...]
    #: Bias memory bytes per quadrant (4 quadrants).
    bias_bytes_per_quadrant: int
    #: Data memory: number of instances and bytes per instance (4 processors share one).
    data_instances: int
    data_instance_bytes: int
    #: Hardware layers one network may have (fused pooling / element-wise do not count).
    max_layers: int
    #: Input and output channels of one layer (each up to 16 passes of 64 processors).
    max_channels: int
    #: Rows or columns of one tensor.
    max_tensor_dim: int
    #: Pixels per channel without streaming, by data format.
    max_pixels_hwc: int
    max_pixels_chw: int
    #: Streaming (FIFO) layers allowed, always the first ones.
    max_streaming_layers: int
    #: Output bias allowed only for layers with at most this many output channels.
    max_bias_channels: int
    #: Clocks.
    cnn_clock_hz: float
    cpu_clock_hz: float
    #: Operators the chip lacks.
    supports_depthwise: bool
    supports_dilation: bool
    #: Ping-pong output offset within a data-memory instance (ai8x-synthesis ``out_offset``).
    out_offset_pingpong: int
    #: CPU copy rate into / out of the accelerator's data memory (assumption, HARDWARE.md §2).
    cpu_copy_bytes_per_s: float = 75e6
    #: Weight (re)load rate (assumption: a few ms per 100 KB).
    weight_load_bytes_per_s: float = 40e6
    #: Power while the CNN runs and while the CPU works (assumptions, HARDWARE.md §4).
    cnn_active_power_w: float = 0.065
    cpu_active_power_w: float = 0.0067
    idle_power_w: float = 0.001
    #: Free-form notes for people.
    notes: str = field(default="", compare=False)

    @property
    def processors(self) -> int:
        return len(self.weight_words_per_processor)

    @property
    def weight_bytes(self) -> int:
        """Total weight memory in bytes (72-bit words)."""
        return sum(self.weight_words_per_processor) * WEIGHT_WORD_BITS // 8

    @property
    def bias_bytes(self) -> int:
        return self.bias_bytes_per_quadrant * (self.processors // PROCESSORS_PER_QUADRANT)

    @property
    def data_bytes(self) -> int:
        return self.data_instances * self.data_instance_bytes

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping with the same field names :func:`board_from_dict` reads."""
        out = dataclasses.asdict(self)
        out["weight_words_per_processor"] = list(self.weight_words_per_processor)
        return out


def _uniform(words: int) -> tuple[int, ...]:
    return (words,) * PROCESSORS


def _max78002_words() -> tuple[int, ...]:
    # Processors 0, 16, 32 and 48 (the first of each quadrant) have 5,120 words, the others 4,096.
    return tuple(5120 if p % PROCESSORS_PER_QUADRANT == 0 else 4096 for p in range(PROCESSORS))


MAX78000 = BoardProfile(
    name="max78000",
    accelerator="MAX78000",
    weight_words_per_processor=_uniform(768),
    bias_bytes_per_quadrant=512,
    data_instances=16,
    data_instance_bytes=32 * 1024,
    max_layers=32,
    max_channels=1024,
    max_tensor_dim=1023,
    max_pixels_hwc=8192,
    max_pixels_chw=32768,
    max_streaming_layers=8,
    max_bias_channels=512,
    cnn_clock_hz=50e6,
    cpu_clock_hz=100e6,
    supports_depthwise=False,
    supports_dilation=False,
    out_offset_pingpong=0x4000,
    notes="Cortex-M4F 100 MHz + RISC-V 60 MHz; no native USB",
)

MAX78002 = BoardProfile(
    name="max78002",
    accelerator="MAX78002",
    weight_words_per_processor=_max78002_words(),
    bias_bytes_per_quadrant=2048,
    data_instances=16,
    data_instance_bytes=80 * 1024,
    max_layers=128,
    max_channels=2048,
    max_tensor_dim=2047,
    max_pixels_hwc=20480,
    max_pixels_chw=81920,
    max_streaming_layers=8,
    max_bias_channels=2048,
    cnn_clock_hz=200e6,
    cpu_clock_hz=120e6,
    supports_depthwise=True,
    supports_dilation=True,
    out_offset_pingpong=0xA000,
    cpu_copy_bytes_per_s=90e6,
    notes="Cortex-M4F 120 MHz + RISC-V; USB 2.0 high speed",
)

BOARD_PRESETS: Mapping[str, BoardProfile] = {b.name: b for b in (MAX78000, MAX78002)}


def board_from_dict(data: Mapping[str, Any], *, origin: str = "board description") -> BoardProfile:
    """Build a profile from a mapping; ``base`` names a preset whose values fill the gaps."""
    values: dict[str, Any] = {}
    base_name = data.get("base")
    if base_name is not None:
        if base_name not in BOARD_PRESETS:
            raise NotFound(f"{origin}: unknown base board {base_name!r}; known: {sorted(BOARD_PRESETS)}")
        values.update(BOARD_PRESETS[base_name].to_dict())
    known = {f.name for f in dataclasses.fields(BoardProfile)}
    unknown = sorted(set(data) - known - {"base"})
    if unknown:
        raise InvalidArgument(f"{origin}: unknown field(s) {unknown}; known fields: {sorted(known)}")
    values.update({k: v for k, v in data.items() if k != "base"})
    missing = sorted(known - set(values) - _defaulted_fields())
    if missing:
        raise InvalidArgument(f"{origin}: missing field(s) {missing} (or name a preset as 'base')")
    values["weight_words_per_processor"] = tuple(int(w) for w in values["weight_words_per_processor"])
    try:
        return BoardProfile(**values)
    except TypeError as exc:  # pragma: no cover - guarded by the field checks above
        raise InvalidArgument(f"{origin}: {exc}") from exc


def _defaulted_fields() -> set[str]:
    return {
        f.name
        for f in dataclasses.fields(BoardProfile)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }


def load_board(ref: str) -> BoardProfile:
    """Return the preset called ``ref`` or read a board description file (YAML or JSON)."""
    key = ref.strip().lower()
    if key in BOARD_PRESETS:
        return BOARD_PRESETS[key]
    path = Path(ref)
    if not path.is_file():
        raise NotFound(f"unknown board {ref!r}: not a preset ({', '.join(BOARD_PRESETS)}) nor a file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml  # only needed for board files

        data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path}: a board description must be a mapping of fields")
    return board_from_dict(data, origin=str(path))
