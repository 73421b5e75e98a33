"""Consistent Overhead Byte Stuffing: a frame's bytes without any zero, so 0x00 can end frames.

COBS (Cheshire and Baker, 1999) replaces every zero byte of a block by the distance to the
next one, so the encoded block holds no 0x00 at all and the serial link can use 0x00 as an
unambiguous frame delimiter: a receiver that lost track (noise, a board reset mid-frame)
throws away everything up to the next 0x00 and is in step again. The cost is small and
bounded: one code byte per started 254 bytes of input, at least one (:func:`max_encoded_size`).

Encoding of ``data`` is a sequence of groups ``code, byte * (code - 1)``: the ``code - 1``
bytes are non-zero data; a group with ``code < 0xFF`` is followed by a zero in the original
(except the very last group, whose implied zero is not part of the data); a group with
``code == 0xFF`` holds 254 data bytes and no zero follows it. The delimiter itself is not
part of the encoding (the protocol appends it, :mod:`synergy.serial.protocol`).
"""

from __future__ import annotations

from synergy.errors import ProtocolError

__all__ = ["MAX_GROUP_DATA", "decode", "encode", "max_encoded_size"]

#: Data bytes one group can carry without a following zero (its code byte is then 0xFF).
MAX_GROUP_DATA = 254


def max_encoded_size(size: int) -> int:
    """The most bytes :func:`encode` can produce for ``size`` input bytes (those with no zero)."""
    return size + max(1, -(-size // MAX_GROUP_DATA))


def encode(data: bytes) -> bytes:
    """``data`` stuffed so that it holds no 0x00 byte (the delimiter is not appended).

    Byte for byte the reference algorithm (Cheshire and Baker; the C firmware uses the same):
    each run of non-zero bytes between zeros becomes 0xFF groups of 254 bytes and then one
    group with the rest, possibly empty (code 0x01) — except at the very end of the data, where
    a run that fills its last 0xFF group exactly needs no empty group after it.
    """
    out = bytearray()
    runs = data.split(b"\x00")
    for index, run in enumerate(runs):
        full = len(run) - len(run) % MAX_GROUP_DATA
        for start in range(0, full, MAX_GROUP_DATA):
            out.append(0xFF)
            out += run[start : start + MAX_GROUP_DATA]
        if full == len(run) and full > 0 and index == len(runs) - 1:
            break
        out.append(len(run) - full + 1)
        out += run[full:]
    return bytes(out)


def decode(encoded: bytes) -> bytes:
    """The original bytes of one COBS block; :class:`ProtocolError` if it is not valid COBS.

    Invalid means: empty, a zero byte inside, or a group whose code runs past the end.
    """
    if not encoded:
        raise ProtocolError("COBS block is empty (at least one code byte is needed)")
    out = bytearray()
    index = 0
    size = len(encoded)
    while index < size:
        code = encoded[index]
        if code == 0:
            raise ProtocolError(f"COBS block holds a zero byte at offset {index} (zeros only delimit frames)")
        group_end = index + code
        if group_end > size:
            raise ProtocolError(
                f"COBS group at offset {index} has code {code} but only {size - index - 1} byte(s) follow"
            )
        chunk = encoded[index + 1 : group_end]
        if 0 in chunk:
            raise ProtocolError(
                f"COBS block holds a zero byte at offset {index + 1 + chunk.index(0)} (zeros only delimit frames)"
            )
        out += chunk
        index = group_end
        if code != 0xFF and index < size:
            out.append(0)
    return bytes(out)
