"""Chaos with exact accounting: every frame a source admits ends delivered once or dropped with
a reason, through three SIGKILLs of a middle agent and a SIGSTOP/SIGCONT stall, with and
without MQTT (issue 9, Done when #1).

Five emulated devices, three split apps (planner ``spread``: each model over up to three
devices), sources and targets pinned so that one device — ``relay``, registered first so that
the planner prefers it — is nobody's source or target and serves the middle stages. Each step
kills (or stalls) it; the coordinator re-plans without it; the frames in flight on it come back
on the new path (a hop gives back what it cannot carry on, and the source replays from the
captured input). After each step the test checks, per app and per source epoch, against the
seqs its source says it admitted (``admitted`` per (app, epoch) in every device's telemetry; a
source numbers its frames 0, 1, 2, ... within an epoch): no frame delivered twice, no frame
without an outcome once its epoch retired (and none older than the current epoch's last few),
every drop with a reason — and after each kill, that frames were replayed and none dropped.

Prints the accounting per step (``-s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from synergy.cluster import AgentProcessSpec, LocalCluster
from synergy.reports import Result
from synergy.sdk import AppRequest, SynergyClient
from synergy.types import AppState, JointPlan
from tests.integration.conftest import EARBUD, GLASSES, RING, WATCH, Broker, start_mosquitto
from tests.support import eventually

pytestmark = pytest.mark.slow

#: The relay emulates its chip's timing and its radio (the others do not, to keep the test
#: quick): frames spend time on it, so some are in flight there whenever it is killed.
RELAY = AgentProcessSpec("relay", ("--preset", "ring", "--device-id", "relay"))
#: Frames of the current epoch that may still be on their way when a check runs: the source's
#: window (4) and its worker, plus results in the report pipeline.
IN_FLIGHT_SLACK = 12
#: How long the accounting of a step may take to settle (re-plan, drain, replay, reports).
SETTLE_S = 45.0
KILLS = 3
STALL_S = 4.0
#: How long the relay is stopped before each kill (frames pile up on their way to it).
KILL_AFTER_STOP_S = 0.5


@dataclass
class Ledger:
    """Every outcome the coordinator fanned out, per app."""

    delivered: dict[str, Counter[int]] = field(default_factory=dict)
    dropped: dict[str, dict[int, str]] = field(default_factory=dict)
    #: Deliveries on another epoch than the one the frame was admitted in (replayed).
    replayed: Counter[str] = field(default_factory=Counter)

    def add(self, result: Result) -> None:
        if result.dropped:
            self.dropped.setdefault(result.app_id, {})[result.seq] = result.drop_reason
            return
        self.delivered.setdefault(result.app_id, Counter())[result.seq] += 1
        if result.seq >> 32 != result.epoch:
            self.replayed[result.app_id] += 1


async def admitted(client: SynergyClient) -> dict[tuple[str, int], int]:
    """(app, epoch) -> frames its source admitted, as the devices last reported."""
    out: dict[tuple[str, int], int] = {}
    for device in await client.list_devices():
        for source in device.telemetry.sources:
            key = (source.app_id, source.epoch)
            out[key] = max(out.get(key, 0), source.admitted)
    return out


async def audit(client: SynergyClient, ledger: Ledger, current_epoch: int) -> str:
    """"" when the books balance; otherwise what does not (for ``eventually``'s message)."""
    problems = []
    for app, counts in ledger.delivered.items():
        twice = [seq for seq, n in counts.items() if n > 1]
        if twice:
            problems.append(f"{app}: delivered twice {twice[:5]}")
    for app, drops in ledger.dropped.items():
        if any(not reason for reason in drops.values()):
            problems.append(f"{app}: a drop without a reason")
    for (app, epoch), count in (await admitted(client)).items():
        done = set(ledger.delivered.get(app, {})) | set(ledger.dropped.get(app, {}))
        settled = count if epoch < current_epoch else max(0, count - IN_FLIGHT_SLACK)
        missing = [i for i in range(settled) if (epoch << 32) | i not in done]
        if missing:
            problems.append(f"{app} epoch {epoch}: {len(missing)} of {count} admitted without an outcome {missing[:8]}")
    return "; ".join(problems)


async def balanced(client: SynergyClient, ledger: Ledger, what: str) -> None:
    last = [""]

    async def check() -> bool:
        epoch = (await client.get_plan()).epoch
        last[0] = await audit(client, ledger, epoch)
        return not last[0]

    try:
        await eventually(check, timeout_s=SETTLE_S, interval_s=0.5, what=f"the books to balance after {what}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {last[0]}") from None


async def flowing(ledger: Ledger, app_ids: list[str], more: int = 5) -> None:
    """Until every app delivered ``more`` frames from now on (frames are in flight everywhere)."""
    start = {a: sum(ledger.delivered.get(a, Counter()).values()) for a in app_ids}
    await eventually(
        lambda: all(sum(ledger.delivered.get(a, Counter()).values()) >= start[a] + more for a in app_ids),
        timeout_s=30,
        interval_s=0.1,
        what="every app delivering",
    )


def middle_devices(plan: JointPlan) -> set[str]:
    ends = {p.source_device for p in plan.plans} | {p.target_device for p in plan.plans}
    return {s.device_id for p in plan.plans for s in p.stages} - ends


async def replanned_without(client: SynergyClient, before: int, device: str) -> JointPlan:
    async def check() -> JointPlan | None:
        plan = await client.get_plan()
        placed = len(plan.plans) == 3
        return plan if plan.epoch > before and placed and all(device not in p.devices for p in plan.plans) else None

    plan: JointPlan | None = await eventually(check, timeout_s=30, interval_s=0.2, what=f"a plan without {device}")
    assert plan is not None
    return plan


async def replanned_with(client: SynergyClient, before: int, device: str) -> JointPlan:
    async def check() -> JointPlan | None:
        plan = await client.get_plan()
        return plan if plan.epoch > before and len(plan.plans) == 3 and device in middle_devices(plan) else None

    plan: JointPlan | None = await eventually(check, timeout_s=40, interval_s=0.2, what=f"a plan using {device}")
    assert plan is not None
    return plan


@contextlib.asynccontextmanager
async def broker(use: bool, work: Path) -> AsyncIterator[Broker | None]:
    if not use:
        yield None
        return
    binary = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    if binary is None:
        pytest.fail("mosquitto is not installed: run `apt-get install mosquitto` (make test does it as root)")
    started = start_mosquitto(binary, work)
    try:
        yield started
    finally:
        started.stop()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("mqtt", [False, True], ids=["grpc-only", "with-mqtt"])
async def test_every_frame_is_accounted_through_kills_and_a_stall(tmp_path: Path, mqtt: bool) -> None:
    async with broker(mqtt, tmp_path) as mosquitto:
        mqtt_args = ["--mqtt", f"mqtt://127.0.0.1:{mosquitto.port}"] if mosquitto else []
        coordinator_args = ["--planner", "spread", "--lease-ttl", "2", "--no-calibration", *mqtt_args]
        # The relay registers first: first in the space's order, the spread planner puts the
        # middle stages of every app on it.
        async with LocalCluster(
            (RELAY,), log_dir=tmp_path / "logs", coordinator_args=coordinator_args, agent_args=mqtt_args
        ) as cluster:
            await cluster.wait_for_devices(1)
            for spec in (GLASSES, EARBUD, WATCH, RING):
                await cluster.start_agent(spec)
            await cluster.wait_for_devices(5)
            async with cluster.client() as client:
                ledger = Ledger()

                async def watch() -> None:
                    # Every app of this client, from before the first is submitted: no result missed.
                    async for result in client.watch_results():
                        ledger.add(result)

                watcher = asyncio.create_task(watch())
                await asyncio.sleep(0.5)
                apps = [
                    await client.submit_app(
                        AppRequest("camera", "convnet5", "display", target_device="watch", max_rate_hz=10)
                    ),
                    await client.submit_app(
                        AppRequest("microphone", "kws20_v3", "haptics", target_device="ring", max_rate_hz=10)
                    ),
                    await client.submit_app(
                        AppRequest("imu", "simplenet", "display", source_device="watch", target_device="glasses",
                                   max_rate_hz=10)
                    ),
                ]  # fmt: skip
                assert all(a.state is AppState.RUNNING for a in apps), [a.reason for a in apps]
                try:
                    plan = await client.get_plan()
                    await balanced(client, ledger, "start")
                    for round_ in range(KILLS):
                        middle = middle_devices(plan)
                        assert "relay" in middle, f"relay must serve middle stages: {middle}"
                        await flowing(ledger, [a.app_id for a in apps])
                        replayed_before = sum(ledger.replayed.values())
                        # Stopped for a moment first, so that frames are surely in flight on it
                        # (sent, not yet acknowledged) when it dies.
                        os.killpg(cluster.agents["relay"].process.pid, signal.SIGSTOP)
                        await asyncio.sleep(KILL_AFTER_STOP_S)
                        await cluster.kill_agent("relay")
                        plan = await replanned_without(client, plan.epoch, "relay")
                        await balanced(client, ledger, f"kill {round_ + 1}")
                        replayed = sum(ledger.replayed.values()) - replayed_before
                        print(
                            f"\nkill {round_ + 1}: epoch {plan.epoch}, delivered "
                            f"{sum(sum(c.values()) for c in ledger.delivered.values())}, dropped "
                            f"{sum(len(d) for d in ledger.dropped.values())}, replayed deliveries "
                            f"{replayed}"
                        )
                        # Frames were in flight through the relay when it died: they came back.
                        assert replayed > 0, "frames in flight at the kill must be replayed on the new path"
                        assert not ledger.dropped, f"frames lost at the kill: {ledger.dropped}"
                        await cluster.start_agent(RELAY)
                        plan = await replanned_with(client, plan.epoch, "relay")
                        await balanced(client, ledger, f"restart {round_ + 1}")
                    # A stall: the relay stops answering for longer than its lease, then resumes.
                    relay = cluster.agents["relay"].process.pid
                    os.killpg(relay, signal.SIGSTOP)
                    try:
                        await asyncio.sleep(STALL_S)
                    finally:
                        os.killpg(relay, signal.SIGCONT)
                    await balanced(client, ledger, "a stall")
                    reasons = Counter(
                        reason.split(";")[-1].strip()[:60] for d in ledger.dropped.values() for reason in d.values()
                    )
                    print(
                        f"\nafter {KILLS} kills and a stall ({'with' if mqtt else 'without'} MQTT): delivered "
                        f"{sum(sum(c.values()) for c in ledger.delivered.values())}, dropped "
                        f"{sum(len(d) for d in ledger.dropped.values())}, replayed deliveries "
                        f"{sum(ledger.replayed.values())}; drop reasons: {dict(reasons)}"
                    )
                    assert sum(ledger.replayed.values()) > 0, "frames in flight at a kill must be replayed"
                finally:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
