"""Every attack of issue 8, replayed against a cluster on mutual TLS with a secured broker.

One cluster for the module: four emulated devices, a mosquitto configured by
`synergy mqtt-config` on the cluster's CA, and a victim app owned by client ``alice``
(camera on the glasses, pinned to deliver on the ring, so its frames cross at least one peer
hop). Each attack is made three ways where it applies: with a certificate from another CA
(the stranger), and with valid certificates of the wrong role or the wrong name. After each,
the victim is checked unharmed: its delivered count keeps rising, its plan and epoch are
unchanged, and (at the end) none of the attacker's frames or results reached alice's stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import grpc
import numpy as np
import pytest
import pytest_asyncio

from coordinator.store import DB_NAME
from synergy.cluster import LocalCluster
from synergy.devices import preset_device
from synergy.errors import PermissionDenied
from synergy.events import MqttConfig
from synergy.reports import Result
from synergy.sdk import AppRequest, SynergyClient
from synergy.security.ca import init_ca, issue
from synergy.security.mqtt import write_mosquitto_config
from synergy.security.tls import TlsConfig
from synergy.types import AppInfo, AppState, DeviceState, JointPlan
from synergy.v1 import agent_pb2, agent_pb2_grpc, apps_pb2, apps_pb2_grpc, common_pb2, registry_pb2, registry_pb2_grpc
from synergy.wire.channels import open_channel
from synergy.wire.convert import device_to_proto
from synergy.wire.frames import GrpcFrameTransport, StreamBroken, StreamTarget
from synergy.wire.reports import result_to_proto
from synergy.wire.tensors import Frame
from tests.integration.conftest import EARBUD, GLASSES, RING, WATCH, Broker, start_mosquitto
from tests.support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.mqtt, pytest.mark.asyncio(loop_scope="module")]

#: Seqs no source of this cluster makes (a source puts its epoch in the high bits, and
#: these sit at the top of the allowed range, 2**53 - 1: epoch 2**21 - 1).
INVENTED_SEQ_BASE = 2**53 - 1000
#: How long a stream that must not deliver is watched after the attack.
SILENCE_S = 1.5


@dataclass
class Victim:
    app_id: str
    plan: JointPlan
    #: Everything alice's WatchResults received while the module ran.
    seen: list[Result]


@dataclass
class Scene:
    cluster: LocalCluster
    broker: Broker
    stranger_ca: Path
    victim: Victim

    def alice(self) -> SynergyClient:
        return SynergyClient(self.cluster.address, tls=self.cluster.tls_config("client", "alice"), timeout_s=10)

    def as_(self, address: str, role: str, name: str) -> grpc.aio.Channel:
        return open_channel(address, self.cluster.tls_config(role, name))

    def stranger_tls(self, role: str, name: str) -> TlsConfig:
        """``role:name`` issued by another CA, trusting ours: only our servers' check can fail."""
        out = self.stranger_ca.parent / f"stranger-{role}-{name}"
        if not (out / "cert.pem").is_file():
            issue(self.stranger_ca, role=role, name=name, out_dir=out)
        ours = (self.cluster.ca_dir / "ca.pem").read_bytes()
        return TlsConfig.from_pem(ours, (out / "cert.pem").read_bytes(), (out / "key.pem").read_bytes())

    def stranger(self, address: str, role: str, name: str) -> grpc.aio.Channel:
        """A channel presenting :meth:`stranger_tls`."""
        return open_channel(address, self.stranger_tls(role, name))

    def agent_address(self, device: str) -> str:
        return self.cluster.agents[device].address


