"""A real mosquitto configured by `synergy mqtt-config`: TLS only, client certificates, the ACL.

One broker per test, on a throwaway CA: the coordinator's identity, agents ``ring`` and
``watch``, a reader ``alice`` (a client) and an agent ``earbud`` whose certificate is revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from synergy.events import EventPublisher, MqttConfig, Topics
from synergy.security.ca import init_ca, issue, revoke
from synergy.security.mqtt import write_mosquitto_config
from tests.integration.conftest import Broker, start_mosquitto
from tests.support import eventually, eventually_sync

pytestmark = [pytest.mark.integration, pytest.mark.mqtt]

#: How long a message that must not arrive is waited for (after a later one already arrived).
SILENCE_S = 1.5
#: Seconds an MQTT client gets to connect (or to fail to).
CONNECT_TIMEOUT_S = 5.0
#: Seconds a client the broker refuses waits for the CONNACK that never comes.
REFUSED_TIMEOUT_S = 2.0

IDENTITIES = {
    "coordinator": "coordinator",
    "ring": "agent",
    "watch": "agent",
    "earbud": "agent",  # revoked below
    "alice": "client",
}


@dataclass
class SecureBroker:
    process: Broker
    pki: Path  # one directory per identity name, each a --tls-dir

    @property
    def port(self) -> int:
        return self.process.port

    def tls_dir(self, name: str) -> Path:
        return self.pki / name

    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    def client(
        self,
        name: str | None,
        *,
        identifier: str,
        tls: bool = True,
        timeout_s: float = CONNECT_TIMEOUT_S,
        username: str | None = None,
    ) -> aiomqtt.Client:
        """An MQTT client with ``name``'s certificate (None: TLS without one; tls=False: plain text)."""
        context: ssl.SSLContext | None = None
        if name is not None:
            context = MqttConfig.from_url(self.url(), tls_dir=self.tls_dir(name)).ssl_context()
        elif tls:
            context = ssl.create_default_context(cafile=str(self.pki / "ca" / "ca.pem"))
        return aiomqtt.Client("127.0.0.1", self.port, identifier=identifier, tls_context=context, timeout=timeout_s)

    async def refuses(
        self, name: str | None, *, tls: bool = True, reason: str = "", alert: str = ""
    ) -> None:
        """A client (see :meth:`client`) cannot connect, and why: the broker's log says so, or
        (``alert``) the TLS alert the broker sent the client names it.

        On a busy machine the broker sometimes drops the connection before it logs the
        OpenSSL error (seen in CI); the alert the client received says the same thing.
        """
        identifier = f"test-refused-{name}-{tls}"
        alerts = _Collect()
        mqtt_log = logging.getLogger("mqtt")
        mqtt_log.addHandler(alerts)
        try:
            with pytest.raises(aiomqtt.MqttError):
                async with self.client(name, identifier=identifier, tls=tls, timeout_s=REFUSED_TIMEOUT_S) as client:
                    # TLS 1.3: the broker checks our certificate after the client's side of the
                    # handshake is done, so a refusal may only show on the first exchange.
                    await client.publish("synergy/devices/ring/state", "{}", qos=1)
            eventually_sync(
                lambda: ("OpenSSL Error" in self.process.log() and reason in self.process.log())
                or (alert != "" and any(alert in m for m in alerts.messages)),
                timeout_s=15,  # the broker may log late on a busy machine
                what=f"the broker to log a TLS error {reason!r}"
                + (f" or the client to receive the alert {alert!r}" if alert else ""),
            )
        finally:
            mqtt_log.removeHandler(alerts)
        assert f"as {identifier}" not in self.process.log()  # never an MQTT session


