"""The partition image: the bytes a host sends in LOAD_BEGIN / LOAD_CHUNK for one partition.

A partition is an ONNX sub-model (:func:`synergy.models.partition.split_model`) whose weights
are integers carried in float32 initializers: 4 bytes per value where the chip stores a byte
or less. Sent as they are, a partition the planner's checker fits in a board's flash (it
counts the weights at their bit width) could be refused with ``TOO_LARGE``, and it would take
4 to 9 times the line time to load. The image keeps the graph and stores every large float32
initializer at its real integer width instead. Pure: bytes in, bytes out, no I/O.

:func:`pack_partition` makes an image from ONNX bytes; :func:`unpack_partition` gives back an
ONNX model with the same graph and bit-identical tensor values (for the zoo's partitions, the
very same bytes). :func:`read_header` and :func:`read_table` check and return the header and
the tensor table alone, for tools that report on an image.

Layout (version 1, kind 1). Integers are unsigned little-endian, as in the serial protocol;
no padding anywhere. The first 8 bytes keep their meaning in every version:

====== =============== =========== =========================================================
offset field           type        meaning
====== =============== =========== =========================================================
0      magic           4 bytes     ``SYNP``
4      version         u8          format version: 1
5      kind            u8          1 = ONNX graph (:class:`ImageKind`); 2 is reserved for
                                   the accelerator image (the synthesized network)
6      flags           u16         0 (none defined; an image with any set is refused)
8      crc32           u32         CRC-32/ISO-HDLC (``zlib.crc32``) of bytes 12 to the end
12     tensor_count    u32         entries in the tensor table, <= :data:`MAX_TENSORS`
16     graph_bytes     u32         length of the graph section (deflated)
20     graph_raw_bytes u32         length of the graph inflated, <= :data:`MAX_GRAPH_BYTES`
24     data_bytes      u32         length of the data section
28     tensor table    9 x count   per tensor: ``initializer u32`` (index into the graph's
                                   ``initializer`` list), ``count u32`` (values),
                                   ``bits u8`` (the encoding, below)
...    graph           graph_bytes zlib stream of the serialized ``onnx.ModelProto`` in
                                   which the table's initializers have no data (name, type
                                   and dims stay: the reference is the table's index)
...    data            data_bytes  each table entry's values in table order,
                                   ``ceil(count x bits / 8)`` bytes each
====== =============== =========== =========================================================

Encodings (``bits``): 1 = one bit per value, 1 for +1 and 0 for -1 (the chip's binary
weights); 2 and 4 = two's-complement fields, the first value in the lowest bits of a byte,
the unused high bits of a tensor's last byte 0; 8 = int8; 16 = int16; 32 = float32 exactly as
ONNX stores it (IEEE 754 little-endian). :func:`pack_partition` picks, per float32
initializer of more than :data:`INLINE_MAX_ELEMENTS` values: the bit width the model declares
for it (``synergy.weight_bits``, 1/2/4) when every value fits, else 8, else 16 bits when
every value is an integer in range *and* converts back to the identical float32 bits (so
-0.0, NaN, infinities and fractions stay float32: nothing is ever rounded), else 32. Biases
are int8 like the checker counts them (1 byte per channel); there is no int32 encoding since
it would take the space of float32. Smaller initializers (the requantize scalars, clip bounds,
reshape targets) stay inline in the graph: a table entry would cost more than they do.

The graph is deflated because the serialized graph of a partition is ~300-400 bytes per
hardware layer (node and tensor names, attributes, the partition metadata) and compresses
about 5x; that keeps a partition at the checker's weight and bias bytes plus a few KB, which
matters on a MAX78000 where a 32-layer partition's weights can fill all but 14 KB of the
flash left for partitions.

:func:`unpack_partition` trusts nothing: the length of the image, every count, length and
index is checked against its bound and against the others before anything is allocated, and
every problem (a truncated, oversized or corrupted image, or one that is not an image at all)
raises :class:`~synergy.errors.InvalidArgument` naming the field, its offset and the bound.
An unpacked graph that would make onnxruntime read a file (a tensor with external data) is
refused too.

The kind leaves room for the real accelerator: its firmware does not run ONNX but the network
ai8x-synthesis ("the izer") produces, i.e. kernel, bias and register writes. Kind 1 carries
the ONNX graph for the board simulator and a host-built coprocessor; a kind-2 image for the
accelerator would carry the izer's writes under the same magic and header.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from synergy.errors import InvalidArgument
from synergy.hardware.analysis import DEFAULT_WEIGHT_BITS, weight_bits_of

__all__ = [
    "FORMAT_VERSION",
    "HEADER_BYTES",
    "INLINE_MAX_ELEMENTS",
    "MAGIC",
    "MAX_ELEMENTS",
    "MAX_GRAPH_BYTES",
    "MAX_IMAGE_BYTES",
    "MAX_TENSORS",
    "TABLE_ENTRY_BYTES",
    "ImageHeader",
    "ImageKind",
    "TableEntry",
    "pack_partition",
    "read_header",
    "read_table",
    "unpack_partition",
]

MAGIC = b"SYNP"
FORMAT_VERSION = 1


class ImageKind(IntEnum):
    """What an image carries (header offset 5)."""

    #: The ONNX graph and packed initializers: the board simulator, a host-built coprocessor.
    ONNX_GRAPH = 1
    # 2 is reserved for ACCELERATOR: the izer's kernel, bias and register writes.


#: magic, version, kind, flags, crc32 — the CRC covers everything after it.
_PREFIX = struct.Struct("<4sBBHI")
#: tensor_count, graph_bytes, graph_raw_bytes, data_bytes.
_COUNTS = struct.Struct("<IIII")
#: initializer index, value count, bits.
_ENTRY = struct.Struct("<IIB")
HEADER_BYTES = _PREFIX.size + _COUNTS.size
TABLE_ENTRY_BYTES = _ENTRY.size

#: Bounds of what an image may hold, checked by both directions. An image for a MAX78002
#: (2.4 MB of flash for partitions) is far under each; they exist so that a hostile image
#: cannot make the unpacker allocate without limit (1-bit values inflate 32x into float32).
MAX_IMAGE_BYTES = 16 * 1024 * 1024
MAX_TENSORS = 4096
MAX_GRAPH_BYTES = 4 * 1024 * 1024
#: Values over all tensors: a MAX78002's whole weight memory at 1 bit is 19.2 M.
MAX_ELEMENTS = 1 << 25
#: float32 initializers of at most this many values stay in the graph (see the module doc).
INLINE_MAX_ELEMENTS = 16

FLOAT_BITS = 32
INT16_BITS = 16
BYTE_BITS = 8
#: The encodings, by bits per value (the module doc).
ENCODINGS = (1, 2, 4, BYTE_BITS, INT16_BITS, FLOAT_BITS)
#: Widths below a byte, which the model must declare to get (``synergy.weight_bits``).
_SUB_BYTE = (1, 2, 4)
_ZLIB_LEVEL = 9
_FLOAT = onnx.TensorProto.FLOAT
_EXTERNAL = onnx.TensorProto.EXTERNAL


@dataclass(frozen=True)
class ImageHeader:
    """The fixed header of an image, checked (:func:`read_header`)."""

    version: int
    kind: ImageKind
    tensor_count: int
    graph_bytes: int
    graph_raw_bytes: int
    data_bytes: int

    @property
    def table_offset(self) -> int:
        return HEADER_BYTES

    @property
    def graph_offset(self) -> int:
        return HEADER_BYTES + self.tensor_count * TABLE_ENTRY_BYTES

    @property
    def data_offset(self) -> int:
        return self.graph_offset + self.graph_bytes


@dataclass(frozen=True)
class TableEntry:
    """One row of the tensor table: which initializer, how many values, at what width."""

    index: int
    count: int
    bits: int

    @property
    def nbytes(self) -> int:
        return _packed_bytes(self.count, self.bits)


def _packed_bytes(count: int, bits: int) -> int:
    return (count * bits + BYTE_BITS - 1) // BYTE_BITS


def _bad(detail: str) -> InvalidArgument:
    return InvalidArgument(f"partition image: {detail}")


# ---------------------------------------------------------------------------------------------
# Packing


def pack_partition(onnx_bytes: bytes) -> bytes:
    """The image of the ONNX model ``onnx_bytes`` (see the module doc for the layout)."""
    model = _parse_model(onnx_bytes, "partition is not valid ONNX")
    external = next(_external_tensors(model.graph), None)
    if external is not None:
        raise InvalidArgument(f"partition tensor {external!r} keeps its data in a file; an image carries it all")
    declared = weight_bits_of(model)
    entries: list[TableEntry] = []
    chunks: list[bytes] = []
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.data_type != _FLOAT or _values(tensor) <= INLINE_MAX_ELEMENTS:
            continue
        try:
            values = numpy_helper.to_array(tensor).astype(np.float32, copy=False).reshape(-1)
        except ValueError as exc:  # its data does not match its dims
            raise InvalidArgument(f"partition initializer {tensor.name!r}: {exc}") from None
        bits, data = _encode(values, declared.get(tensor.name, DEFAULT_WEIGHT_BITS))
        entries.append(TableEntry(index, values.size, bits))
        chunks.append(data)
        tensor.ClearField("raw_data")
        tensor.ClearField("float_data")
    graph = model.SerializeToString(deterministic=True)
    data = b"".join(chunks)
    elements = sum(entry.count for entry in entries)
    for what, value, bound in (
        ("initializers to pack", len(entries), MAX_TENSORS),
        ("graph bytes", len(graph), MAX_GRAPH_BYTES),
        ("values", elements, MAX_ELEMENTS),
    ):
        if value > bound:
            raise InvalidArgument(f"partition has {value} {what}, over the image's bound of {bound}")
    deflated = zlib.compress(graph, _ZLIB_LEVEL)
    body = b"".join(
        [
            _COUNTS.pack(len(entries), len(deflated), len(graph), len(data)),
            *(_ENTRY.pack(entry.index, entry.count, entry.bits) for entry in entries),
            deflated,
            data,
        ]
    )
    if _PREFIX.size + len(body) > MAX_IMAGE_BYTES:
        raise InvalidArgument(
            f"partition image would be {_PREFIX.size + len(body)} bytes, over the bound of {MAX_IMAGE_BYTES}"
        )
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, ImageKind.ONNX_GRAPH, 0, zlib.crc32(body))
    return prefix + body


def _encode(values: np.ndarray, declared_bits: int) -> tuple[int, bytes]:
    """(bits, packed bytes) of one float32 tensor: the narrowest exact encoding allowed."""
    ints = _exact_int16(values)
    if ints is None:
        return FLOAT_BITS, values.astype("<f4").tobytes()
    widths = (declared_bits, BYTE_BITS, INT16_BITS) if declared_bits in _SUB_BYTE else (BYTE_BITS, INT16_BITS)
    for bits in widths:
        if _fits(ints, bits):
            return bits, _pack_ints(ints, bits)
    raise AssertionError("every int16 value fits 16 bits")  # pragma: no cover


def _exact_int16(values: np.ndarray) -> np.ndarray | None:
    """``values`` as int16 if every one is an integer that converts back to the same bits."""
    info = np.iinfo(np.int16)
    # A NaN makes both comparisons false; infinities fail the range.
    if not (values.min() >= info.min and values.max() <= info.max):
        return None
    ints = values.astype(np.int16)
    # Bit-for-bit, not ==: -0.0 == 0 but would come back +0.0; 1.5 truncates to 1.
    if not np.array_equal(ints.astype(np.float32).view(np.uint32), values.view(np.uint32)):
        return None
    return ints


def _fits(ints: np.ndarray, bits: int) -> bool:
    if bits == 1:
        return bool(np.all(np.abs(ints) == 1))
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return bool(ints.min() >= low and ints.max() <= high)


def _pack_ints(ints: np.ndarray, bits: int) -> bytes:
    if bits == BYTE_BITS:
        return ints.astype(np.int8).tobytes()
    if bits == INT16_BITS:
        return ints.astype("<i2").tobytes()
    per_byte = BYTE_BITS // bits
    fields = (ints > 0 if bits == 1 else ints & ((1 << bits) - 1)).astype(np.uint8)
    padded = np.zeros(_packed_bytes(fields.size, bits) * per_byte, np.uint8)
    padded[: fields.size] = fields
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    packed: np.ndarray = np.bitwise_or.reduce(padded.reshape(-1, per_byte) << shifts, axis=1)
    return packed.astype(np.uint8).tobytes()


# ---------------------------------------------------------------------------------------------
# Unpacking


def read_header(image: bytes) -> ImageHeader:
    """The header of ``image``, checked: magic, version, kind, flags, CRC and section lengths."""
    size = len(image)
    if size < HEADER_BYTES:
        raise _bad(f"{size} bytes, shorter than the {HEADER_BYTES}-byte header")
    if size > MAX_IMAGE_BYTES:
        raise _bad(f"{size} bytes, over the bound of {MAX_IMAGE_BYTES}")
    magic, version, kind, flags, crc = _PREFIX.unpack_from(image, 0)
    if magic != MAGIC:
        raise _bad(f"magic {magic!r} at offset 0 is not {MAGIC!r}: these bytes are not a partition image")
    if version != FORMAT_VERSION:
        raise _bad(f"format version {version} at offset 4; this reader reads version {FORMAT_VERSION}")
    if kind not in {k.value for k in ImageKind}:
        known = ", ".join(f"{k.value} ({k.name})" for k in ImageKind)
        raise _bad(f"kind {kind} at offset 5; this reader reads kind {known}")
    if flags:
        raise _bad(f"flags {flags:#06x} at offset 6; no flag is defined in version {FORMAT_VERSION}")
    actual = zlib.crc32(memoryview(image)[_PREFIX.size :])
    if actual != crc:
        raise _bad(f"crc32 {crc:#010x} at offset 8, but bytes {_PREFIX.size}..{size} give {actual:#010x}")
    tensors, graph_bytes, graph_raw_bytes, data_bytes = _COUNTS.unpack_from(image, _PREFIX.size)
    if tensors > MAX_TENSORS:
        raise _bad(f"tensor_count {tensors} at offset 12 is over the bound of {MAX_TENSORS}")
    if graph_raw_bytes > MAX_GRAPH_BYTES:
        raise _bad(f"graph_raw_bytes {graph_raw_bytes} at offset 20 is over the bound of {MAX_GRAPH_BYTES}")
    header = ImageHeader(version, ImageKind(kind), tensors, graph_bytes, graph_raw_bytes, data_bytes)
    end = header.data_offset + data_bytes
    if end != size:
        raise _bad(
            f"{size} bytes, but its header (tensor_count {tensors}, graph_bytes {graph_bytes}, "
            f"data_bytes {data_bytes} at offsets 12-27) says {end}"
        )
    return header


def unpack_partition(image: bytes) -> bytes:
    """The ONNX model (serialized) that ``image`` carries; :class:`InvalidArgument` if it is not
    a well-formed image (the message names the field, its offset and the bound)."""
    header = read_header(image)
    entries = read_table(image, header)
    graph = _inflate(image, header)
    model = _parse_model(graph, f"partition image: graph at offset {header.graph_offset} is not an ONNX model")
    initializers = model.graph.initializer
    filled: set[int] = set()
    at = header.data_offset
    for number, entry in enumerate(entries):
        where = f"tensor {number} (table offset {header.table_offset + number * TABLE_ENTRY_BYTES})"
        if entry.index >= len(initializers):
            raise _bad(f"{where}: initializer index {entry.index}, but the graph has {len(initializers)}")
        if entry.index in filled:
            raise _bad(f"{where}: initializer {entry.index} has two entries")
        tensor = initializers[entry.index]
        if tensor.data_type != _FLOAT or tensor.raw_data or tensor.float_data or tensor.data_location == _EXTERNAL:
            raise _bad(f"{where}: initializer {tensor.name!r} is not an empty float32 tensor")
        if any(d < 0 for d in tensor.dims) or _values(tensor) != entry.count:
            raise _bad(f"{where}: {entry.count} values, but initializer {tensor.name!r} has dims {list(tensor.dims)}")
        values = _decode(memoryview(image)[at : at + entry.nbytes], entry, f"{where} at data offset {at}")
        tensor.raw_data = values
        filled.add(entry.index)
        at += entry.nbytes
    external = next(_external_tensors(model.graph), None)
    if external is not None:
        raise _bad(f"tensor {external!r} of the graph refers to external data (a file)")
    for tensor in initializers:
        if tensor.data_type == _FLOAT and _values(tensor) and not (tensor.raw_data or tensor.float_data):
            raise _bad(f"initializer {tensor.name!r} has no values in the graph nor in the tensor table")
    return model.SerializeToString(deterministic=True)


def read_table(image: bytes, header: ImageHeader) -> list[TableEntry]:
    """The tensor table of ``image`` (whose ``header`` :func:`read_header` checked), checked:
    known encodings, at most :data:`MAX_ELEMENTS` values, exactly ``data_bytes`` of data."""
    entries: list[TableEntry] = []
    elements = data = 0
    for number in range(header.tensor_count):
        offset = header.table_offset + number * TABLE_ENTRY_BYTES
        entry = TableEntry(*_ENTRY.unpack_from(image, offset))
        if entry.bits not in ENCODINGS:
            raise _bad(f"tensor {number}: bits {entry.bits} at offset {offset + 8} is not one of {ENCODINGS}")
        elements += entry.count
        if elements > MAX_ELEMENTS:
            raise _bad(f"tensor {number}: count at offset {offset + 4} brings the values over {MAX_ELEMENTS}")
        data += entry.nbytes
        entries.append(entry)
    if data != header.data_bytes:
        raise _bad(f"the tensor table needs {data} data bytes, data_bytes at offset 24 says {header.data_bytes}")
    return entries


def _inflate(image: bytes, header: ImageHeader) -> bytes:
    start = header.graph_offset
    inflater = zlib.decompressobj()
    # One byte over the announced length, so that a longer stream shows instead of being cut.
    limit = header.graph_raw_bytes + 1
    try:
        graph = inflater.decompress(memoryview(image)[start : start + header.graph_bytes], limit)
    except zlib.error as exc:
        raise _bad(f"graph at offset {start} ({header.graph_bytes} bytes) is not a zlib stream: {exc}") from None
    if not inflater.eof or inflater.unused_data or inflater.unconsumed_tail or len(graph) != header.graph_raw_bytes:
        raise _bad(
            f"graph at offset {start} does not inflate to exactly its graph_raw_bytes of "
            f"{header.graph_raw_bytes} in its graph_bytes of {header.graph_bytes}"
        )
    return graph


def _decode(data: memoryview, entry: TableEntry, where: str) -> bytes:
    """One tensor's values as ONNX ``raw_data`` (float32 little-endian)."""
    if entry.bits == FLOAT_BITS:
        return bytes(data)
    if entry.bits == BYTE_BITS:
        return np.frombuffer(data, np.int8).astype("<f4").tobytes()
    if entry.bits == INT16_BITS:
        return np.frombuffer(data, "<i2").astype("<f4").tobytes()
    per_byte = BYTE_BITS // entry.bits
    shifts = np.arange(per_byte, dtype=np.uint8) * entry.bits
    fields = ((np.frombuffer(data, np.uint8)[:, None] >> shifts) & ((1 << entry.bits) - 1)).reshape(-1)
    if np.any(fields[entry.count :]):
        raise _bad(f"{where}: the unused bits of its last byte are not 0")
    unsigned = fields[: entry.count].astype(np.int16)
    if entry.bits == 1:
        signed = unsigned * 2 - 1
    else:
        signed = np.where(unsigned >= 1 << (entry.bits - 1), unsigned - (1 << entry.bits), unsigned)
    return signed.astype("<f4").tobytes()


