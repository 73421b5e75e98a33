"""Test helpers shared by the suites: wait for a condition instead of sleeping.

    plan = await eventually(replanned, timeout_s=30, what="a re-plan without the victim")

polls ``replanned`` (a function returning a value or an awaitable) every ``interval_s``
until it returns something truthy, and returns that value. An exception raised by the
check counts as "not yet" (e.g. a daemon still restarting); on timeout the AssertionError
names ``what`` and shows the last value or exception, chained to the latter.

:func:`run_process` runs a command to its end without blocking the event loop (its stdout
and stderr as text), as a user would run it: stdin closed, never a shell.

:func:`sigint_as_in_a_terminal` is a ``preexec_fn`` for a child a test stops with Ctrl-C (SIGINT):
a suite started in the background by a non-interactive shell ignores SIGINT, children inherit
that, and Python keeps an inherited "ignore" (as ``nohup`` wants), so the child would never
see the Ctrl-C the test sends.

:func:`netns_leftovers` lists the network namespaces and interfaces of ``synergy emulate``
(names starting with :data:`synergy.netns.NAME_ROOT`), for tests that check nothing is left.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar, cast

from synergy.netns import NAME_ROOT

__all__ = ["eventually", "eventually_sync", "netns_leftovers", "run_process", "sigint_as_in_a_terminal"]

T = TypeVar("T")


def _timed_out(what: str, timeout_s: float, last_value: object, last_error: BaseException | None) -> AssertionError:
    if last_error is not None:
        last = f"last attempt raised {type(last_error).__name__}: {last_error}"
    else:
        last = f"last value: {last_value!r}"
    return AssertionError(f"{what}: not reached within {timeout_s:g} s ({last})")


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    *,
    timeout_s: float,
    interval_s: float = 0.05,
    what: str = "condition",
) -> T:
    """The first truthy result of ``check()`` (awaited if it is awaitable); see the module doc."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last_value: object = None
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            value = cast(T, await result if inspect.isawaitable(result) else result)
        except Exception as exc:  # any failure means "not yet"; shown if time runs out
            last_error = exc
        else:
            if value:
                return value
            last_value, last_error = value, None
        if loop.time() >= deadline:
            raise _timed_out(what, timeout_s, last_value, last_error) from last_error
        await asyncio.sleep(interval_s)


def eventually_sync(
    check: Callable[[], T],
    *,
    timeout_s: float,
    interval_s: float = 0.05,
    what: str = "condition",
) -> T:
    """:func:`eventually` for synchronous code (fixtures outside an event loop)."""
    deadline = time.monotonic() + timeout_s
    last_value: object = None
    last_error: Exception | None = None
    while True:
        try:
            value = check()
        except Exception as exc:  # any failure means "not yet"; shown if time runs out
            last_error = exc
        else:
            if value:
                return value
            last_value, last_error = value, None
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout_s, last_value, last_error) from last_error
        time.sleep(interval_s)


def netns_leftovers() -> list[str]:
    """Lines of ``ip netns list`` and ``ip -o link show`` naming a namespace or link of ours.

    Compare a list taken before a run with one taken after: other runs (another test's, a
    user's) may hold names of theirs meanwhile, so "empty" would be the wrong check.
    """
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=30).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True, timeout=30).stdout
    return [line for line in (names + links).splitlines() if f" {NAME_ROOT}" in f" {line}"]


async def run_process(
    *argv: str | Path, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout_s: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """``argv`` run to its end in a worker thread: exit status, stdout and stderr as text."""
    return await asyncio.to_thread(
        subprocess.run,
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
    )


def sigint_as_in_a_terminal() -> None:
    """In the child, before exec: SIGINT back to its default, as in a terminal's foreground job."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
