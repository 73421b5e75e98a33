"""Device descriptions: presets for typical wearables, and parsing of device flags.

A device is described by its board (preset name or board file), sensors with rates, outputs
and its link. ``synergy agent --preset glasses`` takes a preset; flags override its parts.
"""

from __future__ import annotations

from collections.abc import Mapping

from synergy.errors import InvalidArgument, NotFound
from synergy.hardware.boards import load_board
from synergy.planning.space_files import link_from
from synergy.types import LINK_PRESETS, DeviceSpec, LinkProfile, OutputSpec, SensorSpec

__all__ = ["DEVICE_PRESETS", "parse_link", "parse_sensor", "preset_device"]

#: Typical wearables of the demo: (board, sensors "type:rate_hz", outputs, link).
DEVICE_PRESETS: Mapping[str, tuple[str, tuple[str, ...], tuple[str, ...], str]] = {
    "earbud": ("max78000", ("microphone:8",), ("speaker",), "ble5_2m"),
    "glasses": ("max78000", ("camera:15",), ("display",), "ble5_2m"),
    "watch": ("max78002", ("imu:50",), ("display", "haptics"), "ble5_2m"),
    "ring": ("max78000", ("imu:50",), ("haptics",), "ble5_2m"),
    "patch": ("max78000", ("ecg:10",), (), "ble_48k"),
}


def parse_sensor(text: str) -> SensorSpec:
    """``type:rate_hz[:recording.npy]``, e.g. ``camera:15``."""
    parts = text.split(":")
    if len(parts) < 2 or not parts[0]:
        raise InvalidArgument(f"sensor {text!r}: expected TYPE:RATE_HZ[:RECORDING.npy], e.g. camera:15")
    try:
        rate = float(parts[1])
    except ValueError as exc:
        raise InvalidArgument(f"sensor {text!r}: rate {parts[1]!r} is not a number") from exc
    if rate <= 0:
        raise InvalidArgument(f"sensor {text!r}: rate must be positive")
    return SensorSpec(parts[0], rate, ":".join(parts[2:]))


def parse_link(name: str) -> LinkProfile:
    """A link preset name given on the command line."""
    return link_from(name, "--link")


def preset_device(preset: str, device_id: str = "") -> DeviceSpec:
    if preset not in DEVICE_PRESETS:
        raise NotFound(f"unknown device preset {preset!r}; presets: {', '.join(DEVICE_PRESETS)}")
    board, sensors, outputs, link = DEVICE_PRESETS[preset]
    return DeviceSpec(
        device_id=device_id or preset,
        board=load_board(board),
        sensors=tuple(parse_sensor(s) for s in sensors),
        outputs=tuple(OutputSpec(o) for o in outputs),
        link=LINK_PRESETS[link],
        kind=preset,
    )
