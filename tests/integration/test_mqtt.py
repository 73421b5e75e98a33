"""The event plane against a real mosquitto: retained device state, last will, results."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from synergy.cluster import LocalCluster
from synergy.sdk import AppRequest
from tests.integration.conftest import GLASSES, RING, WATCH

pytestmark = [pytest.mark.integration, pytest.mark.mqtt]


async def next_message(messages: Any, topic_filter: str, predicate: Any, timeout_s: float) -> dict[str, Any]:
    async def wait() -> dict[str, Any]:
        async for message in messages:
            if message.topic.matches(topic_filter):
                payload = json.loads(message.payload)
                if predicate(payload):
                    return payload  # type: ignore[no-any-return]
        raise AssertionError("subscription ended")

    return await asyncio.wait_for(wait(), timeout_s)


async def test_device_state_last_will_and_results(mosquitto: int, log_dir: Path) -> None:
    url = f"mqtt://127.0.0.1:{mosquitto}"
    async with LocalCluster(
        (GLASSES, WATCH, RING), log_dir=log_dir, coordinator_args=["--mqtt", url], agent_args=["--mqtt", url]
    ) as cluster:
        await cluster.wait_for_devices(3)
        # An agent publishes its state once its MQTT connection is up, which may be a moment
        # after it registered: first make sure all three have published.
        async with aiomqtt.Client("127.0.0.1", mosquitto, identifier="test-early-subscriber") as early:
            await early.subscribe("synergy/devices/+/state", qos=1)
            published: set[str] = set()

            async def all_published() -> None:
                async for message in early.messages:
                    published.add(json.loads(message.payload)["device_id"])
                    if len(published) == 3:
                        return

            await asyncio.wait_for(all_published(), 20)
        # A subscriber that arrives late still sees every device's retained state.
        async with aiomqtt.Client("127.0.0.1", mosquitto, identifier="test-late-subscriber") as late:
            await late.subscribe("synergy/devices/+/state", qos=1)
            seen: dict[str, dict[str, Any]] = {}

            async def retained() -> None:
                async for message in late.messages:
                    payload = json.loads(message.payload)
                    assert message.retain, "device state must be retained"
                    seen[payload["device_id"]] = payload
                    if len(seen) == 3:
                        return

            await asyncio.wait_for(retained(), 20)
            assert {d["state"] for d in seen.values()} == {"online"}
            assert seen["watch"]["board"] == "max78002"

        async with aiomqtt.Client("127.0.0.1", mosquitto, identifier="test-watcher") as mqtt:
            await mqtt.subscribe("synergy/#", qos=1)
            async with cluster.client() as client:
                app = await client.submit_app(AppRequest("camera", "convnet5", "display", max_rate_hz=10))
                result = await next_message(
                    mqtt.messages, f"synergy/apps/{app.app_id}/results", lambda p: not p["dropped"], 30
                )
                assert result["summary"].startswith("class ")
                # Kill -9: no goodbye, so only the broker's last will can say the ring is gone.
                await cluster.kill_agent("ring")
                will = await next_message(
                    mqtt.messages,
                    "synergy/devices/ring/state",
                    lambda p: p["state"] == "offline",
                    30,
                )
                assert will["reason"] == "last_will"
