"""One process per address: a second coordinator, or an agent, on a taken address exits 2 and
names the address (gRPC's default SO_REUSEPORT would let it share the port: a split brain)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from synergy.security.ca import init_ca, issue

pytestmark = pytest.mark.integration

#: Seconds a daemon may take to start (onnxruntime's import dominates) or to give up.
START_TIMEOUT_S = 60.0


class Daemon:
    """``synergy ...`` as a child process in its own process group, its stderr in a file."""

    def __init__(self, args: Sequence[str], log_path: Path, state_dir: Path) -> None:
        self.args = list(args)
        self.log_path = log_path
        # A state directory of its own, so that a daemon refused for its address is not
        # refused earlier for a state directory held by the first one.
        self.env = {**os.environ, "SYNERGY_STATE_DIR": str(state_dir), "SYNERGY_LOG_FORMAT": "json"}
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "synergy.cli.main",
                *self.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=self.env,
                start_new_session=True,
            )

    async def listening_address(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), START_TIMEOUT_S)
            if not line:
                raise AssertionError(f"exited before listening: {self.stderr()[-2000:]}")
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("event") == "listening":
                    return str(event["address"])

    async def exit_status(self) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), START_TIMEOUT_S)

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def stop(self) -> None:
        if self.process is None:
            return
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                await self.process.wait()
        if self.process.stdout is not None:
            # Read what is left so that the pipe's transport closes cleanly.
            await self.process.stdout.read()


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "insecure"])
async def test_second_daemons_on_a_taken_address_exit_2_naming_it(tmp_path: Path, tls: bool) -> None:
    daemons: list[Daemon] = []
    if tls:
        init_ca(tmp_path / "ca")

    def security(role: str) -> list[str]:
        """--insecure, or a certificate of the daemon's own identity (the agent is the ring)."""
        if not tls:
            return ["--insecure"]
        name = "ring" if role == "agent" else role
        tls_dir = tmp_path / f"tls-{role}"
        if not tls_dir.exists():
            issue(tmp_path / "ca", role=role, name=name, out_dir=tls_dir)
        return ["--tls-dir", str(tls_dir)]

    def daemon(name: str, *args: str) -> Daemon:
        made = Daemon([*args, *security(args[0])], tmp_path / f"{name}.log", tmp_path / f"state-{name}")
        daemons.append(made)
        return made

    try:
        first = daemon("coordinator", "coordinator", "--bind", "127.0.0.1:0")
        await first.start()
        address = await first.listening_address()

        second = daemon("second-coordinator", "coordinator", "--bind", address)
        agent = daemon(
            "agent", "agent", "--preset", "ring", "--no-chip-timing", "--no-link-shaping",
            "--bind", address, "--coordinator", address,
        )  # fmt: skip
        await asyncio.gather(second.start(), agent.start())
        for refused, role in ((second, "coordinator"), (agent, "agent")):
            status = await refused.exit_status()
            stderr = refused.stderr()
            assert status == 2, f"{role} exited {status}: {stderr[-2000:]}"
            assert f"address {address} is in use: is another {role} running?" in stderr, stderr[-2000:]
        assert first.process is not None and first.process.returncode is None, "the first coordinator must go on"
    finally:
        await asyncio.gather(*(d.stop() for d in daemons))
