"""The microcontroller memories beside the accelerator: flash for weights, SRAM for frames.

The CNN accelerator holds the weights it runs, but they are also *stored* in the MCU's flash
(they are reloaded from there whenever partitions time-share the accelerator), and a frame
that crosses a radio is assembled in the MCU's SRAM before it is sent or after it is
received. Both memories are shared with the firmware itself; how much the firmware takes is
an assumption, named below, not a datasheet figure.

The limits are looked up by accelerator kind (a board file whose ``accelerator`` is
``MAX78000`` gets the MAX78000's MCU); a board of another kind (``cpu``) has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from synergy.hardware.boards import BoardProfile

__all__ = [
    "FIRMWARE_FLASH_BYTES",
    "FIRMWARE_SRAM_BYTES",
    "MCU_MEMORY",
    "McuMemory",
    "mcu_memory",
]

KIB = 1024
#: Assumption: flash taken by the firmware image itself (drivers, BLE/serial stack, the
#: frame protocol, CNN loader code); the rest stores weights and bias.
FIRMWARE_FLASH_BYTES = 64 * KIB
#: Assumption: SRAM taken by the firmware (stack, heap, driver and radio buffers); the rest
#: holds the frames a device sends or receives.
FIRMWARE_SRAM_BYTES = 32 * KIB


@dataclass(frozen=True)
class McuMemory:
    """Flash and SRAM of one board's microcontroller, and what the firmware keeps of them."""

    flash_bytes: int
    sram_bytes: int
    firmware_flash_bytes: int = FIRMWARE_FLASH_BYTES
    firmware_sram_bytes: int = FIRMWARE_SRAM_BYTES

    @property
    def weight_flash_bytes(self) -> int:
        """Flash left to store the weights and bias of every partition the board serves."""
        return self.flash_bytes - self.firmware_flash_bytes

    @property
    def frame_sram_bytes(self) -> int:
        """SRAM left for the frames the board sends and receives over its radio."""
        return self.sram_bytes - self.firmware_sram_bytes

    def describe_flash(self) -> str:
        return f"{self.flash_bytes // KIB} KB flash less {self.firmware_flash_bytes // KIB} KB of firmware"

    def describe_sram(self) -> str:
        return f"{self.sram_bytes // KIB} KB SRAM less {self.firmware_sram_bytes // KIB} KB of firmware"


#: Datasheet figures per accelerator kind: MAX78000 512 KB flash / 128 KB SRAM (Cortex-M4F);
#: MAX78002 2.5 MB flash / 384 KB SRAM.
MCU_MEMORY: Mapping[str, McuMemory] = {
    "MAX78000": McuMemory(flash_bytes=512 * KIB, sram_bytes=128 * KIB),
    "MAX78002": McuMemory(flash_bytes=2560 * KIB, sram_bytes=384 * KIB),
}


def mcu_memory(board: BoardProfile) -> McuMemory | None:
    """The MCU memories of ``board``'s accelerator kind (None: unknown kind, unchecked)."""
    return MCU_MEMORY.get(board.accelerator.upper())
