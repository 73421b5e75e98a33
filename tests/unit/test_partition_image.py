"""The partition image (synergy/serial/image.py): round trips, sizes, hostile input, wiring.

- Every zoo partition at the planner's cuts (``greedy_partitions`` on a MAX78000 and a
  MAX78002) comes back from ``unpack_partition(pack_partition(onnx))`` as the very same ONNX
  bytes; a small model with every encoding (and float_data storage, fractions, -0.0, values
  beyond int8) runs bit-identically in onnxruntime after the round trip.
- Sizes: every partition's image is at most its weight and bias bytes as the checker counts
  them plus :func:`overhead_bound`, and fits the board's ``partition_flash_bytes``; the table
  (``python -m tests.unit.test_partition_image``, or ``pytest -s``) shows the figures.
- Hostile input: random bytes, every truncation and every bit flip of a small image, the same
  flips with the CRC made valid again (so that they reach the table, graph and data), and
  crafted images (bounds, a zlib bomb, external data): only ``InvalidArgument`` comes out.
- Wiring: the simulator refuses raw ONNX with BAD_MESSAGE (the host gets a ProtocolError
  naming it), and a reconnect to a board that kept its partitions recognises them by the
  image's digest (no reload).
"""

from __future__ import annotations

import functools
import math
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from agent.board import EmulatedBoard
from agent.serial_board import SerialBoard, SerialTarget
from synergy.cli.board_sim_cmd import EmulatedBackend, simulator
from synergy.errors import InvalidArgument, ProtocolError
from synergy.hardware.analysis import WEIGHT_BITS_KEY, analyze_model
from synergy.hardware.boards import BoardProfile, load_board
from synergy.hardware.checker import greedy_partitions
from synergy.models.partition import split_model
from synergy.models.zoo import ZOO_NAMES, build_model
from synergy.serial.board_limits import limits_for_profile
from synergy.serial.image import (
    HEADER_BYTES,
    MAGIC,
    MAX_GRAPH_BYTES,
    MAX_IMAGE_BYTES,
    MAX_TENSORS,
    TABLE_ENTRY_BYTES,
    pack_partition,
    read_header,
    read_table,
    unpack_partition,
)
from synergy.serial.session import SerialSession, open_port
from synergy.serial.transfer import load_messages, partition_digest

try:  # tests/unit is not a package: pytest puts it on sys.path
    from hw_builders import GraphBuilder, sample_input
    from test_serial_board import TIMING, halves
except ImportError:  # pragma: no cover - if tests/unit becomes a package
    from tests.unit.hw_builders import GraphBuilder, sample_input
    from tests.unit.test_serial_board import TIMING, halves

BOARDS = ("max78000", "max78002")
#: Bound on a zoo partition's deflated graph: measured 696-5,020 bytes, about 500 + 65 per
#: hardware layer (at most half of this bound), so 1 KB + 128 B per layer.
GRAPH_FIXED_BYTES = 1024
GRAPH_BYTES_PER_LAYER = 128
#: Packing the largest zoo partition (mobilenetv2_075 whole on a MAX78002, 5.4 MB of ONNX)
#: takes ~11 ms; a second leaves room for a loaded machine and still catches a slow path.
PACK_BUDGET_S = 1.0


def overhead_bound(layers: int, tensors: int) -> int:
    """What an image may take beyond its weight and bias bytes: header, table, graph."""
    return HEADER_BYTES + TABLE_ENTRY_BYTES * tensors + GRAPH_FIXED_BYTES + GRAPH_BYTES_PER_LAYER * layers


@dataclass(frozen=True)
class Row:
    """One zoo partition at the planner's cuts for one board."""

    board: str
    model: str
    first: int
    last: int
    onnx: bytes
    image: bytes
    weight_bytes: int
    bias_bytes: int
    pack_s: float
    unpack_s: float

    @property
    def layers(self) -> int:
        return self.last - self.first + 1


@functools.cache
def _partition(model_name: str, first: int, last: int) -> bytes:
    model = build_model(model_name)
    return split_model(model, analyze_model(model, model_name), first, last).onnx


