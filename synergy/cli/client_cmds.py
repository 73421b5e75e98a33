"""Client commands: ``synergy devices | apps | submit | plan | results | remove | infer``.

Each prints a table for people, or JSON with ``--json`` (:mod:`synergy.documents`: our
dataclasses, numbers as numbers, enums as their values; the plan in the one schema online and
offline). Wherever a command takes an app it takes its id or its name (``submit --name``). Each
takes ``--coordinator HOST[:PORT]`` (env ``SYNERGY_COORDINATOR``; the default port when none is
given) and ``--tls-dir DIR`` (env ``SYNERGY_TLS_DIR``; a client or admin certificate) for mutual
TLS with the coordinator, or ``--insecure`` for plain text. Errors and exit statuses:
:mod:`synergy.cli.exits`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from synergy.addresses import coordinator_target
from synergy.defaults import DEFAULT_COORDINATOR
from synergy.documents import plan_document, to_json
from synergy.errors import InvalidArgument
from synergy.labels import label_summary, summary_label
from synergy.reports import Result
from synergy.sdk import AppRequest, SynergyClient
from synergy.security.tls import add_tls_arguments, tls_from_args
from synergy.tables import format_apps, frame_number, plan_placements, render_table
from synergy.types import AppInfo, DeviceSpec, JointPlan

__all__ = ["add_live_plan_arguments", "format_plan", "format_result", "register", "run_live_plan"]


def _add_coordinator_argument(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument(
        "--coordinator",
        default=os.environ.get("SYNERGY_COORDINATOR", DEFAULT_COORDINATOR),
        metavar="HOST[:PORT]",
        help=help_text,
    )


def _client_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    _add_coordinator_argument(p, "coordinator address, port 50051 when none is given (env SYNERGY_COORDINATOR)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_tls_arguments(p)
    return p


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = _client_parser(sub, "devices", "list the devices of the virtual computing space")
    d.add_argument(
        "--remove",
        metavar="DEVICE_ID",
        help="forget an offline device instead (an admin certificate; an online device is refused)",
    )
    d.set_defaults(func=_devices)
    _client_parser(sub, "apps", "list apps with their name, state, rate and latency").set_defaults(func=_apps)

    s = _client_parser(sub, "submit", "submit an app: sensor type + model + output type (never a device)")
    s.add_argument("source", help="sensor type, e.g. camera (or 'client' for apps fed through Infer)")
    s.add_argument("model", help="zoo name (see `synergy profile --list`) or path to an .onnx file")
    s.add_argument("target", help="output type, e.g. display")
    s.add_argument("--name", default="", help="a name for people, usable wherever an app id is (default: the id)")
    s.add_argument("--source-device", default="", help="pin the source to this device")
    s.add_argument("--target-device", default="", help="pin the target to this device")
    s.add_argument("--max-rate", type=float, default=0.0, help="cap the app's frames per second (0: no cap)")
    s.add_argument(
        "--min-rate",
        type=float,
        default=0.0,
        help="frames per second the app needs at least; it waits, with the reason, until a plan gives it that "
        "(0: none)",
    )
    s.add_argument(
        "--weight", type=float, default=1.0, help="priority in the default objective (weighted sum of rates)"
    )
    s.add_argument(
        "--every-frame",
        action="store_true",
        help="process every captured frame, queueing behind a bottleneck (without it: skip frames the "
        "pipeline has no room for, so results stay fresh)",
    )
    s.set_defaults(func=_submit)

    r = _client_parser(sub, "remove", "remove an app")
    r.add_argument("app", metavar="APP", help="app id or name")
    r.set_defaults(func=_remove)

    w = _client_parser(sub, "results", "stream results of apps (all apps when none is named)")
    w.add_argument("apps", nargs="*", metavar="APP", help="app ids or names")
    w.add_argument("--count", type=int, default=0, help="stop after this many results (0: until Ctrl-C)")
    w.set_defaults(func=_results)

    i = _client_parser(
        sub, "infer", "feed one input tensor (a .npy file) to an app of source type 'client' and print its result"
    )
    i.add_argument("app", metavar="APP", help="app id or name (submitted as `synergy submit client MODEL OUTPUT`)")
    i.add_argument("input", metavar="FILE.npy", type=Path, help="the input: the model's input shape, batch optional")
    i.add_argument("--timeout", type=float, default=0.0, help="seconds to wait for the result (0: the coordinator's)")
    i.set_defaults(func=_infer)


def add_live_plan_arguments(p: argparse.ArgumentParser) -> None:
    _add_coordinator_argument(
        p, "coordinator address, port 50051 when none is given (env SYNERGY_COORDINATOR); used without --space"
    )
    add_tls_arguments(p)


def run_live_plan(args: argparse.Namespace) -> int:
    return _run(args, _plan)


def _run(args: argparse.Namespace, body: Callable[[SynergyClient, argparse.Namespace], Awaitable[int]]) -> int:
    address = coordinator_target(args.coordinator)  # a bad address is refused before anything else
    tls = tls_from_args(args)  # loaded when the command runs, before any event loop

    async def main() -> int:
        async with SynergyClient(address, tls=tls) as client:
            return await body(client, args)

    return asyncio.run(main())


def _print_json(value: object) -> None:
    print(json.dumps(to_json(value), indent=2))


# -- devices --------------------------------------------------------------------------------


async def _devices_body(client: SynergyClient, args: argparse.Namespace) -> int:
    if args.remove:
        await client.forget_device(args.remove)
        if args.json:
            print(json.dumps({"forgotten": args.remove}))
        else:
            print(f"forgot device {args.remove}")
        return 0
    devices = await client.list_devices()
    if args.json:
        _print_json(devices)
        return 0
    rows = [
        [
            d.spec.device_id,
            d.spec.kind,
            d.state.value,
            d.spec.board.accelerator,
            ", ".join(f"{s.type}@{s.rate_hz:g}Hz" for s in d.spec.sensors) or "-",
            ", ".join(o.type for o in d.spec.outputs) or "-",
            _link_cell(d.spec),
            d.spec.address,
            f"quarantined: {d.quarantine_reason}" if d.quarantine_reason else "",
        ]
        for d in devices
    ]
    print(render_table(["device", "kind", "state", "board", "sensors", "outputs", "link", "address", "note"], rows))
    return 0


def _link_cell(device: DeviceSpec) -> str:
    port = device.board_port
    if port is None:
        return device.link.name
    # What the agent measured on the serial port: the planner caps the device's link there.
    return f"{device.link.name}; board on {port.path} at {port.measured_payload_bytes_per_s / 1000:.1f} kB/s"


def _devices(args: argparse.Namespace) -> int:
    return _run(args, _devices_body)


# -- apps -----------------------------------------------------------------------------------


async def _apps_body(client: SynergyClient, args: argparse.Namespace) -> int:
    apps = await client.list_apps()
    if args.json:
        _print_json(apps)
        return 0
    plan = await client.get_plan()
    print(format_apps(apps, plan_placements(plan)))
    return 0


def _apps(args: argparse.Namespace) -> int:
    return _run(args, _apps_body)


def _app_line(app: AppInfo) -> str:
    named = f" ({app.spec.name})" if app.spec.name and app.spec.name != app.app_id else ""
    return f"{app.app_id}{named}  {app.state.value}" + (f"  ({app.reason})" if app.reason else "")


async def _submit_body(client: SynergyClient, args: argparse.Namespace) -> int:
    app = await client.submit_app(
        AppRequest(
            source_type=args.source,
            model=args.model,
            target_type=args.target,
            name=args.name,
            source_device=args.source_device,
            target_device=args.target_device,
            max_rate_hz=args.max_rate,
            min_rate_hz=args.min_rate,
            weight=args.weight,
            every_frame=args.every_frame,
        )
    )
    if args.json:
        _print_json(app)
    else:
        print(_app_line(app))
    return 0


def _submit(args: argparse.Namespace) -> int:
    return _run(args, _submit_body)


async def _remove_body(client: SynergyClient, args: argparse.Namespace) -> int:
    app_id = await client.remove_app(args.app)
    if args.json:
        print(json.dumps({"removed": app_id}))
    else:
        print(f"removed {app_id}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    return _run(args, _remove_body)


# -- plan -----------------------------------------------------------------------------------


def format_plan(plan: JointPlan, names: Mapping[str, str] | None = None) -> str:
    names = names or {}
    lines = [
        f"epoch {plan.epoch}  method {plan.method or '-'}  predicted {plan.system_throughput:.2f} frames/s"
        + (f"  bottleneck {plan.bottleneck}" if plan.bottleneck else "")
    ]
    rows = []
    for p in plan.plans:
        for i, s in enumerate(p.stages):
            rows.append(
                [
                    p.app_id if i == 0 else "",
                    names.get(p.app_id, "") if i == 0 else "",
                    p.source_device if i == 0 else "",
                    s.device_id,
                    f"{s.first_layer}-{s.last_layer}",
                    p.target_device if i == len(p.stages) - 1 else "",
                    round(p.predicted_rate_hz, 2) if i == 0 else "",
                    round(p.predicted_latency_s * 1000, 1) if i == 0 else "",
                ]
            )
    lines.append(render_table(["app", "name", "source", "device", "layers", "target", "pred_fps", "pred_ms"], rows))
    for app_id, reason in plan.unplaced.items():
        lines.append(f"waiting: {app_id}: {reason}")
    for device_id, reason in plan.quarantined.items():
        lines.append(f"quarantined (left out of planning): {device_id}: {reason}")
    return "\n".join(lines)


async def _plan(client: SynergyClient, args: argparse.Namespace) -> int:
    plan = await client.get_plan()
    names = {a.app_id: a.spec.name for a in await client.list_apps()}
    print(json.dumps(plan_document(plan, names), indent=2) if args.json else format_plan(plan, names))
    return 0


# -- results and infer ----------------------------------------------------------------------


def format_result(result: Result, app: AppInfo | None = None) -> str:
    """One result for people: app (and name), frame number, epoch, where, the summary with the
    class name when the model's dataset has one, the latency; or the drop and its reason."""
    name = f" ({app.spec.name})" if app is not None and app.spec.name and app.spec.name != app.app_id else ""
    head = f"{result.app_id}{name} frame {frame_number(result.seq)} epoch {result.epoch}"
    if result.dropped:
        return f"{head}: DROPPED at {result.device_id}: {result.drop_reason}"
    summary = label_summary(app.spec.model, result.summary) if app is not None else result.summary
    return f"{head} -> {result.output_type}@{result.device_id}: {summary}  ({1000 * result.latency_s:.1f} ms)"


