"""The izer's cycle formula (HARDWARE.md §2)."""

from __future__ import annotations

import pytest

from synergy.hardware.cycles import (
    NETWORK_START_CYCLES,
    LayerGeometry,
    geometry_cycles,
    layer_cycles,
    layer_geometry,
    network_cycles,
)
from synergy.hardware.model import HardwareLayer


def conv(**kwargs: object) -> HardwareLayer:
    base: dict[str, object] = {
        "index": 0,
        "op": "conv2d",
        "nodes": ("n",),
        "inputs": ("x",),
        "output": "y",
        "in_shape": (1, 5, 32, 32),
        "out_shape": (1, 24, 32, 32),
        "kernel": (3, 3),
        "pad": 1,
        "in_channels": 5,
        "out_channels": 24,
    }
    base.update(kwargs)
    return HardwareLayer(**base)  # type: ignore[arg-type]


def test_worked_check_5x32x32_to_24x32x32_is_27020_cycles() -> None:
    assert layer_cycles(conv()) == 27_020
    geometry = LayerGeometry(
        in_channels=5,
        pooled_rows=32,
        pooled_cols=32,
        out_channels=24,
        out_cols=32,
        kernel_rows=3,
        kernel_cols=3,
        pad_rows=1,
        pad_cols=1,
    )
    assert geometry_cycles(geometry) == 27_020


# Reference totals of the vendor's own unit test (izer/test/test_cycles.py); they include the
# network's start cycle.
IZER_REFERENCE = [
    # in_ch, (h, w), pool, pool_stride, passes, out_ch, kernel, pad, operands, pool_first, passthrough, slots, total
    (64, (20, 20), (2, 2), (2, 2), 1, 16, (3, 3), (2, 2), 1, True, False, 1, 3049),
    (3, (65, 65), (16, 16), (4, 4), 1, 32, (3, 3), (1, 1), 1, True, False, 1, 49010),
    (3, (32, 32), (1, 1), (1, 1), 1, 64, (3, 3), (1, 1), 1, True, False, 1, 67981),
    (3, (32, 32), (1, 1), (1, 1), 1, 64, (3, 3), (0, 0), 1, True, False, 1, 59773),
    (3, (32, 32), (2, 2), (2, 2), 1, 64, (3, 3), (0, 0), 1, True, False, 1, 13885),
    (128, (8, 8), (2, 2), (2, 2), 2, 16, (3, 3), (1, 1), 1, True, False, 1, 773),
    (128, (8, 8), (1, 1), (1, 1), 2, 16, (3, 3), (1, 1), 1, True, False, 1, 2485),
    (128, (8, 8), (1, 1), (1, 1), 2, 16, (3, 3), (0, 0), 1, True, False, 1, 1437),
    (1, (28, 28), (1, 1), (1, 1), 1, 8, (3, 3), (1, 1), 1, True, False, 1, 8189),
    (4, (12, 12), (1, 1), (1, 1), 1, 4, (1, 1), (0, 0), 2, True, True, 1, 721),
    (4, (12, 12), (1, 1), (1, 1), 2, 4, (3, 3), (0, 0), 2, True, True, 1, 1441),
    (79, (11, 11), (1, 1), (1, 1), 2, 1, (3, 3), (0, 0), 1, True, False, 1, 687),
    (8, (17, 17), (2, 2), (2, 2), 1, 8, (1, 1), (0, 0), 2, False, True, 2, 705),
    (1, (1, 1), (1, 1), (1, 1), 1, 1, (3, 3), (1, 1), 1, True, False, 1, 29),
    (12, (1, 1), (1, 1), (1, 1), 1, 17, (1, 1), (0, 0), 1, True, False, 1, 20),
    (5, (31, 7), (1, 1), (1, 1), 1, 11, (3, 3), (1, 1), 1, True, False, 1, 3062),
]


@pytest.mark.parametrize("case", IZER_REFERENCE)
def test_matches_the_izer_reference_totals(case: tuple) -> None:  # type: ignore[type-arg]
    in_ch, (h, w), pool, stride, passes, out_ch, kernel, pad, operands, pool_first, passthrough, slots, total = case
    rows = (h - pool[0]) // stride[0] + 1
    cols = (w - pool[1]) // stride[1] + 1
    geometry = LayerGeometry(
        in_channels=in_ch,
        pooled_rows=rows,
        pooled_cols=cols,
        out_channels=out_ch,
        out_cols=cols + 2 * pad[1] - kernel[1] + 1,
        kernel_rows=kernel[0],
        kernel_cols=kernel[1],
        pad_rows=pad[0],
        pad_cols=pad[1],
        pool_rows=pool[0],
        pool_cols=pool[1],
        operands=operands,
        pool_first=pool_first,
        passthrough=passthrough,
        out_slots=slots,
        multipass=passes,
    )
    assert NETWORK_START_CYCLES + geometry_cycles(geometry) == total


