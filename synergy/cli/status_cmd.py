"""``synergy status`` (one snapshot) and ``synergy top`` (redrawn every --interval seconds).

Both show the devices (state, board, accelerator utilisation, link), the apps (state or why
they wait, rate, latency, frames delivered and dropped, bottleneck) and the plan (epoch,
predicted throughput, system bottleneck): :mod:`synergy.status_view` renders, this module
fetches, draws and handles the keyboard.

``top`` on a terminal takes the alternate screen and redraws in place (cursor home, clear to
the end of the screen); q or Ctrl-C quits with status 0 and the terminal as it was. When stdout
is not a terminal it prints one snapshot per interval, separated by a blank line (a log of
snapshots, e.g. ``synergy top > status.log``), until Ctrl-C or SIGTERM. A coordinator that
cannot be reached is shown in the frame and asked again at the next interval.

Utilisation is the accelerator's busy share between two heartbeats of a device, so it needs
two snapshots: ``status`` shows ``-`` (JSON null), ``top`` shows it from its second frame.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from typing import TextIO

from synergy.cli.client_cmds import _client_parser
from synergy.errors import InvalidArgument, Unavailable
from synergy.sdk import SynergyClient
from synergy.security.tls import tls_from_args
from synergy.status_view import StatusSnapshot, render_status, snapshot, status_json
from synergy.terminal import Screen, fit

__all__ = ["DEFAULT_INTERVAL_S", "QUIT_KEYS", "register"]

DEFAULT_INTERVAL_S = 1.0
#: Keys that end ``top`` (besides Ctrl-C).
QUIT_KEYS = b"qQ"
#: Seconds one question to the coordinator may take: a frame late by more is worse than an error.
CALL_TIMEOUT_S = 10.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _client_parser(
        sub, "status", "devices, apps and the plan at a glance: state, utilisation, rates, bottlenecks"
    ).set_defaults(func=_status)
    top = _client_parser(
        sub,
        "top",
        "devices, apps and the plan redrawn in place every --interval seconds; q or Ctrl-C quits "
        "(not on a terminal: one snapshot per interval, separated by a blank line; --json: one object per line)",
    )
    top.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_S,
        metavar="S",
        help=f"seconds between frames (default {DEFAULT_INTERVAL_S:g})",
    )
    top.set_defaults(func=_top)


async def _fetch(client: SynergyClient, previous: StatusSnapshot | None) -> StatusSnapshot:
    devices, apps, plan = await asyncio.gather(client.list_devices(), client.list_apps(), client.get_plan())
    return snapshot(devices, apps, plan, previous=previous, coordinator=client.address)


def _title(command: str, address: str, extra: str = "") -> str:
    return f"synergy {command}  {address}  {time.strftime('%H:%M:%S')}" + (f"  ({extra})" if extra else "")


def _status(args: argparse.Namespace) -> int:
    tls = tls_from_args(args)  # read before any event loop, like every client command

    async def main() -> StatusSnapshot:
        async with SynergyClient(args.coordinator, tls=tls, timeout_s=CALL_TIMEOUT_S) as client:
            return await _fetch(client, None)

    snap = asyncio.run(main())
    if args.json:
        print(json.dumps(status_json(snap), indent=2))
    else:
        screen = Screen(sys.stdout, tty=False)  # printed once: never redrawn, even on a terminal
        screen.draw(render_status(snap, screen.size()[0], title=_title("status", args.coordinator)))
    return 0


def _top(args: argparse.Namespace) -> int:
    if not args.interval > 0:
        raise InvalidArgument(f"--interval must be a positive number of seconds, not {args.interval:g}")
    tls = tls_from_args(args)

    async def main(keyboard: int | None) -> int:
        async with SynergyClient(args.coordinator, tls=tls, timeout_s=CALL_TIMEOUT_S) as client:
            if args.json:
                await _top_loop(args, client, keyboard, _json_line)
                return 0
            with Screen(sys.stdout, alternate=True) as screen:
                await _top_loop(args, client, keyboard, lambda frame: _draw(screen, args, frame))
            return 0

    with _keys(sys.stdin) as keyboard:
        return asyncio.run(main(keyboard))


#: One frame: a snapshot, or why there is none this time.
Frame = StatusSnapshot | str


async def _top_loop(
    args: argparse.Namespace, client: SynergyClient, keyboard: int | None, show: Callable[[Frame], None]
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    redraw = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # A resized terminal gets a frame of its new size at once.
    loop.add_signal_handler(signal.SIGWINCH, redraw.set)
    if keyboard is not None:
        loop.add_reader(keyboard, _on_key, keyboard, stop)
    previous: StatusSnapshot | None = None
    try:
        while not stop.is_set():
            frame: Frame
            try:
                frame = previous = await _fetch(client, previous)
            except Unavailable as exc:  # e.g. a restarting coordinator: say so, ask again
                frame = f"coordinator unreachable: {exc}"
            show(frame)
            redraw.clear()
            await _sleep_until(args.interval, stop, redraw)
    finally:
        if keyboard is not None:
            loop.remove_reader(keyboard)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGWINCH):
            loop.remove_signal_handler(sig)


def _draw(screen: Screen, args: argparse.Namespace, frame: Frame) -> None:
    width, height = screen.size()
    hint = f"every {args.interval:g}s; q quits" if screen.tty else ""
    title = _title("top", args.coordinator, hint)
    if isinstance(frame, StatusSnapshot):
        screen.draw(render_status(frame, width, height, title=title))
    else:
        screen.draw(fit([title, frame], width, height))


def _json_line(frame: Frame) -> None:
    # JSON Lines: one object per interval, for scripts that follow the space.
    body = status_json(frame) if isinstance(frame, StatusSnapshot) else {"error": frame}
    print(json.dumps(body), flush=True)


async def _sleep_until(seconds: float, *events: asyncio.Event) -> None:
    """Sleep ``seconds``, or less when one of ``events`` is set."""
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


def _on_key(fd: int, stop: asyncio.Event) -> None:
    try:
        data = os.read(fd, 64)
    except OSError:
        data = b""
    # End of input (a closed terminal) quits too: nobody is left to press q.
    if not data or any(key in QUIT_KEYS for key in data):
        stop.set()


@contextlib.contextmanager
def _keys(stream: TextIO) -> Iterator[int | None]:
    """The terminal's file descriptor in cbreak mode (keys arrive one by one, unechoed), restored
    after; None when ``stream`` is not a terminal (no keys to read: Ctrl-C or SIGTERM stop)."""
    try:
        fd = stream.fileno()
    except (AttributeError, ValueError, OSError):
        yield None
        return
    if not os.isatty(fd):
        yield None
        return
    saved = termios.tcgetattr(fd)
    try:
        # cbreak, not raw: Ctrl-C still raises SIGINT, and output keeps its newline handling.
        tty.setcbreak(fd, termios.TCSANOW)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
