"""The serial path's cost per tensor: exact frames (hand-checked), the link model, a real pty.

Hand-checked figures: a frame body (8 header + payload + 4 CRC) under 254 bytes costs exactly
one COBS code byte, whatever its zeros, plus the delimiter: ``payload + 14`` on the wire
(docs/serial-protocol.md §4: 14 bytes for an ACK). Data of zeros keeps every COBS run short,
so a full frame then costs ``1024 + 14`` too; the worst case of §4 is 1,042.
"""

from __future__ import annotations

import argparse
import math
import time

import pytest

from synergy.cli import bench_cmd
from synergy.hardware.analysis import analyze_model
from synergy.hardware.boards import load_board
from synergy.models.loader import load_model
from synergy.serial.messages import TensorShape
from synergy.serial.overhead import (
    UART_LINK,
    chunk_data_bytes,
    input_exchange,
    link_model_seconds,
    output_exchange,
    representative_data,
)
from synergy.serial.overhead_bench import (
    Transfer,
    fit_link,
    format_report,
    measure_transfers,
    model_rows,
    model_transfers,
)
from synergy.serial.protocol import FRAME_OVERHEAD_BYTES, MAX_PAYLOAD, max_frame_bytes
from synergy.serial.session import line_seconds

BAUD = 921_600
TAU = 10 / BAUD  # seconds per byte on the line


def shape(n: int) -> tuple[TensorShape, ...]:
    return (TensorShape((n,)),)


def test_the_doc_figures_of_section_4() -> None:
    assert max_frame_bytes() == 1_042
    assert FRAME_OVERHEAD_BYTES == 18
    assert chunk_data_bytes() == 1_020 == MAX_PAYLOAD - 4
    assert line_seconds(1_042, BAUD) == pytest.approx(11.3e-3, abs=0.05e-3)


def test_a_one_byte_input() -> None:
    # RUN: partition u16, count u8, element u8, rank u8, dim u16, 1 data byte = 8 -> 22 on the
    # wire; the bare RUN_RESULT: timings 16 + count 1 = 17 -> 31.
    e = input_exchange(shape(1))
    assert (e.direction, e.payload_bytes, e.trips, e.frames) == ("in", 1, 1, 2)
    assert (e.host_to_board_bytes, e.board_to_host_bytes) == (22, 31)
    assert (e.wire_bytes, e.back_bytes, e.wire_ratio) == (22, 31, 22.0)
    assert e.line_seconds(BAUD) == pytest.approx((22 + 31) * TAU)


def test_exactly_one_full_frame_in_and_one_byte_more() -> None:
    # A rank-1 RUN's shapes take 7 bytes: 1,017 data bytes fill its 1,024.
    full = input_exchange(shape(1_017), bytes(1_017))
    assert full.trips == 1
    assert full.host_to_board_bytes == 1_024 + 14
    more = input_exchange(shape(1_018), bytes(1_018))
    # + RUN_INPUT (offset u32 + 1 byte = 5 -> 19); an ACK (14) for the RUN, the RUN_RESULT (31).
    assert (more.trips, more.frames) == (2, 4)
    assert (more.host_to_board_bytes, more.board_to_host_bytes) == (1_038 + 19, 14 + 31)
    # Window 2: both requests go back to back; the RUN_RESULT leaves once the RUN_INPUT is in
    # (its ACK, 1,038..1,052, is already through): 1,038 + 19 + 31 bytes.
    assert more.line_seconds(BAUD) == pytest.approx((1_038 + 19 + 31) * TAU)
    # With a window of 1 the RUN_INPUT waits for the ACK: 1,038 + 14 + 19 + 31.
    assert more.line_seconds(BAUD, window=1) == pytest.approx((1_038 + 14 + 19 + 31) * TAU)


def test_outputs_one_frame_and_one_byte_more() -> None:
    # A bare RUN: partition u16 + count u8 = 3 -> 17. RUN_RESULT: 16 + 1 + 4 of shapes + data.
    tiny = output_exchange(shape(1), b"\x07")
    assert (tiny.direction, tiny.trips, tiny.host_to_board_bytes, tiny.board_to_host_bytes) == ("out", 1, 17, 36)
    assert (tiny.wire_bytes, tiny.back_bytes) == (36, 17)
    room = MAX_PAYLOAD - 21
    full = output_exchange(shape(room), bytes(room))
    assert (full.trips, full.board_to_host_bytes) == (1, 1_038)
    more = output_exchange(shape(room + 1), bytes(room + 1))
    # + OUTPUT_READ (offset u32, length u16 = 6 -> 20) and its OUTPUT_CHUNK (4 + 1 -> 19),
    # sent only once the RUN_RESULT is in: two phases one after the other.
    assert more.trips == 2
    assert (more.host_to_board_bytes, more.board_to_host_bytes) == (17 + 20, 1_038 + 19)
    assert more.line_seconds(BAUD) == pytest.approx((17 + 1_038 + 20 + 19) * TAU)


