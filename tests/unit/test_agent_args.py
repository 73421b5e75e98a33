"""`synergy agent` device descriptions: preset, device file (space-file format) and flag overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from synergy.cli.daemons import device_from_args
from synergy.cli.main import build_parser
from synergy.errors import InvalidArgument, NotFound


def args(*argv: str) -> object:
    return build_parser().parse_args(["agent", *argv])


def test_preset_with_flag_overrides() -> None:
    device = device_from_args(
        args("--preset", "glasses", "--device-id", "g2", "--sensor", "camera:30", "--link", "usb_hs")
    )
    assert device.device_id == "g2" and device.kind == "glasses"
    assert [(s.type, s.rate_hz) for s in device.sensors] == [("camera", 30.0)]
    assert device.link.name == "usb_hs"


def test_device_file_uses_the_space_file_format(tmp_path: Path) -> None:
    path = tmp_path / "pin.yaml"
    path.write_text(
        "name: pin\nboard: max78002\nsensors: [{type: mic, rate_hz: 4}]\noutputs: [buzzer]\n"
        "link: {bandwidth_bytes_per_s: 5000, latency_s: 0.01}\n"
    )
    device = device_from_args(args("--device-file", str(path)))
    assert device.device_id == "pin" and device.board.name == "max78002"
    assert device.link.bandwidth_bytes_per_s == 5000


def test_bad_descriptions_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="--device-id"):
        device_from_args(args())
    with pytest.raises(NotFound, match="unknown link preset 'wifi'"):
        device_from_args(args("--preset", "ring", "--link", "wifi"))
    path = tmp_path / "typo.yaml"
    path.write_text("name: x\nsensor: [cam]\n")
    with pytest.raises(InvalidArgument, match=r"unknown field\(s\) \['sensor'\]"):
        device_from_args(args("--device-file", str(path)))
