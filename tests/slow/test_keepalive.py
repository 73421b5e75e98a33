"""Keepalive that matches: idle streams live on.

A real coordinator and two agents; a client-fed app split over both agents (so a peer frame
stream carries it), and an SDK ``watch_results`` stream. After ``SYNERGY_KEEPALIVE_IDLE_S``
seconds without any traffic (default 75: longer than the 60 s after which the old settings —
clients pinging every 10 s, servers answering "too_many_pings" — killed such streams), the
watcher still gets the next result and Infer still answers. CI runs it with 300 s.
Run with ``make test-slow``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from synergy.cluster import LocalCluster
from synergy.sdk import AppRequest
from tests.integration.conftest import GLASSES, WATCH, model_input

pytestmark = pytest.mark.slow

#: Seconds without traffic before the streams are used again.
IDLE_S = float(os.environ.get("SYNERGY_KEEPALIVE_IDLE_S", "75"))
MODEL = "convnet5"


@pytest.mark.timeout(IDLE_S + 240)
async def test_idle_watch_and_idle_split_app_live_on(tmp_path: Path) -> None:
    async with LocalCluster(
        (GLASSES, WATCH), log_dir=tmp_path / "logs", coordinator_args=["--planner", "spread"]
    ) as cluster:
        await cluster.wait_for_devices(2)
        async with cluster.client() as client, cluster.client() as watcher:
            app = await client.submit_app(AppRequest("client", MODEL, "display"))
            plan = (await client.get_plan()).plan_for(app.app_id)
            assert plan is not None and len({s.device_id for s in plan.stages}) == 2, f"not split: {plan}"

            results = watcher.watch_results([app.app_id])
            spec, array = model_input(MODEL, seed=1)

            async def infer(label: str) -> int:
                answer = await client.infer(app.app_id, {spec: array}, timeout_s=30)
                assert not answer.dropped, f"{label}: infer dropped: {answer.drop_reason}"
                return int(answer.seq)

            async def watched(seq: int) -> None:
                async for result in results:
                    if result.seq == seq:
                        return

            try:
                # The watch is open once it delivers a first result (it starts with the first read).
                first = asyncio.ensure_future(anext(results))
                for _ in range(30):
                    await infer("warming up")
                    if (await asyncio.wait({first}, timeout=1.0))[0]:
                        break
                assert first.done(), "the watcher got no result while warming up"
                first.result()

                await asyncio.sleep(IDLE_S)  # nothing moves: no frames, no results, no calls
                for label in (f"after {IDLE_S:g} s idle", "once more"):
                    seq = await infer(label)
                    await asyncio.wait_for(watched(seq), 30)
            finally:
                close = getattr(results, "aclose", None)  # an async generator: end its call
                if close is not None:
                    await close()
