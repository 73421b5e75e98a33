"""MCU memory limits that depend on the plan: flash shared by partitions, SRAM for frames.

The partition checker (:func:`synergy.hardware.checker.check_partition`) judges one
partition on one board. Two more limits of :mod:`synergy.hardware.mcu` depend on where the
plan puts things:

- **flash** — every partition a board serves is stored in its flash (weights are reloaded
  from there when partitions time-share the accelerator), so the partitions of *all* apps
  on a board must fit there together. Unlike the accelerator's weight memory, which only
  costs a reload when overcommitted, flash is a hard limit;
- **SRAM** — a frame that crosses a radio is held whole in the MCU's SRAM while it is sent
  or received (the frame protocol checksums whole messages). Assumption: a device holds at
  most one incoming and one outgoing frame per stage at once; sensor input and local
  delivery stream between the peripheral and the accelerator's data memory and need no
  SRAM copy.

:func:`flash_overcommit` and :func:`sram_violation` return the reason naming the limit and
the figures, or "" when the limit holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from synergy.hardware.boards import BoardProfile
from synergy.hardware.mcu import mcu_memory
from synergy.planning.cost import ModelProfile
from synergy.planning.links import is_plain, route
from synergy.types import DeviceSpec, Stage

__all__ = ["flash_limit", "flash_overcommit", "frame_buffers", "sram_limit", "sram_violation"]

#: No limit known (a "cpu" board or an unknown kind).
UNLIMITED = 1 << 62


def flash_limit(board: BoardProfile) -> int:
    """Bytes of weights and bias the board can store (UNLIMITED when unknown)."""
    mcu = mcu_memory(board)
    return mcu.weight_flash_bytes if mcu is not None else UNLIMITED


def sram_limit(board: BoardProfile) -> int:
    """Bytes of frames the board can hold for its radio (UNLIMITED when unknown)."""
    mcu = mcu_memory(board)
    return mcu.frame_sram_bytes if mcu is not None else UNLIMITED


def flash_overcommit(device_id: str, board: BoardProfile, stored_bytes: Iterable[int]) -> str:
    """Why the partitions storing ``stored_bytes`` (weights + bias each) overflow the flash."""
    total = sum(stored_bytes)
    mcu = mcu_memory(board)
    if mcu is None or total <= mcu.weight_flash_bytes:
        return ""
    return (
        f"flash: {device_id} would store {total} B of weights and bias, {board.name} has "
        f"{mcu.weight_flash_bytes} B ({mcu.describe_flash()})"
    )


def frame_buffers(
    profile: ModelProfile,
    source: str,
    stages: Sequence[Stage],
    target: str,
    devices: Mapping[str, DeviceSpec] | None = None,
) -> dict[str, int]:
    """Per device: bytes of frames it holds in SRAM at once for its radio (largest role).

    With ``devices``, a medium's central that relays a transfer between two other members
    holds the relayed message too (store and forward).
    """
    need: dict[str, int] = {}

    def hold(device: str, nbytes: int) -> None:
        need[device] = max(need.get(device, 0), nbytes)

    def relay(sender: str, receiver: str, nbytes: int) -> None:
        if devices is None:
            return
        for hop in route(devices[sender], devices[receiver], devices).hops[1:]:
            hold(hop.sender, nbytes)

    if stages and stages[0].device_id != source:
        hold(source, int(profile.enter_bytes[stages[0].first_layer]))
        relay(source, stages[0].device_id, int(profile.enter_bytes[stages[0].first_layer]))
    for k, stage in enumerate(stages):
        received = 0
        previous = source if k == 0 else stages[k - 1].device_id
        if previous != stage.device_id:
            received = int(profile.enter_bytes[stage.first_layer])
        sent = 0
        if k + 1 < len(stages):
            if stages[k + 1].device_id != stage.device_id:
                sent = int(profile.enter_bytes[stages[k + 1].first_layer])
                relay(stage.device_id, stages[k + 1].device_id, sent)
        elif target != stage.device_id:
            sent = int(profile.leave_bytes[stage.last_layer])
            relay(stage.device_id, target, sent)
        hold(stage.device_id, received + sent)
    if stages and stages[-1].device_id != target:
        hold(target, int(profile.leave_bytes[stages[-1].last_layer]))
    return need


def sram_violation(
    profile: ModelProfile, source: str, stages: Sequence[Stage], target: str, devices: Mapping[str, DeviceSpec]
) -> str:
    """Why some device of this execution plan cannot hold its frames, or ""."""
    relays = None if is_plain(devices) else devices
    for device_id, nbytes in frame_buffers(profile, source, stages, target, relays).items():
        board = devices[device_id].board
        mcu = mcu_memory(board)
        if mcu is not None and nbytes > mcu.frame_sram_bytes:
            return (
                f"SRAM: {device_id} must hold {nbytes} B of frames for its radio, {board.name} has "
                f"{mcu.frame_sram_bytes} B ({mcu.describe_sram()})"
            )
    return ""
