"""SerialBoard against ``synergy board-sim`` on a real pseudo-terminal.

The simulator's responder runs on a pty (chip timing off, no baud pacing: fast); the board
loads both halves of convnet5 and its outputs are bit-exact with the emulated board's for the
same input. Closing the pty (an unplug) makes calls fail with Unavailable; a simulator started
again under the same name (a replug: a new boot_id, nothing held) brings the board back, and
the partition is loaded again from the host's copy.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import numpy as np
import pytest

from agent.board import EmulatedBoard
from agent.serial_board import RECONNECT_MAX_S, WATCH_PERIOD_S, SerialBoard, SerialTarget, parse_serial_board
from synergy.cli.board_sim_cmd import simulator
from synergy.cli.main import build_parser
from synergy.deployment import PartitionPayload
from synergy.errors import InvalidArgument, Unavailable
from synergy.hardware.analysis import analyze_model
from synergy.hardware.boards import load_board
from synergy.models.partition import split_model
from synergy.models.zoo import build_model
from synergy.serial.session import SessionTiming

PROFILE = load_board("max78000")
# Generous: the simulator builds an onnxruntime session at LOAD_END (slow on a loaded machine).
TIMING = SessionTiming(baud=0, reply_s=1.0, commit_s=10.0)


def halves() -> list[PartitionPayload]:
    model = build_model("convnet5")
    hardware = analyze_model(model, "convnet5")
    out = []
    for first, last in ((0, 2), (3, len(hardware.layers) - 1)):
        part = split_model(model, hardware, first, last)
        digest = hashlib.sha256(part.onnx).hexdigest()
        out.append(PartitionPayload(first, last, part.onnx, part.inputs, part.outputs, digest))
    return out


def test_board_flag_parses_port_and_baud() -> None:
    assert parse_serial_board("serial:/dev/ttyACM0") == SerialTarget("/dev/ttyACM0", 921_600)
    assert parse_serial_board("serial:/dev/ttyUSB1@115200") == SerialTarget("/dev/ttyUSB1", 115_200)
    assert parse_serial_board("max78002") is None
    for bad in ("serial:", "serial:/dev/x@fast", "serial:/dev/x@0"):
        with pytest.raises(InvalidArgument, match="--board"):
            parse_serial_board(bad)
    args = build_parser().parse_args(["board-sim", "--pty", "--board", "max78002", "--baud", "115200"])
    assert args.board == "max78002" and args.baud == 115_200


async def test_serial_board_on_a_pty_is_bit_exact_and_survives_a_replug(tmp_path: Path) -> None:
    name = tmp_path / "ttyBOARD"
    port = await simulator(PROFILE, baud=0, chip_timing=False, symlink=name)
    board = SerialBoard(PROFILE, SerialTarget(str(name)), timing=TIMING)
    emulated = EmulatedBoard(PROFILE, chip_timing=False)
    try:
        first, second = halves()
        rng = np.random.default_rng(7)
        x = {t.name: rng.integers(-128, 128, t.shape, dtype=np.int8) for t in first.inputs}

        loaded = [await board.load(p, f"half{i}") for i, p in enumerate((first, second))]
        assert board.connects == 1 and board.hello is not None and board.hello.kind.name == "MAX78000"
        assert board.limit_mismatches == [] and board.link_bytes_per_s > 0
        reference = [await emulated.load(p, f"half{i}") for i, p in enumerate((first, second))]

        mid, timing = await board.run(loaded[0], x)
        out, _ = await board.run(loaded[1], mid)
        want_mid, _ = await emulated.run(reference[0], x)
        want_out, _ = await emulated.run(reference[1], want_mid)
        for name_, value in want_mid.items():
            assert mid[name_].dtype == value.dtype and np.array_equal(mid[name_], value)
        for name_, value in want_out.items():
            assert out[name_].tobytes() == value.tobytes()
        assert timing.compute_s > 0 and timing.modelled_s == pytest.approx(loaded[0].modelled_s)

        # Unplug: the port closes under the host.
        await port.close()
        with pytest.raises(Unavailable):
            await board.run(loaded[0], x)
        with pytest.raises(Unavailable):
            await board.run(loaded[0], x)  # no port to reopen yet (within the back-off)

        # Replug: a new board (new boot_id, holding nothing) appears under the same name.
        port = await simulator(PROFILE, baud=0, chip_timing=False, symlink=name)
        await asyncio.sleep(0.5)  # past the reconnect back-off
        again, _ = await board.run(loaded[0], x)
        assert board.connects == 2
        assert all(np.array_equal(again[k], v) for k, v in want_mid.items())

        board.unload(loaded[0].key)
        board.unload(loaded[1].key)
        assert board.weight_bytes_loaded() == 0
    finally:
        await board.close()
        await port.close()


async def test_the_simulator_takes_the_line_time_of_its_baud_rate() -> None:
    # The link measurement (16 full LOAD_CHUNKs) on a simulator at 921,600 baud: the pty itself
    # is far faster, so what is measured is the simulator's pacing, 92,160 bytes/s at most.
    port = await simulator(PROFILE, baud=921_600, chip_timing=False, symlink=None)
    board = SerialBoard(PROFILE, SerialTarget(port.path, 921_600))
    try:
        await board.connect()
        assert 0.5 * 92_160 < board.link_bytes_per_s < 1.05 * 92_160
    finally:
        await board.close()
        await port.close()


def test_agent_flag_keeps_the_device_profile_and_names_the_port() -> None:
    from synergy.cli.daemons import device_from_args

    args = build_parser().parse_args(["agent", "--device-id", "pi", "--board", "serial:/dev/ttyACM0@115200"])
    assert device_from_args(args).board.name == "max78000"
    assert parse_serial_board(args.board) == SerialTarget("/dev/ttyACM0", 115_200)
    args = build_parser().parse_args(["agent", "--preset", "glasses", "--board", "serial:/dev/ttyACM1"])
    assert (
        device_from_args(args).board.name
        == device_from_args(build_parser().parse_args(["agent", "--preset", "glasses"])).board.name
    )


def test_board_sim_command_prints_its_pty_and_stops_cleanly_on_sigterm() -> None:
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "synergy.cli.main", "board-sim", "--pty", "--no-chip-timing"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/") and os.path.exists(path)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def test_an_idle_board_that_is_unplugged_is_noticed_and_probed_back(tmp_path: Path) -> None:
    # No call in flight: the watcher's STATUS notices the loss; reconnect() probes until HELLO.
    name = tmp_path / "ttyIDLE"
    port = await simulator(PROFILE, baud=0, chip_timing=False, symlink=name)
    board = SerialBoard(PROFILE, SerialTarget(str(name)), timing=TIMING)
    try:
        assert not board.available.is_set()
        await asyncio.wait_for(board.reconnect(), 5)
        assert board.available.is_set() and board.connects == 1
        first_boot = board.hello.boot_id if board.hello else None

        await port.close()
        await asyncio.wait_for(board.wait_lost(), 3 * WATCH_PERIOD_S + 1)
        assert not board.available.is_set() and not board.connected

        probing = asyncio.ensure_future(board.reconnect())
        await asyncio.sleep(0.5)
        assert not probing.done()  # no port yet: it keeps probing, one attempt per back-off
        port = await simulator(PROFILE, baud=0, chip_timing=False, symlink=name)
        await asyncio.wait_for(probing, RECONNECT_MAX_S + 2)
        assert board.available.is_set() and board.connects == 2
        assert board.hello is not None and board.hello.boot_id != first_boot
    finally:
        await board.close()
        await port.close()