class _Collect(logging.Handler):
    """Keeps the messages of a logger (the MQTT client's, which logs the TLS alerts it receives)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def start_secure_mosquitto(binary: str, work_dir: Path, ca_dir: Path) -> Broker:
    """mosquitto with our configuration on a fresh port; another port if the bind fails."""
    # Started as root, mosquitto would switch to the `mosquitto` account before reading its
    # files, which cannot enter pytest's private temporary directories.
    run_as = "root" if os.geteuid() == 0 else None

    def secured(port: int, attempt: int) -> Path:
        return write_mosquitto_config(
            work_dir / f"broker-{attempt}", ca_dir=ca_dir, port=port, reader_names=("alice",), run_as_user=run_as
        )

    return start_mosquitto(binary, work_dir, secured)


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureBroker]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.fail("mosquitto is not installed: run `apt-get install mosquitto` (make test does it as root)")
    pki = tmp_path / "pki"
    ca_dir = pki / "ca"
    init_ca(ca_dir)
    issued = {name: issue(ca_dir, role=role, name=name, out_dir=pki / name) for name, role in IDENTITIES.items()}
    revoke(ca_dir, issued["earbud"].serial)
    broker = start_secure_mosquitto(binary, tmp_path, ca_dir)
    try:
        yield SecureBroker(broker, pki)
    finally:
        broker.stop()


@contextlib.asynccontextmanager
async def subscribed(broker: SecureBroker, name: str, topic: str = "synergy/#") -> AsyncIterator[list[tuple[str, Any]]]:
    """Collect (topic, payload) of every message ``name`` receives on ``topic`` while inside."""
    received: list[tuple[str, Any]] = []
    async with broker.client(name, identifier=f"test-sub-{name}") as client:
        await client.subscribe(topic, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                received.append((str(message.topic), json.loads(message.payload)))

        task = asyncio.create_task(collect())
        try:
            yield received
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def topics(received: list[tuple[str, Any]]) -> list[str]:
    return [topic for topic, _ in received]


async def test_a_client_without_a_certificate_cannot_connect(secure_broker: SecureBroker) -> None:
    await secure_broker.refuses(None, reason="did not return a certificate", alert="CERTIFICATE_REQUIRED")


async def test_a_plain_text_client_cannot_connect(secure_broker: SecureBroker) -> None:
    await secure_broker.refuses(None, tls=False)


async def test_a_revoked_certificate_cannot_connect(secure_broker: SecureBroker) -> None:
    await secure_broker.refuses("earbud", reason="certificate verify failed")
    async with secure_broker.client("ring", identifier="test-ring"):  # the others still can
        pass


async def test_an_agent_publishes_only_its_own_device_topics(secure_broker: SecureBroker) -> None:
    async with (
        subscribed(secure_broker, "coordinator") as coordinator,
        subscribed(secure_broker, "watch") as agent_reader,
        secure_broker.client("ring", identifier="test-ring") as ring,
    ):
        # The forbidden messages first: one client's messages reach a subscriber in order, so
        # had they got through they would arrive before the last one.
        await ring.publish("synergy/devices/watch/state", json.dumps({"device_id": "watch", "state": "offline"}), qos=1)
        await ring.publish("synergy/plan", json.dumps({"epoch": 666}), qos=1, retain=True)
        await ring.publish("synergy/apps/a1/results", json.dumps({"summary": "class 666"}), qos=1)
        await ring.publish("synergy/coordinator/state", json.dumps({"state": "offline"}), qos=1)
        await ring.publish("synergy/devices/ring/state", json.dumps({"device_id": "ring", "state": "online"}), qos=1)
        await eventually(lambda: coordinator, timeout_s=10, what="the coordinator to receive ring's own state")
        await asyncio.sleep(SILENCE_S)
        assert topics(coordinator) == ["synergy/devices/ring/state"]
        assert coordinator[0][1]["device_id"] == "ring"
        assert agent_reader == []  # an agent reads nothing, not even other devices' state
    # The rejected retained plan was not stored either: a late reader sees no plan.
    async with subscribed(secure_broker, "alice", "synergy/plan") as late:
        await asyncio.sleep(SILENCE_S)
        assert late == []


async def test_only_the_coordinator_publishes_plan_and_results(secure_broker: SecureBroker) -> None:
    async with subscribed(secure_broker, "alice") as reader:
        for name in ("ring", "alice", "coordinator"):  # an agent, a client, then the coordinator
            async with secure_broker.client(name, identifier=f"test-{name}") as client:
                await client.publish("synergy/plan", json.dumps({"epoch": 1, "by": name}), qos=1)
                await client.publish("synergy/apps/a1/results", json.dumps({"by": name}), qos=1)
                await client.publish("synergy/devices/ring/state", json.dumps({"device_id": "ring", "by": name}), qos=1)
        await eventually(lambda: len(reader) >= 3, timeout_s=10, what="the coordinator's messages")
        await asyncio.sleep(SILENCE_S)
        by = sorted((topic, payload["by"]) for topic, payload in reader)
        # Only ring writes ring's state; only the coordinator writes the plan and results.
        assert by == [
            ("synergy/apps/a1/results", "coordinator"),
            ("synergy/devices/ring/state", "ring"),
            ("synergy/plan", "coordinator"),
        ]


async def test_the_certificate_not_the_mqtt_username_decides(secure_broker: SecureBroker) -> None:
    async with subscribed(secure_broker, "alice") as reader:
        async with secure_broker.client("ring", identifier="test-ring", username="coordinator") as ring:
            await ring.publish("synergy/plan", json.dumps({"epoch": 666}), qos=1)
            await ring.publish("synergy/devices/ring/state", json.dumps({"device_id": "ring"}), qos=1)
        await eventually(lambda: reader, timeout_s=10, what="ring's own state")
        await asyncio.sleep(SILENCE_S)
        assert topics(reader) == ["synergy/devices/ring/state"]
    assert "u'ring'" in secure_broker.process.log() and "u'coordinator'" not in secure_broker.process.log()


async def test_event_publisher_over_tls(secure_broker: SecureBroker) -> None:
    """The coordinator's publisher connects with its certificate, publishes, and hears device
    states, ignoring one whose payload names another device than its topic does."""
    heard: list[tuple[str, dict[str, Any]]] = []

    async def on_state(device_id: str, payload: dict[str, Any]) -> None:
        heard.append((device_id, payload))

    config = MqttConfig.from_url(secure_broker.url(), tls_dir=secure_broker.tls_dir("coordinator"))
    assert config.tls_dir is not None and config.port == secure_broker.port
    publisher = EventPublisher(
        config,
        client_id="test-coordinator",
        will_topic=Topics(config.prefix).coordinator_state(),
        will_payload={"state": "offline", "reason": "last_will"},
        on_device_state=on_state,
    )
    async with subscribed(secure_broker, "alice") as reader:
        task = asyncio.create_task(publisher.run())
        try:
            await asyncio.wait_for(publisher.connected.wait(), 10)
            publisher.publish(publisher.topics.plan(), {"epoch": 7}, retain=True)
            publisher.publish(publisher.topics.coordinator_state(), {"state": "online"}, retain=True)
            await eventually(lambda: len(reader) >= 2, timeout_s=10, what="the publisher's events")
            assert sorted(topics(reader)) == ["synergy/coordinator/state", "synergy/plan"]
            async with secure_broker.client("ring", identifier="test-ring") as ring:
                # ring's own topic, but the payload claims to be the watch: ignored.
                spoof = {"device_id": "watch", "state": "offline", "address": "127.0.0.1:1"}
                await ring.publish("synergy/devices/ring/state", json.dumps(spoof), qos=1)
                real = {"device_id": "ring", "state": "offline", "address": "127.0.0.1:2"}
                await ring.publish("synergy/devices/ring/state", json.dumps(real), qos=1)
            await eventually(lambda: heard, timeout_s=10, what="the coordinator to hear ring's state")
            await asyncio.sleep(SILENCE_S)
            assert heard == [("ring", real)]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