def mosquitto_binary() -> str:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.fail("mosquitto is not installed: run `apt-get install mosquitto` (make test does it as root)")
    return binary


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def scene(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scene]:
    work = tmp_path_factory.mktemp("attacks")
    stranger_ca = work / "stranger-ca"
    init_ca(stranger_ca)
    cluster = LocalCluster((GLASSES, WATCH, RING, EARBUD), log_dir=work / "logs")
    run_as = "root" if os.geteuid() == 0 else None
    broker = start_mosquitto(
        mosquitto_binary(),
        work,
        lambda port, attempt: write_mosquitto_config(
            work / f"broker-{attempt}", ca_dir=cluster.ca_dir, port=port, run_as_user=run_as
        ),
    )
    mqtt = ["--mqtt", f"mqtts://127.0.0.1:{broker.port}"]
    cluster.coordinator_args += mqtt
    cluster.agent_args += mqtt
    try:
        async with cluster:
            await cluster.wait_for_devices(4)
            alice = SynergyClient(cluster.address, tls=cluster.tls_config("client", "alice"), timeout_s=30)
            async with alice:
                app = await alice.submit_app(
                    AppRequest("camera", "simplenet", "haptics", target_device="ring", max_rate_hz=10)
                )
                assert app.state is AppState.RUNNING, app.reason
                plan = await alice.get_plan()
                seen: list[Result] = []

                async def watch() -> None:
                    async for result in alice.watch_results([app.app_id]):
                        seen.append(result)

                watcher = asyncio.create_task(watch())
                try:
                    scene = Scene(cluster, broker, stranger_ca, Victim(app.app_id, plan, seen))
                    await eventually(lambda: seen, timeout_s=60, interval_s=0.2, what="the victim's first result")
                    yield scene
                finally:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
    finally:
        broker.stop()


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def victim_plan_now(scene: Scene) -> None:
    """Each attack is judged against the plan in force when it starts (another test's own
    apps may have been planned since)."""
    async with scene.alice() as alice:
        scene.victim.plan = await alice.get_plan()


async def victim_info(scene: Scene) -> AppInfo:
    async with scene.alice() as alice:
        return next(a for a in await alice.list_apps() if a.app_id == scene.victim.app_id)


@contextlib.asynccontextmanager
async def victim_unharmed(scene: Scene) -> AsyncIterator[None]:
    """Around an attack: afterwards the victim still runs on the same plan and delivers more."""
    before = await victim_info(scene)
    yield

    async def more() -> AppInfo | None:
        info = await victim_info(scene)
        return info if info.stats.frames_delivered > before.stats.frames_delivered + 3 else None

    after: AppInfo | None = await eventually(
        more, timeout_s=30, interval_s=0.2, what="the victim app to keep delivering"
    )
    assert after is not None
    assert after.state is AppState.RUNNING, after.reason
    async with scene.alice() as alice:
        plan = await alice.get_plan()
    assert plan.epoch == scene.victim.plan.epoch
    assert placement(plan, scene.victim.app_id) == placement(scene.victim.plan, scene.victim.app_id)


def placement(plan: JointPlan, app_id: str) -> tuple[object, ...]:
    """Where an app runs (its predictions are refreshed by calibration; its placement must not move)."""
    p = plan.plan_for(app_id)
    assert p is not None
    return (p.source_device, p.stages, p.target_device)