def _result_json(result: Result, app: AppInfo | None) -> dict[str, Any]:
    document: dict[str, Any] = to_json(result)
    document["frame"] = frame_number(result.seq)
    document["label"] = summary_label(app.spec.model, result.summary) if app is not None else None
    return document


async def _results_body(client: SynergyClient, args: argparse.Namespace) -> int:
    apps = {a.app_id: a for a in await client.list_apps()}
    async for result in client.watch_results(args.apps, count=args.count):
        app = apps.get(result.app_id)
        if app is None:  # submitted since: learn its model once
            apps = {a.app_id: a for a in await client.list_apps()}
            app = apps.get(result.app_id)
        if args.json:
            print(json.dumps(_result_json(result, app)), flush=True)
        else:
            print(format_result(result, app), flush=True)
    return 0


def _results(args: argparse.Namespace) -> int:
    return _run(args, _results_body)


def _load_array(path: Path) -> np.ndarray[Any, Any]:
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except FileNotFoundError:
        raise InvalidArgument(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"{path}: not a .npy array ({exc})") from exc


async def _infer_body(client: SynergyClient, args: argparse.Namespace) -> int:
    array = _load_array(args.input)
    result = await client.infer(args.app, array, timeout_s=args.timeout)
    app = next((a for a in await client.list_apps() if a.app_id == result.app_id), None)
    print(json.dumps(_result_json(result, app), indent=2) if args.json else format_result(result, app))
    return 0


def _infer(args: argparse.Namespace) -> int:
    return _run(args, _infer_body)
