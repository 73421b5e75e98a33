"""A board's HELLO limits next to the BoardProfile the planner uses for it.

The planner trusts a :class:`BoardProfile` (and the MCU figures of :mod:`synergy.hardware.mcu`);
a real board states its own limits in HELLO_REPLY. :func:`limits_for_profile` is what a
board of that profile should report (the simulator reports exactly this), and
:func:`profile_mismatches` lists every figure where the board claims less than the profile
promises — any entry means plans made from the profile could be refused by the board.
"""

from __future__ import annotations

from synergy.errors import InvalidArgument
from synergy.hardware.boards import BoardProfile
from synergy.hardware.mcu import mcu_memory
from synergy.serial.messages import BoardKind, BoardLimits

__all__ = ["board_kind", "limits_for_profile", "profile_mismatches"]


def board_kind(profile: BoardProfile) -> BoardKind:
    """The HELLO board kind of ``profile``'s accelerator; a ``cpu`` board has none."""
    try:
        return BoardKind[profile.accelerator.upper()]
    except KeyError:
        known = ", ".join(kind.name for kind in BoardKind)
        raise InvalidArgument(
            f"board {profile.name}: accelerator {profile.accelerator!r} is not one of {known}"
        ) from None


def limits_for_profile(profile: BoardProfile) -> BoardLimits:
    """The limits a board of ``profile`` reports: its CNN memories and what the MCU leaves."""
    board_kind(profile)
    mcu = mcu_memory(profile)
    if mcu is None:  # pragma: no cover - every BoardKind has MCU figures
        raise InvalidArgument(f"board {profile.name}: no MCU memory figures for {profile.accelerator}")
    return BoardLimits(
        weight_bytes=profile.weight_bytes,
        bias_bytes=profile.bias_bytes,
        max_layers=profile.max_layers,
        data_bytes=profile.data_bytes,
        partition_flash_bytes=mcu.weight_flash_bytes,
        frame_sram_bytes=mcu.frame_sram_bytes,
        # A run's input and output are both buffered in SRAM at once: each gets half.
        max_tensor_bytes=mcu.frame_sram_bytes // 2,
        cnn_clock_hz=round(profile.cnn_clock_hz),
    )


def profile_mismatches(kind: BoardKind, limits: BoardLimits, profile: BoardProfile) -> list[str]:
    """Where the board (HELLO) offers less than ``profile`` promises, one sentence each."""
    expected_kind = board_kind(profile)
    if kind != expected_kind:
        return [f"board kind: the board is a {kind.name}, the profile {profile.name} is a {expected_kind.name}"]
    expected = limits_for_profile(profile)
    out = []
    for name in BoardLimits.__dataclass_fields__:
        claimed, promised = getattr(limits, name), getattr(expected, name)
        if name == "cnn_clock_hz":
            if claimed != promised:
                out.append(f"{name}: the board reports {claimed}, the profile {profile.name} says {promised}")
        elif claimed < promised:
            out.append(f"{name}: the board reports {claimed}, less than the {promised} of profile {profile.name}")
    return out