async def refused(call: object, code: grpc.StatusCode, *needles: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == code, (info.value.code(), info.value.details())
    details = info.value.details() or ""
    for needle in needles:
        assert needle in details, details
    return details


async def handshake_fails(call: object) -> None:
    """The TLS handshake fails: the call never reaches a servicer (UNAVAILABLE)."""
    await refused(call, grpc.StatusCode.UNAVAILABLE)


async def denied(call: object, *needles: str) -> str:
    return await refused(call, grpc.StatusCode.PERMISSION_DENIED, *needles)


# -- reading others' results, listing devices -------------------------------------------------


async def test_a_stranger_reads_no_results_and_lists_no_devices(scene: Scene) -> None:
    async with victim_unharmed(scene):
        for role, name in (("client", "alice"), ("admin", "admin")):
            async with scene.stranger(scene.cluster.address, role, name) as channel:
                apps = apps_pb2_grpc.AppsServiceStub(channel)
                await handshake_fails(apps.ListDevices(apps_pb2.ListDevicesRequest(), timeout=5))
                stream = apps.WatchResults(apps_pb2.WatchResultsRequest(), timeout=5)
                await handshake_fails(stream.read())


async def test_another_client_sees_the_app_but_not_its_results(scene: Scene) -> None:
    async with victim_unharmed(scene):
        async with scene.as_(scene.cluster.address, "client", "bob") as channel:
            apps = apps_pb2_grpc.AppsServiceStub(channel)
            stream = apps.WatchResults(apps_pb2.WatchResultsRequest(app_ids=[scene.victim.app_id]), timeout=5)
            await denied(stream.read(), "client:bob may not watch the results of app", "belongs to another client")
            # Watching "everything" is watching bob's own apps: none of alice's results arrive.
            everything = apps.WatchResults(apps_pb2.WatchResultsRequest(), timeout=SILENCE_S * 2)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await everything.read()
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # nothing came
            listed = await apps.ListApps(apps_pb2.ListAppsRequest(), timeout=5)
            (seen,) = [a for a in listed.apps if a.app_id == scene.victim.app_id]
            assert seen.owner == "alice" and seen.stats_hidden
            assert seen.stats == common_pb2.AppStats()
        # Its owner sees the figures; so does an admin.
        assert (await victim_info(scene)).stats.frames_delivered > 0
        async with scene.as_(scene.cluster.address, "admin", "admin") as channel:
            listed = await apps_pb2_grpc.AppsServiceStub(channel).ListApps(apps_pb2.ListAppsRequest(), timeout=5)
            (seen,) = [a for a in listed.apps if a.app_id == scene.victim.app_id]
            assert not seen.stats_hidden and seen.stats.frames_delivered > 0


# -- fake devices, injected results -----------------------------------------------------------


def register_request(device_id: str, address: str = "127.0.0.1:1") -> registry_pb2.RegisterRequest:
    device = device_to_proto(preset_device("ring", device_id))
    device.address = address
    return registry_pb2.RegisterRequest(device=device)


async def device_states(scene: Scene) -> dict[str, DeviceState]:
    async with scene.alice() as alice:
        return {d.spec.device_id: d.state for d in await alice.list_devices()}


async def test_a_fake_device_cannot_register(scene: Scene) -> None:
    before = await device_states(scene)
    async with victim_unharmed(scene):
        async with scene.stranger(scene.cluster.address, "agent", "fake") as channel:
            registry = registry_pb2_grpc.RegistryServiceStub(channel)
            await handshake_fails(registry.Register(register_request("fake"), timeout=5))
        async with scene.as_(scene.cluster.address, "client", "bob") as channel:
            registry = registry_pb2_grpc.RegistryServiceStub(channel)
            await denied(registry.Register(register_request("fake"), timeout=5), "only an agent certificate")
        async with scene.as_(scene.cluster.address, "agent", "earbud") as channel:
            registry = registry_pb2_grpc.RegistryServiceStub(channel)
            await denied(registry.Register(register_request("fake"), timeout=5), "agent:earbud may not register")
            await denied(
                registry.Heartbeat(registry_pb2.HeartbeatRequest(device_id="ring", lease_id="0" * 16), timeout=5),
                "agent:earbud may not heartbeat device ring",
            )
    assert await device_states(scene) == before


def stolen_lease(scene: Scene, device_id: str) -> str:
    """``device_id``'s current lease, as a compromised agent of that device knows it (read from
    the coordinator's state store, where it is persisted)."""
    state_dir = Path(scene.cluster.coordinator_args[scene.cluster.coordinator_args.index("--state-dir") + 1])
    with contextlib.closing(sqlite3.connect(state_dir / DB_NAME)) as db:
        row = db.execute("SELECT lease_id FROM devices WHERE device_id = ?", (device_id,)).fetchone()
    assert row is not None
    return str(row[0])


def forged(app_id: str, epoch: int, device: str, *, dropped: bool = False) -> common_pb2.Result:
    now = time.time()
    return result_to_proto(
        Result(
            app_id=app_id,
            epoch=epoch,
            seq=INVENTED_SEQ_BASE,
            capture_time_unix=now,
            done_time_unix=now,
            device_id=device,
            output_type="haptics",
            dropped=dropped,
            drop_reason="forged" if dropped else "",
            summary="class 666",
        )
    )


async def test_a_device_that_is_not_the_target_cannot_inject_a_result(scene: Scene) -> None:
    victim = scene.victim
    pipeline = victim.plan.plan_for(victim.app_id)
    assert pipeline is not None and "earbud" not in pipeline.devices
    lease = stolen_lease(scene, "earbud")
    async with victim_unharmed(scene):
        async with scene.as_(scene.cluster.address, "agent", "earbud") as channel:
            registry = registry_pb2_grpc.RegistryServiceStub(channel)
            for result, needle in (
                (forged(victim.app_id, victim.plan.epoch, "earbud"), "only the app's target in that epoch's plan"),
                (forged(victim.app_id, victim.plan.epoch, "ring"), "the result names device ring"),
                (forged(victim.app_id, victim.plan.epoch, "earbud", dropped=True), "report its drops"),
            ):
                request = registry_pb2.ReportResultRequest(lease_id=lease, result=result)
                await denied(registry.ReportResult(request, timeout=5), "agent:earbud", needle)
        async with scene.as_(scene.cluster.address, "agent", "ring") as channel:
            # ring's certificate with earbud's lease: the lease's device is earbud, not ring.
            request = registry_pb2.ReportResultRequest(
                lease_id=lease, result=forged(victim.app_id, victim.plan.epoch, "ring")
            )
            await denied(
                registry_pb2_grpc.RegistryServiceStub(channel).ReportResult(request, timeout=5),
                "agent:ring may not report a result under device earbud's lease",
            )
        async with scene.stranger(scene.cluster.address, "agent", "ring") as channel:
            request = registry_pb2.ReportResultRequest(
                lease_id=lease, result=forged(victim.app_id, victim.plan.epoch, "ring")
            )
            await handshake_fails(registry_pb2_grpc.RegistryServiceStub(channel).ReportResult(request, timeout=5))


async def test_a_batch_of_forged_results_is_refused_result_by_result(scene: Scene) -> None:
    """ReportResults applies ReportResult's rules to every result: each forged one is refused in
    its own outcome (the call itself succeeds), another device's lease refuses the whole call."""
    victim = scene.victim
    lease = stolen_lease(scene, "earbud")
    batch = [
        forged(victim.app_id, victim.plan.epoch, "earbud"),
        forged(victim.app_id, victim.plan.epoch, "ring"),
        forged(victim.app_id, victim.plan.epoch, "earbud", dropped=True),
    ]
    async with victim_unharmed(scene):
        async with scene.as_(scene.cluster.address, "agent", "earbud") as channel:
            registry = registry_pb2_grpc.RegistryServiceStub(channel)
            request = registry_pb2.ReportResultsRequest(lease_id=lease, results=batch)
            answer = await registry.ReportResults(request, timeout=5)
            assert [(o.accepted, o.code) for o in answer.outcomes] == [(False, "PERMISSION_DENIED")] * 3
            reasons = [o.reason for o in answer.outcomes]
            assert "only the app's target in that epoch's plan" in reasons[0]
            assert "the result names device ring" in reasons[1]
            assert "report its drops" in reasons[2]
        async with scene.as_(scene.cluster.address, "agent", "ring") as channel:
            request = registry_pb2.ReportResultsRequest(lease_id=lease, results=batch[1:2])
            await denied(
                registry_pb2_grpc.RegistryServiceStub(channel).ReportResults(request, timeout=5),
                "agent:ring may not report results under device earbud's lease",
            )


# -- taking a live device id ------------------------------------------------------------------


async def test_a_live_device_id_cannot_be_taken_from_another_connection(scene: Scene) -> None:
    ring_address = scene.agent_address("ring")
    async with victim_unharmed(scene):
        for attempt in range(5):
            # A copy of ring's own valid certificate, from the ring's own address: still
            # another connection than the one holding the id.
            async with scene.as_(scene.cluster.address, "agent", "ring") as channel:
                registry = registry_pb2_grpc.RegistryServiceStub(channel)
                await denied(
                    registry.Register(register_request("ring", ring_address), timeout=5),
                    "device ring is live, held by another connection",
                )
            assert (await device_states(scene))["ring"] is DeviceState.ONLINE, attempt
    async with scene.as_(ring_address, "coordinator", "coordinator") as channel:
        status = await agent_pb2_grpc.AgentServiceStub(channel).Status(agent_pb2.StatusRequest(), timeout=5)
    assert status.active_epoch == scene.victim.plan.epoch  # the real agent kept its deployment


# -- controlling an agent directly ------------------------------------------------------------


async def test_nobody_but_the_coordinator_controls_an_agent(scene: Scene) -> None:
    epoch = scene.victim.plan.epoch
    pipeline = scene.victim.plan.plan_for(scene.victim.app_id)
    assert pipeline is not None
    microphone = agent_pb2.Assignment(
        app_id="spy", segment=0, sensor_type="microphone", rate_hz=8, output_type="speaker", model="spy"
    )
    async with victim_unharmed(scene):
        for device in pipeline.devices:
            address = scene.agent_address(device)
            for role, name in (("client", "bob"), ("agent", "earbud"), ("admin", "admin")):
                async with scene.as_(address, role, name) as channel:
                    agent = agent_pb2_grpc.AgentServiceStub(channel)
                    await denied(agent.Undeploy(agent_pb2.UndeployRequest(epoch=epoch), timeout=5), f"{role}:{name}")
                    await denied(agent.Deploy(agent_pb2.DeployRequest(epoch=epoch + 100), timeout=5))
                    await denied(agent.Activate(agent_pb2.ActivateRequest(epoch=epoch + 100), timeout=5))
            async with scene.stranger(address, "coordinator", "coordinator") as channel:
                agent = agent_pb2_grpc.AgentServiceStub(channel)
                await handshake_fails(agent.Undeploy(agent_pb2.UndeployRequest(epoch=epoch), timeout=5))
        # The earbud's microphone, deployed and activated by anyone but the coordinator: refused.
        async with scene.as_(scene.agent_address("earbud"), "client", "bob") as channel:
            agent = agent_pb2_grpc.AgentServiceStub(channel)
            await denied(
                agent.Deploy(agent_pb2.DeployRequest(epoch=epoch + 200, assignments=[microphone]), timeout=5)
            )
            await denied(agent.Activate(agent_pb2.ActivateRequest(epoch=epoch + 200), timeout=5))


# -- frames injected into a peer stream -------------------------------------------------------


def invented_frames(app_id: str, epoch: int, segment: int, count: int = 100) -> list[Frame]:
    now = time.time()
    return [
        Frame(
            app_id,
            epoch,
            segment,
            INVENTED_SEQ_BASE + i,
            now,
            {"input": np.full((1, 3, 32, 32), 66, dtype=np.int8)},
            "earbud",
        )
        for i in range(count)
    ]


async def send_frames(address: str, tls: TlsConfig, target: StreamTarget, frames: list[Frame]) -> str:
    """Send ``frames`` on a stream into ``target``; the error that ended it (it must end)."""
    transport = GrpcFrameTransport(address, tls=tls)
    try:
        call = transport.open(target)
        with pytest.raises(StreamBroken) as info:
            for frame in frames:
                await call.write(frame)
            await call.done_writing()
            async for _ack in call.acks():
                pass
            raise AssertionError("the stream ended normally")  # not StreamBroken: fails the raises
        return str(info.value)
    finally:
        await transport.close()


async def test_injected_frames_are_refused_and_none_is_delivered(scene: Scene) -> None:
    victim = scene.victim
    pipeline = victim.plan.plan_for(victim.app_id)
    assert pipeline is not None
    target_address = scene.agent_address("ring")
    async with scene.as_(target_address, "coordinator", "coordinator") as channel:
        status = await agent_pb2_grpc.AgentServiceStub(channel).Status(agent_pb2.StatusRequest(), timeout=5)
    (held,) = [s for s in status.state.segments if s.app_id == victim.app_id and s.epoch == victim.plan.epoch]
    assert held.segment > 0, "the victim must cross a peer hop into the ring"
    target = StreamTarget(victim.app_id, victim.plan.epoch, held.segment)
    upstream = list(pipeline.devices)[list(pipeline.devices).index("ring") - 1]
    before = await victim_info(scene)
    async with victim_unharmed(scene):
        # Valid certificates of the wrong name (an agent not upstream) and the wrong role.
        for role, name in (("agent", "earbud"), ("client", "bob"), ("admin", "admin"), ("coordinator", "coordinator")):
            error = await send_frames(
                target_address, scene.cluster.tls_config(role, name), target, invented_frames(*target_key(target))
            )
            assert "PERMISSION_DENIED" in error and f"only device {upstream}" in error, error
        # The stranger's certificate: no handshake.
        stranger_tls = scene.stranger_tls("agent", upstream)
        error = await send_frames(target_address, stranger_tls, target, invented_frames(*target_key(target)))
        assert "UNAVAILABLE" in error, error
        # The true upstream's certificate, a stream it may open, a frame claiming another
        # target: the stream ends there. (One frame: had more been written after the refusal,
        # the failed write would hide the status behind INTERNAL, grpc/grpc#36066.)
        wrong = invented_frames("app-other", victim.plan.epoch, held.segment, count=1)
        error = await send_frames(target_address, scene.cluster.tls_config("agent", upstream), target, wrong)
        assert "PERMISSION_DENIED" in error and "the stream was allowed into app" in error, error
        # A stream into what the ring does not hold, even from the upstream.
        elsewhere = StreamTarget(victim.app_id, victim.plan.epoch + 50, held.segment)
        upstream_tls = scene.cluster.tls_config("agent", upstream)
        error = await send_frames(target_address, upstream_tls, elsewhere, invented_frames(*target_key(elsewhere)))
        assert "holds no such app, epoch and segment" in error, error
    await asyncio.sleep(SILENCE_S)
    assert not [r for r in victim.seen if r.seq >= INVENTED_SEQ_BASE], "an attacker's frame was delivered"
    after = await victim_info(scene)
    # Refused streams are nobody's drop: the victim's drops did not rise by the 100s sent.
    assert after.stats.frames_dropped - before.stats.frames_dropped < 5


def target_key(target: StreamTarget) -> tuple[str, int, int]:
    return (target.app_id, target.epoch, target.segment)


# -- removing, watching, feeding another client's app -----------------------------------------


async def test_another_client_cannot_remove_watch_or_feed_the_app(scene: Scene) -> None:
    app_id = scene.victim.app_id
    async with victim_unharmed(scene):
        async with scene.as_(scene.cluster.address, "client", "bob") as channel:
            apps = apps_pb2_grpc.AppsServiceStub(channel)
            await denied(apps.RemoveApp(apps_pb2.RemoveAppRequest(app_id=app_id), timeout=5), "belongs to another")
            await denied(apps.Infer(apps_pb2.InferRequest(app_id=app_id), timeout=5), "client:bob may not call Infer")
        async with SynergyClient(
            scene.cluster.address, tls=scene.cluster.tls_config("client", "bob"), timeout_s=5
        ) as bob:
            with pytest.raises(PermissionDenied, match="only its owner or an admin"):
                await bob.remove_app(app_id)
        async with scene.stranger(scene.cluster.address, "admin", "admin") as channel:
            apps = apps_pb2_grpc.AppsServiceStub(channel)
            await handshake_fails(apps.RemoveApp(apps_pb2.RemoveAppRequest(app_id=app_id), timeout=5))
        async with scene.as_(scene.cluster.address, "agent", "ring") as channel:
            apps = apps_pb2_grpc.AppsServiceStub(channel)
            await denied(apps.RemoveApp(apps_pb2.RemoveAppRequest(app_id=app_id), timeout=5), "agent:ring")


# -- MQTT: spoofing a device's offline state --------------------------------------------------


def mqtt_client(scene: Scene, tls_dir: Path | None, *, identifier: str, tls: bool = True) -> aiomqtt.Client:
    port = scene.broker.port
    context: ssl.SSLContext | None = None
    if tls_dir is not None:
        context = MqttConfig.from_url(f"mqtts://127.0.0.1:{port}", tls_dir=tls_dir).ssl_context()
    elif tls:
        context = ssl.create_default_context(cafile=str(scene.cluster.ca_dir / "ca.pem"))
    return aiomqtt.Client("127.0.0.1", port, identifier=identifier, tls_context=context, timeout=3)


async def test_a_spoofed_offline_state_takes_no_device_offline(scene: Scene) -> None:
    offline = json.dumps({"device_id": "ring", "state": "offline", "address": scene.agent_address("ring")})
    topic = "synergy/devices/ring/state"
    async with victim_unharmed(scene):
        # Anonymous (plain text, and TLS without a certificate): the broker refuses the connection.
        for tls in (False, True):
            with pytest.raises(aiomqtt.MqttError):
                async with mqtt_client(scene, None, identifier=f"anon-{tls}", tls=tls) as anon:
                    await anon.publish(topic, offline, qos=1)
        # Another device's valid certificate: connected, but the ACL drops the message.
        async with mqtt_client(scene, scene.cluster.tls_dir("agent", "earbud"), identifier="earbud-spoof") as earbud:
            for _ in range(5):
                await earbud.publish(topic, offline, qos=1)
        await asyncio.sleep(SILENCE_S)
        assert (await device_states(scene))["ring"] is DeviceState.ONLINE


async def test_an_admin_may_act_on_any_app_and_an_owner_on_its_own(scene: Scene) -> None:
    async with SynergyClient(
        scene.cluster.address, tls=scene.cluster.tls_config("client", "bob"), timeout_s=30
    ) as bob:
        mine = await bob.submit_app(AppRequest("imu", "simplenet", "display", target_device="watch", max_rate_hz=2))
        assert mine.owner == "bob"
        await bob.remove_app(mine.app_id)  # its owner may
        theirs = await bob.submit_app(AppRequest("imu", "simplenet", "display", target_device="watch", max_rate_hz=2))
    async with scene.as_(scene.cluster.address, "admin", "admin") as channel:
        await apps_pb2_grpc.AppsServiceStub(channel).RemoveApp(
            apps_pb2.RemoveAppRequest(app_id=theirs.app_id), timeout=30
        )
    async with scene.alice() as alice:
        assert theirs.app_id not in {a.app_id for a in await alice.list_apps()}


# -- the audit trail --------------------------------------------------------------------------


async def test_every_refusal_is_logged_with_who_what_and_why(scene: Scene) -> None:
    assert scene.cluster.coordinator is not None
    refusals = [
        json.loads(line)
        for line in scene.cluster.coordinator.log_path.read_text().splitlines()
        if '"security_refusal"' in line
    ]
    assert refusals, "the coordinator logged no refusal"
    assert all({"peer", "rpc", "reason", "code"} <= set(r) for r in refusals), refusals[0]
    ring_log = scene.cluster.agents["ring"].log_path.read_text()
    assert '"security_refusal"' in ring_log and "AgentService/Frames" in ring_log


async def test_the_victim_never_saw_an_attackers_result(scene: Scene) -> None:
    assert scene.victim.seen
    assert not [r for r in scene.victim.seen if r.summary == "class 666" or r.seq >= INVENTED_SEQ_BASE]
    assert {r.device_id for r in scene.victim.seen} == {"ring"}