def test_conv_transpose_runs_over_the_doubled_grid_with_complementary_padding() -> None:
    # izer reference 'ai85-upscale-3x7x9l_0x0s1p1m64': 16,837 cycles including the start cycle.
    layer = conv(op="convtranspose2d", in_shape=(1, 3, 7, 9), out_shape=(1, 64, 14, 18), in_channels=3, out_channels=64)
    geometry = layer_geometry(layer)
    assert (geometry.pooled_rows, geometry.pooled_cols, geometry.pad_rows) == (14, 18, 1)
    assert NETWORK_START_CYCLES + layer_cycles(layer) == 16_837


def test_linear_after_flatten_is_a_1x1_conv_over_the_grid() -> None:
    # izer reference 'ai85-mlpflatten768to10-12x8x8lf': 770 cycles including the start cycle.
    layer = conv(
        op="linear",
        in_shape=(1, 12, 8, 8),
        out_shape=(1, 10),
        kernel=(1, 1),
        pad=0,
        in_channels=12,
        out_channels=10,
        flatten=True,
    )
    assert NETWORK_START_CYCLES + layer_cycles(layer) == 770


def test_conv1d_is_an_l_by_1_image() -> None:
    layer = conv(
        op="conv1d",
        in_shape=(1, 64, 30),
        out_shape=(1, 96, 28),
        kernel=(3,),
        pad=0,
        in_channels=64,
        out_channels=96,
    )
    geometry = layer_geometry(layer)
    assert (geometry.pooled_rows, geometry.pooled_cols, geometry.kernel_cols, geometry.pad_cols) == (30, 1, 1, 0)
    expected = LayerGeometry(in_channels=64, pooled_rows=30, pooled_cols=1, out_channels=96, out_cols=1, kernel_rows=3)
    assert layer_cycles(layer) == geometry_cycles(expected)


def test_pool_first_and_eltwise_before_pooling_differ() -> None:
    base = conv(
        in_shape=(1, 16, 16, 16),
        out_shape=(1, 16, 8, 8),
        in_channels=16,
        out_channels=16,
        pool="max",
        pool_size=(2, 2),
        pool_stride=(2, 2),
        eltwise="add",
        eltwise_operands=2,
    )
    first = layer_cycles(base)
    after = layer_cycles(HardwareLayer(**{**base.__dict__, "pool_first": False}))
    assert first != after
    # With one pass both read every operand's window once: the data cost is the same.
    assert layer_geometry(base).operands == 2


def test_streaming_costs_one_and_a_half() -> None:
    plain = layer_cycles(conv())
    streamed = layer_cycles(conv(streaming=True))
    assert streamed == (15 * plain + 9) // 10


def test_passthrough_and_eltwise_layers() -> None:
    copy = conv(op="passthrough", kernel=(), pad=0, out_shape=(1, 5, 32, 32), out_channels=5)
    assert layer_cycles(copy) == 32 * 32 * (2 + 1)
    add = conv(
        op="eltwise",
        kernel=(),
        pad=0,
        in_shape=(1, 4, 12, 12),
        out_shape=(1, 4, 12, 12),
        in_channels=4,
        out_channels=4,
        eltwise="add",
        eltwise_operands=2,
    )
    assert NETWORK_START_CYCLES + layer_cycles(add) == 721


def test_depthwise_writes_one_channel_per_pass() -> None:
    dense = conv(in_shape=(1, 128, 16, 16), out_shape=(1, 128, 16, 16), in_channels=128, out_channels=128)
    depthwise = conv(
        in_shape=(1, 128, 16, 16), out_shape=(1, 128, 16, 16), in_channels=128, out_channels=128, groups=128
    )
    assert layer_cycles(depthwise) < layer_cycles(dense)


def test_network_adds_the_start_cycle() -> None:
    layers = [HardwareLayer(**{**conv().__dict__, "cycles": 27_020})] * 2
    assert network_cycles(layers) == 1 + 2 * 27_020