# ---------------------------------------------------------------------------------------------
# Shared


def _values(tensor: onnx.TensorProto) -> int:
    return math.prod(int(d) for d in tensor.dims)


def _parse_model(data: bytes, what: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except DecodeError as exc:
        raise InvalidArgument(f"{what}: {exc}") from None
    return model


def _external_tensors(graph: onnx.GraphProto) -> Iterator[str]:
    """Names of the tensors anywhere in ``graph`` (subgraphs included) stored in a file."""
    tensors: list[onnx.TensorProto] = [*graph.initializer]
    sparse: list[onnx.SparseTensorProto] = [*graph.sparse_initializer]
    for node in graph.node:
        for attribute in node.attribute:
            # HasField, not the attribute's declared type: a hostile graph may set any field.
            if attribute.HasField("t"):
                tensors.append(attribute.t)
            tensors.extend(attribute.tensors)
            if attribute.HasField("sparse_tensor"):
                sparse.append(attribute.sparse_tensor)
            sparse.extend(attribute.sparse_tensors)
            subgraphs = [attribute.g] if attribute.HasField("g") else []
            for sub in [*subgraphs, *attribute.graphs]:
                yield from _external_tensors(sub)
    tensors += [t for s in sparse for t in (s.values, s.indices)]
    yield from (t.name for t in tensors if t.data_location == _EXTERNAL)
