"""Two agents on serial boards (``synergy board-sim --pty``): a split app, an unplug, a replug.

Each agent's board is a ``synergy board-sim`` process on a pseudo-terminal named by a stable
symlink (as udev's ``/dev/serial/by-id`` names a real board), chip timing off and a fast line
to stay quick. The app (client-fed convnet5, from the glasses to the ring, planner "spread")
is split across both boards and is bit-exact with the whole model in one onnxruntime session.
Stopping the ring's simulator unplugs its board: the ring agent leaves the space, the
coordinator re-plans (a higher epoch) and the app, pinned to deliver on the ring, waits with
the reason. A simulator started again on the same name is a replug: the ring rejoins, the
coordinator re-plans and redeploys, and the app delivers bit-exact results again.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from synergy.cluster import AgentProcessSpec, LocalCluster
from synergy.sdk import AppRequest, SynergyClient
from synergy.types import AppInfo, AppState, DeviceState, JointPlan
from tests.integration.conftest import model_input, whole_model_output
from tests.support import eventually

pytestmark = pytest.mark.integration

MODEL = "convnet5"
#: Fast enough that loading a convnet5 half (up to ~250 KB) takes about a second.
BAUD = 2_000_000
SIM_START_S = 30.0


class BoardSim:
    """One ``synergy board-sim --pty`` process: a board plugged in under ``symlink``."""

    def __init__(self, symlink: Path) -> None:
        self.symlink = symlink
        self.process: asyncio.subprocess.Process | None = None

    def command(self) -> tuple[str, ...]:
        return (
            *(sys.executable, "-m", "synergy.cli.main", "board-sim", "--pty", "--no-chip-timing"),
            *("--baud", str(BAUD), "--symlink", str(self.symlink)),
        )

    async def plug(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        path = (await asyncio.wait_for(self.process.stdout.readline(), SIM_START_S)).decode().strip()
        assert path.startswith("/dev/pts/"), path
        assert str(self.symlink.readlink()) == path

    async def unplug(self) -> None:
        """SIGTERM: the simulator closes its pty and removes the name, as a pulled USB cable does."""
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


async def assert_bit_exact(client: SynergyClient, app_id: str, seeds: tuple[int, ...]) -> None:
    for seed in seeds:
        spec, array = model_input(MODEL, seed)
        result = await client.infer(app_id, {spec: array}, timeout_s=20)
        assert not result.dropped, result.drop_reason
        got = result.tensors[0].array()
        expected = whole_model_output(MODEL, array)
        assert got.shape == expected.shape
        assert np.array_equal(got.astype(np.float32), expected.astype(np.float32))


async def app_info(client: SynergyClient, app_id: str) -> AppInfo:
    return next(a for a in await client.list_apps() if a.app_id == app_id)


async def test_split_app_on_two_serial_boards_survives_an_unplug_and_a_replug(tmp_path: Path, log_dir: Path) -> None:
    sims = {name: BoardSim(tmp_path / f"tty-{name}") for name in ("glasses", "ring")}
    await split_app_survives_an_unplug_and_a_replug(sims, log_dir)


async def split_app_survives_an_unplug_and_a_replug(sims: Mapping[str, BoardSim], log_dir: Path) -> None:
    """The scenario of the module doc on two boards (glasses, ring), whatever plays them."""
    agents = [
        AgentProcessSpec(name, ("--preset", name, "--board", f"serial:{sim.symlink}@{BAUD}", "--no-link-shaping"))
        for name, sim in sims.items()
    ]
    try:
        await asyncio.gather(*(sim.plug() for sim in sims.values()))
        async with LocalCluster(agents, log_dir=log_dir, coordinator_args=["--planner", "spread"]) as cluster:
            await cluster.wait_for_devices(2)
            async with cluster.client() as client:
                # Each record carries its port as the agent measured it: at most the line's
                # 10 bits per byte, and not far below it (the simulator paces at the baud rate).
                for device in await client.list_devices():
                    port = device.spec.board_port
                    assert port is not None and port.baud == BAUD and port.firmware, device
                    line = BAUD / 10
                    assert 0.5 * line < port.measured_payload_bytes_per_s < port.measured_wire_bytes_per_s, port
                    assert port.measured_wire_bytes_per_s < 1.02 * line, port
                request = AppRequest("client", MODEL, "haptics", source_device="glasses", target_device="ring")
                app = await client.submit_app(request)
                assert app.state is AppState.RUNNING, app.reason
                before = await client.get_plan()
                plan = before.plan_for(app.app_id)
                assert plan is not None and {s.device_id for s in plan.stages} == {"glasses", "ring"}, plan
                await assert_bit_exact(client, app.app_id, seeds=(1, 2))

                # Unplug the ring's board: the ring leaves, the coordinator re-plans without it.
                await sims["ring"].unplug()

                async def replanned_without_ring() -> tuple[JointPlan, AppInfo] | None:
                    after = await client.get_plan()
                    new = after.plan_for(app.app_id)
                    info = await app_info(client, app.app_id)
                    moved_or_waits = new is None or "ring" not in new.devices
                    return (after, info) if after.epoch > before.epoch and moved_or_waits else None

                unplugged, info = await eventually(
                    replanned_without_ring, timeout_s=10, interval_s=0.1, what="a re-plan without the ring"
                )
                devices = {d.spec.device_id: d.state for d in await client.list_devices()}
                assert devices == {"glasses": DeviceState.ONLINE, "ring": DeviceState.OFFLINE}
                # Pinned to deliver on the ring, the app cannot move: it waits, and says why.
                assert info.state is AppState.WAITING and info.reason, info

                # Replug: a new board (new boot id, holding nothing) under the same name.
                await sims["ring"].plug()

                async def replanned_with_ring() -> JointPlan | None:
                    after = await client.get_plan()
                    new = after.plan_for(app.app_id)
                    info = await app_info(client, app.app_id)
                    back = new is not None and "ring" in {s.device_id for s in new.stages}
                    running = info.state is AppState.RUNNING
                    return after if after.epoch > unplugged.epoch and back and running else None

                await eventually(replanned_with_ring, timeout_s=15, interval_s=0.1, what="the ring back in the plan")
                devices = {d.spec.device_id: d.state for d in await client.list_devices()}
                assert devices == {"glasses": DeviceState.ONLINE, "ring": DeviceState.ONLINE}
                await assert_bit_exact(client, app.app_id, seeds=(3,))
    finally:
        await asyncio.gather(*(sim.unplug() for sim in sims.values()))
