"""The README's SDK snippets run as written, against a real cluster.

Every ```python block of README.md's "Python SDK" section is run in a process of its own, in a
directory holding ``tls/alice`` (a client certificate of the cluster's CA, as "Certificates"
issues one), with the address it names replaced by the cluster's. Also: the MQTT plan payload
is snake_case, as every other topic's (docs/events.md).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
import pytest_asyncio

from synergy.cluster import LocalCluster
from synergy.defaults import DEFAULT_COORDINATOR
from synergy.sdk import AppRequest
from tests.integration.conftest import GLASSES
from tests.support import run_process

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

README = Path(__file__).resolve().parents[2] / "README.md"
EVENTS_DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def sdk_snippets() -> list[str]:
    text = README.read_text()
    section = text.split("\n## Python SDK\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


SNIPPETS = sdk_snippets()


async def test_the_sdk_section_has_both_snippets() -> None:
    assert len(SNIPPETS) == 2
    assert "Client(" in SNIPPETS[0] and "async with SynergyClient(" in SNIPPETS[1]
    assert all(DEFAULT_COORDINATOR in s for s in SNIPPETS)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    log_dir = tmp_path_factory.mktemp("readme") / "logs"
    async with LocalCluster((GLASSES,), log_dir=log_dir, tls=True) as running:
        await running.wait_for_devices(1)
        yield running


@pytest.mark.parametrize("index", range(len(SNIPPETS)), ids=["sync", "async"][: len(SNIPPETS)])
async def test_readme_snippet_runs(cluster: LocalCluster, tmp_path: Path, index: int) -> None:
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "alice").symlink_to(cluster.tls_dir("client", "alice"))
    script = tmp_path / "snippet.py"
    script.write_text(SNIPPETS[index].replace(DEFAULT_COORDINATOR, cluster.address))
    done = await run_process(sys.executable, script, cwd=tmp_path, timeout_s=120)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [line for line in done.stdout.splitlines() if re.match(r"^\d+ ", line)]
    assert len(results) == 5, done.stdout
    async with cluster.client() as client:
        assert await client.list_apps() == [], "the snippet removes its app"


@pytest.mark.mqtt
async def test_the_mqtt_plan_payload_is_snake_case(mosquitto: int, log_dir: Path) -> None:
    url = f"mqtt://127.0.0.1:{mosquitto}"
    async with LocalCluster((GLASSES,), log_dir=log_dir, coordinator_args=["--mqtt", url], tls=False) as cluster:
        await cluster.wait_for_devices(1)
        async with aiomqtt.Client("127.0.0.1", mosquitto, identifier="test-plan-reader") as mqtt:
            await mqtt.subscribe("synergy/plan", qos=1)
            async with cluster.client() as client:
                await client.submit_app(AppRequest("camera", "convnet5", "display", max_rate_hz=5))

            async def placed() -> dict[str, object]:
                async for message in mqtt.messages:
                    payload = json.loads(message.payload)
                    if payload.get("plans"):
                        return payload  # type: ignore[no-any-return]
                raise AssertionError("subscription ended")

            payload = await asyncio.wait_for(placed(), 30)

    def keys(value: object) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        if isinstance(value, list):
            return {k for v in value for k in keys(v)}
        return set()

    named = keys({k: v for k, v in payload.items() if k not in ("unplaced", "quarantined")})
    assert all(re.fullmatch(r"[a-z0-9_]+", k) for k in named), sorted(named)
    documented = EVENTS_DOC.read_text()
    assert all(f"`{k}`" in documented for k in payload), "docs/events.md lists every key of the plan payload"