@functools.cache
def size_rows() -> tuple[Row, ...]:
    """Every zoo partition at the planner's cuts on each board, packed and unpacked, timed."""
    rows = []
    for board_name in BOARDS:
        board = load_board(board_name)
        for model_name in ZOO_NAMES:
            hardware = analyze_model(build_model(model_name), model_name)
            for first, last in greedy_partitions(hardware, board) or ():
                blob = _partition(model_name, first, last)
                started = time.perf_counter()
                image = pack_partition(blob)
                packed = time.perf_counter()
                assert unpack_partition(image) == blob, f"{model_name} {first}-{last}"
                unpacked = time.perf_counter()
                layers = hardware.layers[first : last + 1]
                rows.append(
                    Row(
                        board_name,
                        model_name,
                        first,
                        last,
                        blob,
                        image,
                        sum(layer.weight_bytes for layer in layers),
                        sum(layer.bias_bytes for layer in layers),
                        packed - started,
                        unpacked - packed,
                    )
                )
    return tuple(rows)


def format_size_table() -> str:
    lines = [
        f"{'board':9} {'model':21} {'layers':>6} {'onnx B':>10} {'image B':>9} {'weights B':>9} {'bias B':>6} "
        f"{'graph B':>7} {'flash B':>9} {'pack ms':>7} {'unpack ms':>9}"
    ]
    for row in size_rows():
        header = read_header(row.image)
        flash = limits_for_profile(load_board(row.board)).partition_flash_bytes
        lines.append(
            f"{row.board:9} {row.model:21} {f'{row.first}-{row.last}':>6} {len(row.onnx):>10,} {len(row.image):>9,} "
            f"{row.weight_bytes:>9,} {row.bias_bytes:>6,} {header.graph_bytes:>7,} {flash:>9,} "
            f"{row.pack_s * 1e3:>7.1f} {row.unpack_s * 1e3:>9.1f}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Round trips


def test_every_zoo_partition_comes_back_as_the_same_onnx_bytes() -> None:
    rows = size_rows()  # asserts the round trip of each
    assert {row.model for row in rows} == set(ZOO_NAMES)
    for row in rows:
        header = read_header(row.image)
        # Every weight and bias tensor left the graph; only the small constants stay inline.
        assert header.tensor_count >= 1 and header.data_bytes >= row.weight_bytes


def test_images_take_the_checkers_bytes_plus_a_bounded_overhead_and_fit_the_flash() -> None:
    print("\n" + format_size_table())
    for row in size_rows():
        header = read_header(row.image)
        where = f"{row.board} {row.model} {row.first}-{row.last}"
        # Every value is packed at the width the checker counts (weights at their bit width,
        # bias 1 byte), except biases of at most 16 channels, which stay in the graph.
        assert row.weight_bytes <= header.data_bytes <= row.weight_bytes + row.bias_bytes, where
        bound = row.weight_bytes + row.bias_bytes + overhead_bound(row.layers, header.tensor_count)
        assert len(row.image) <= bound, where
        flash = limits_for_profile(load_board(row.board)).partition_flash_bytes
        assert len(row.image) <= flash, f"{where}: image {len(row.image)} B over the flash {flash} B"
        assert len(row.image) * 3.5 < len(row.onnx), where


@pytest.mark.parametrize("board_name", BOARDS)
def test_any_partition_the_checker_fits_fits_the_flash_as_an_image(board_name: str) -> None:
    # The checker bounds a partition's weights and bias by the board's memories and its layer
    # count by max_layers (each layer at most a weight and a bias tensor): with the overhead
    # bound, the largest image the checker could accept still fits the flash.
    board: BoardProfile = load_board(board_name)
    worst = board.weight_bytes + board.bias_bytes + overhead_bound(board.max_layers, 2 * board.max_layers)
    assert worst <= limits_for_profile(board).partition_flash_bytes


def test_packing_the_largest_partition_is_fast() -> None:
    largest = max(size_rows(), key=lambda row: len(row.onnx))
    best = min(_timed(pack_partition, largest.onnx) for _ in range(3))
    assert best < PACK_BUDGET_S, f"packing {largest.model} took {best:.3f} s"
    image = pack_partition(largest.onnx)
    assert min(_timed(unpack_partition, image) for _ in range(3)) < PACK_BUDGET_S


def _timed(function: Callable[[bytes], bytes], argument: bytes) -> float:
    started = time.perf_counter()
    function(argument)
    return time.perf_counter() - started


def _every_encoding() -> onnx.ModelProto:
    """A runnable model whose initializers need every encoding (see the expected table)."""
    g = GraphBuilder((1, 3, 8, 8), seed=3)
    x = g.conv(g.input, 3, 4, bits=1)  # 1-bit: +-1
    x = g.conv(x, 4, 4, bits=2, bias=True)  # 2-bit; its 4 bias values stay inline
    x = g.conv(x, 4, 4, bits=4)  # 4-bit
    x = g.conv(x, 4, 4, bits=4)  # declared 4-bit, but a value of 20: int8
    x = g.conv(x, 4, 2, pool=("max", 2, 2))  # fractions and a -0.0: float32
    x = g.linear(x, 2 * 4 * 4, 20)  # 8-bit weights; bias beyond int8: int16
    model = g.build([x], "every_encoding")
    tensors = {t.name: t for t in model.graph.initializer}
    weights = [t.name for t in model.graph.initializer if t.name.startswith("w")]

    def set_values(name: str, values: np.ndarray, *, float_data: bool = False) -> None:
        tensor = tensors[name]
        tensor.ClearField("raw_data")
        tensor.ClearField("float_data")
        if float_data:
            tensor.float_data.extend(values.reshape(-1).tolist())
        else:
            tensor.raw_data = values.astype("<f4").tobytes()

    def values_of(name: str) -> np.ndarray:
        return numpy_helper.to_array(tensors[name]).copy()

    fourth = values_of(weights[3])
    fourth.reshape(-1)[5] = 20
    set_values(weights[3], fourth, float_data=True)  # float_data storage round-trips too
    fifth = values_of(weights[4]) + 0.5
    fifth.reshape(-1)[7] = -0.0
    set_values(weights[4], fifth)
    bias = next(t.name for t in model.graph.initializer if t.name.startswith("b") and math.prod(t.dims) == 20)
    set_values(bias, np.arange(20, dtype=np.float32) * 100 - 1000)
    return model


EXPECTED_BITS = [1, 2, 4, 8, 32, 8, 16]


@functools.cache
def small_image() -> tuple[bytes, bytes]:
    """(onnx, image) of :func:`_every_encoding`: a few KB, small enough to fuzz exhaustively."""
    blob = _every_encoding().SerializeToString()
    return blob, pack_partition(blob)


def test_each_initializer_gets_the_narrowest_exact_encoding() -> None:
    _, image = small_image()
    assert [entry.bits for entry in read_table(image, read_header(image))] == EXPECTED_BITS


def test_the_unpacked_model_runs_bit_identically_in_onnxruntime() -> None:
    blob, image = small_image()
    original, unpacked = onnx.load_from_string(blob), onnx.load_from_string(unpack_partition(image))
    assert [t.name for t in unpacked.graph.initializer] == [t.name for t in original.graph.initializer]
    for before, after in zip(original.graph.initializer, unpacked.graph.initializer, strict=True):
        assert numpy_helper.to_array(before).tobytes() == numpy_helper.to_array(after).tobytes(), before.name
    assert list(unpacked.graph.node) == list(original.graph.node)
    outputs = []
    for model_bytes in (blob, unpack_partition(image)):
        session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
        x = sample_input((1, 3, 8, 8), seed=11)
        outputs.append([np.asarray(y).tobytes() for y in session.run(None, {"input": x})])
    assert outputs[0] == outputs[1]


def test_values_that_must_not_be_rounded_stay_float32() -> None:
    special = {
        "nan": [np.nan] + [1.0] * 31,
        "inf": [np.inf] + [1.0] * 31,
        "big": [40_000.0] + [1.0] * 31,  # an integer beyond int16
        "tiny": [1e-30] + [0.0] * 31,
        "negative_zero": [-0.0] * 32,
        "ones_undeclared": [1.0, -1.0] * 16,  # +-1 without a declared 1-bit width: int8
        "declared_2_bit_too_wide": [5.0] * 32,  # declared 2-bit but 5: int8
    }
    graph = helper.make_graph(
        [],
        "constants",
        [],
        [],
        [numpy_helper.from_array(np.array(v, np.float32), name) for name, v in special.items()]
        + [numpy_helper.from_array(np.arange(100, dtype=np.int64), "int64_inline")],
    )
    model = helper.make_model(graph)
    helper.set_model_props(model, {WEIGHT_BITS_KEY: '{"declared_2_bit_too_wide": 2}'})
    image = pack_partition(model.SerializeToString())
    assert [e.bits for e in read_table(image, read_header(image))] == [32, 32, 32, 32, 32, 8, 8]
    back = onnx.load_from_string(unpack_partition(image))
    for before, after in zip(model.graph.initializer, back.graph.initializer, strict=True):
        assert numpy_helper.to_array(before).tobytes() == numpy_helper.to_array(after).tobytes(), before.name


# ---------------------------------------------------------------------------------------------
# Hostile input


def _unpacks_or_refuses(data: bytes) -> bool:
    """True if ``data`` unpacks; False if refused with InvalidArgument; anything else fails."""
    try:
        unpack_partition(data)
    except InvalidArgument:
        return False
    return True


def _sealed(data: bytearray | bytes) -> bytes:
    """``data`` with a CRC that matches again, so that a mutation gets past the CRC check."""
    body = bytes(data[12:])
    return bytes(data[:8]) + struct.pack("<I", zlib.crc32(body)) + body


def test_random_bytes_are_refused() -> None:
    rng = np.random.default_rng(1)
    prefix = small_image()[1][:12]
    for trial in range(2000):
        data = rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
        if trial % 2:  # past the magic and version checks, into the lengths
            data = _sealed(prefix + data)
        assert not _unpacks_or_refuses(data)


def test_every_truncation_and_extension_is_refused() -> None:
    _, image = small_image()
    for length in range(len(image)):
        assert not _unpacks_or_refuses(image[:length])
        if length >= 12:  # the CRC made valid again: the lengths must catch it
            assert not _unpacks_or_refuses(_sealed(image[:length]))
    assert not _unpacks_or_refuses(image + b"\0")
    assert not _unpacks_or_refuses(_sealed(image + b"\0"))


def test_every_bit_flip_is_refused_and_resealed_flips_never_raise_anything_else() -> None:
    _, image = small_image()
    header = read_header(image)
    accepted = 0
    for bit in range(len(image) * 8):
        flipped = bytearray(image)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not _unpacks_or_refuses(bytes(flipped)), f"bit {bit}"  # the CRC (or magic, version)
        # With the CRC made valid again, every flip of the header, table and graph, and one
        # bit per byte of the data (where a flip mostly just changes a weight: slow to check).
        if bit < header.data_offset * 8 or bit % 8 == (bit // 8) % 8:
            accepted += _unpacks_or_refuses(_sealed(flipped))
    # Accepted: flips of the CRC field (undone by resealing), of the padding bits after the
    # deflate stream's last block (up to 7, which zlib ignores) and most of those in the data;
    # any other in the header, the table or the graph (zlib's own checksum) is refused.
    assert 32 < accepted <= 32 + 7 + header.data_bytes


def _craft(
    graph: onnx.ModelProto | bytes,
    table: list[tuple[int, int, int]],
    data: bytes,
    *,
    graph_raw_bytes: int | None = None,
    deflated: bytes | None = None,
    kind: int = 1,
    version: int = 1,
    flags: int = 0,
) -> bytes:
    """An image put together field by field (the layout of synergy/serial/image.py)."""
    raw = graph if isinstance(graph, bytes) else graph.SerializeToString()
    deflated = zlib.compress(raw) if deflated is None else deflated
    raw_bytes = len(raw) if graph_raw_bytes is None else graph_raw_bytes
    counts = struct.pack("<IIII", len(table), len(deflated), raw_bytes, len(data))
    body = counts + b"".join(struct.pack("<IIB", *row) for row in table) + deflated + data
    return struct.pack("<4sBBHI", MAGIC, version, kind, flags, zlib.crc32(body)) + body


def _weightless(*dims: int) -> onnx.ModelProto:
    """A graph of one float32 initializer ``w`` whose values are left out (for the table)."""
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=dims)
    return helper.make_model(helper.make_graph([], "g", [], [], [tensor]))


def test_crafted_images_are_refused_naming_the_field() -> None:
    blob, image = small_image()
    ok = _weightless(2, 8)
    assert onnx.load_from_string(unpack_partition(_craft(ok, [(0, 16, 8)], bytes(16)))).graph.initializer[0].raw_data
    external = _weightless(2, 8)
    external.graph.initializer.add().CopyFrom(
        helper.make_tensor("secret", TensorProto.FLOAT, [64], np.zeros(64, np.float32).tobytes(), raw=True)
    )
    external.graph.initializer[1].ClearField("raw_data")
    external.graph.initializer[1].data_location = TensorProto.EXTERNAL
    external.graph.initializer[1].external_data.add(key="location", value="/etc/passwd")
    cases = {
        "magic": blob,  # raw ONNX, as a host before this format sent
        "shorter than the 28-byte header": image[:27],
        "format version 2 at offset 4": _craft(ok, [(0, 16, 8)], bytes(16), version=2),
        "kind 2 at offset 5": _craft(ok, [(0, 16, 8)], bytes(16), kind=2),
        "flags 0x0001 at offset 6": _craft(ok, [(0, 16, 8)], bytes(16), flags=1),
        "crc32": image[:-1] + bytes([image[-1] ^ 1]),
        f"over the bound of {MAX_IMAGE_BYTES}": image + bytes(MAX_IMAGE_BYTES),
        f"tensor_count {MAX_TENSORS + 1} at offset 12": _craft(ok, [(0, 1, 8)] * (MAX_TENSORS + 1), bytes(4097)),
        "graph_raw_bytes": _craft(ok, [(0, 16, 8)], bytes(16), graph_raw_bytes=MAX_GRAPH_BYTES + 1),
        "header (tensor_count": _sealed(_craft(ok, [(0, 16, 8)], bytes(16))[:-1]),
        "bits 3 at offset 36": _craft(ok, [(0, 16, 3)], bytes(6)),
        "needs 16 data bytes": _craft(ok, [(0, 16, 8)], bytes(17)),
        "initializer index 1, but the graph has 1": _craft(ok, [(1, 16, 8)], bytes(16)),
        "two entries": _craft(ok, [(0, 16, 8), (0, 16, 8)], bytes(32)),
        "has dims [2, 8]": _craft(ok, [(0, 15, 8)], bytes(15)),
        "unused bits of its last byte": _craft(_weightless(5), [(0, 5, 4)], b"\x00\x00\xf0"),
        "no values in the graph nor in the tensor table": _craft(ok, [], b""),
        "not a zlib stream": _craft(ok, [(0, 16, 8)], bytes(16), deflated=b"junk" * 8),
        "is not an ONNX model": _craft(b"\xff" * 40, [], b""),
        "external data": _craft(external, [(0, 16, 8)], bytes(16)),
    }
    for expected, data in cases.items():
        with pytest.raises(InvalidArgument, match="partition image") as caught:
            unpack_partition(data)
        assert expected in str(caught.value), f"{expected!r} not in {caught.value}"


def test_a_zlib_bomb_is_cut_at_the_announced_length() -> None:
    # 64 MB of zeros deflate to ~64 KB; the header announces the bound, the stream runs past it.
    bomb = _craft(bytes(64 << 20), [], b"", graph_raw_bytes=MAX_GRAPH_BYTES)
    with pytest.raises(InvalidArgument, match="does not inflate to exactly its graph_raw_bytes"):
        unpack_partition(bomb)


def test_pack_refuses_what_it_could_not_give_back() -> None:
    with pytest.raises(InvalidArgument, match="not valid ONNX"):
        pack_partition(b"\xff" * 40)
    external = _weightless(64)
    external.graph.initializer[0].data_location = TensorProto.EXTERNAL
    external.graph.initializer[0].external_data.add(key="location", value="weights.bin")
    with pytest.raises(InvalidArgument, match="keeps its data in a file"):
        pack_partition(external.SerializeToString())
    short = _weightless(64)
    short.graph.initializer[0].raw_data = bytes(12)
    with pytest.raises(InvalidArgument, match="partition initializer 'w'"):
        pack_partition(short.SerializeToString())


# ---------------------------------------------------------------------------------------------
# Wiring: the simulator takes images only; holdings are recognised by the image's digest


async def test_the_simulator_backend_takes_images_and_refuses_raw_onnx() -> None:
    profile = load_board("max78000")
    backend = EmulatedBackend(EmulatedBoard(profile, chip_timing=False))
    half = halves()[0]
    with pytest.raises(ProtocolError, match="not a partition image"):
        await backend.commit(1, half.onnx)
    await backend.commit(1, pack_partition(half.onnx))
    backend.drop(1)


async def test_a_raw_onnx_load_is_answered_bad_message() -> None:
    port = await simulator(load_board("max78000"), baud=0, chip_timing=False, symlink=None)
    try:
        reader, writer = await open_port(port.path, 0)
        session = SerialSession(reader, writer, timing=TIMING, name="test")
        try:
            await session.hello()
            with pytest.raises(ProtocolError, match=r"BAD_MESSAGE.*not a partition image"):
                await session.pipeline(load_messages(7, halves()[0].onnx))
        finally:
            await session.close()
    finally:
        await port.close()


async def test_a_reconnect_recognises_held_partitions_by_their_image_digest() -> None:
    profile = load_board("max78000")
    port = await simulator(profile, baud=0, chip_timing=False, symlink=None)
    board = SerialBoard(profile, SerialTarget(port.path), timing=TIMING)
    try:
        half = halves()[0]
        await board.load(half, "half0")
        held = next(iter(board._held.values()))
        assert held.blob == pack_partition(half.onnx)
        session = board._session
        assert session is not None
        # The link drops without a reset (same boot id): the board keeps what it holds.
        await session.close()
        hello = await board.connect()
        assert [h.digest for h in hello.holdings] == [partition_digest(held.blob)]
        assert held.partition_id in board._on_board  # recognised: no reload before the next run
    finally:
        await board.close()
        await port.close()


if __name__ == "__main__":
    print(format_size_table())