def test_random_data_frames_stay_within_the_worst_case() -> None:
    n = 10 * chunk_data_bytes()
    e = input_exchange(shape(n))
    frames = math.ceil((n - 1_017) / 1_020) + 1
    assert e.trips == frames
    # Every frame at least payload + 14 (one code byte), at most §4's worst case.
    assert n + 14 * frames <= e.host_to_board_bytes <= max_frame_bytes() * frames
    assert e.wire_ratio == pytest.approx(1_042 / 1_020, abs=0.01)
    # Deterministic: the same bytes on every call.
    assert representative_data(64) == representative_data(64) != bytes(64)
    assert input_exchange(shape(n)) == e


def test_the_link_model_is_the_planners() -> None:
    assert UART_LINK.bandwidth_bytes_per_s == 92_160 and UART_LINK.per_message_overhead_bytes == 2
    assert link_model_seconds(1_000) == pytest.approx(1_002 / 92_160)
    assert link_model_seconds(0) == 0.0


def test_model_transfers_group_cuts_of_one_shape() -> None:
    proto, name = load_model("simplenet")
    model = analyze_model(proto, name)
    transfers = model_transfers(model)
    labels = [label for label, _ in transfers]
    assert labels[0] == "input" and labels[-1] == "output"
    assert transfers[0][1].direction == "in" and transfers[-1][1].direction == "out"
    # Cuts after 1, 2 and 3 carry the same shape: one line each way.
    assert labels.count("after 1, 2, 3") == 2
    covered = sum(len(label.split(",")) for label in labels[1:-1:2])
    assert covered == len(model.cuts)


def test_fit_link_recovers_a_line() -> None:
    fit = fit_link([(n, 0.002 + n / 90_000) for n in (40, 1_000, 20_000, 150_000)])
    assert fit.rate_bytes_per_s == pytest.approx(90_000)
    assert fit.fixed_s == pytest.approx(0.002)
    assert fit.message_bytes == pytest.approx(180)
    assert fit.frame_s(BAUD) == pytest.approx(1_020 / 90_000 - 1_020 * TAU)


def test_the_report_names_refused_tensors() -> None:
    proto, name = load_model("convnet5")
    model = analyze_model(proto, name)
    transfers = [t for _, t in model_transfers(model)]
    measured: dict[Transfer, float | str] = {t: 1.5 * t.exchange().line_seconds(BAUD) for t in transfers}
    big = transfers[1]
    measured[big] = "TOO_LARGE"
    rows = model_rows(model, measured, baud=BAUD)
    report = format_report(rows, baud=BAUD, board="max78002")
    assert "TOO_LARGE" in report and "measured / model" in report and "line (exact frames)" in report
    assert sum(1 for r in rows if r.measured_s is None) == 1


def test_the_cli_flags() -> None:
    parser = argparse.ArgumentParser()
    bench_cmd.add_arguments(parser)
    args = parser.parse_args(["--serial-overhead", "--model", "convnet5", "--model", "unet"])
    assert (args.serial_overhead, args.baud, args.model) == (True, 921_600, ["convnet5", "unet"])
    assert "default 921,600" in parser.format_help()


async def test_measured_on_a_pty_never_beats_the_line() -> None:
    baud = 2_000_000
    transfers = [Transfer(shape(n), d) for n in (200, 5_000) for d in ("in", "out")]
    too_large = Transfer((TensorShape((4, 300, 300)),), "in")  # 360,000 B > 180,224
    started = time.perf_counter()
    measured = await measure_transfers([*transfers, too_large], profile=load_board("max78002"), baud=baud)
    assert time.perf_counter() - started < 8
    refusal = measured[too_large]
    assert isinstance(refusal, str) and "TOO_LARGE" in refusal and "180224" in refusal
    for transfer in transfers:
        seconds, line = measured[transfer], transfer.exchange().line_seconds(baud)
        assert isinstance(seconds, float)
        assert line <= seconds < 4 * line + 0.05, (transfer.nbytes, transfer.direction, seconds, line)
