"""Links: per-pair figures, a shared medium's air time, relays through a central.

Every expected number is computed by hand from the link figures: a 2,000-byte cut plus the
link's per-message overhead, over its bandwidth.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from synergy.errors import InvalidArgument, NotFound
from synergy.planning.cost import CostModel
from synergy.planning.fit import estimate_fit
from synergy.planning.links import SERIAL_MESSAGE_OVERHEAD_BYTES, air_resource, link_for, route, through_port
from synergy.planning.problem import PlanningProblem
from synergy.planning.registry import get_planner
from synergy.planning.space_files import load_space
from synergy.planning.synthetic import LayerSpec, app, chain_model, device
from synergy.planning.throughput import evaluate
from synergy.types import LINK_PRESETS, BoardPort, DeviceSpec, PeerLink, Stage
from synergy.wire.convert import device_from_proto, device_to_proto

MODEL = chain_model(
    "chain3",
    [LayerSpec(100_000, 50_000, 2_000), LayerSpec(200_000, 60_000, 500), LayerSpec(50_000, 10_000, 40)],
    input_bytes=3_072,
    cpu_cycles=10_000,
)
BLE = LINK_PRESETS["ble5_2m"]  # 160,000 B/s, 4 B per message, 7.5 ms
UART = LINK_PRESETS["uart_921600"]  # 92,160 B/s, 2 B per message
#: The cut after layer 0 sends 2,000 B.
CUT_S = (2_000 + 4) / 160_000


def on(d: DeviceSpec, medium: str = "", central: bool = False, **peers: str) -> DeviceSpec:
    links = tuple(PeerLink(p, LINK_PRESETS[name]) for p, name in sorted(peers.items()))
    return dataclasses.replace(d, medium=medium, central=central, peer_links=links)


def split(cost_model: CostModel, src: DeviceSpec, dst: DeviceSpec, devices: dict[str, DeviceSpec]):  # type: ignore[no-untyped-def]
    """Layer 0 on the source, layers 1-2 on the target: one 2,000-byte transfer."""
    return cost_model.frame_cost(
        MODEL, src, [Stage(src.device_id, 0, 0), Stage(dst.device_id, 1, 2)], dst, devices, sensor_type="camera"
    )


def body(medium: str, central: str = "") -> dict[str, DeviceSpec]:
    # Replay-rate sources (1,000 frames/s) so that the link, not the sensor, limits.
    devices = [
        device("a", sensors=[("camera", 1000.0)], link="ble5_2m"),
        device("b", outputs=["display"], link="ble5_2m"),
        device("c", sensors=[("camera", 1000.0)], link="ble5_2m"),
        device("d", outputs=["display"], link="ble5_2m"),
        device("hub", link="ble5_2m"),
    ]
    return {d.device_id: on(d, medium, d.device_id == central) for d in devices}


def test_independent_radios_each_carry_their_own_transfer() -> None:
    devices = body("")
    model = CostModel(checker=estimate_fit)
    costs = [split(model, devices["a"], devices["b"], devices), split(model, devices["c"], devices["d"], devices)]
    ev = evaluate(costs, devices)
    # Each app is limited by its own radios: 1 / 12.525 ms = 79.84 frames/s.
    assert ev.rates_hz == pytest.approx([1 / CUT_S, 1 / CUT_S])
    assert all(not c.shared for c in costs)


def test_a_shared_medium_splits_its_air_time_between_the_transfers() -> None:
    devices = body("body")
    model = CostModel(checker=estimate_fit)
    costs = [split(model, devices["a"], devices["b"], devices), split(model, devices["c"], devices["d"], devices)]
    assert costs[0].shared == ((air_resource("body"), pytest.approx(CUT_S)),)
    ev = evaluate(costs, devices)
    # Two apps on one air: 2 x rate x 12.525 ms = 1, so 39.92 frames/s each (half of alone).
    assert ev.rates_hz == pytest.approx([1 / (2 * CUT_S), 1 / (2 * CUT_S)])
    assert ev.bottleneck == "body.air"
    assert ev.utilisation["body.air"] == pytest.approx(1.0)


def test_a_central_relays_transfers_between_two_other_members() -> None:
    devices = body("body", central="hub")
    hops = route(devices["a"], devices["b"], devices).hops
    assert [(h.sender, h.receiver) for h in hops] == [("a", "hub"), ("hub", "b")]
    model = CostModel(checker=estimate_fit)
    cost = split(model, devices["a"], devices["b"], devices)
    work = {w.device_id: w for w in cost.work}
    # The hub's radio receives and sends the 2,000 B: twice the transfer time.
    assert work["hub"].radio_s == pytest.approx(2 * CUT_S)
    assert work["a"].radio_s == pytest.approx(CUT_S) and work["b"].radio_s == pytest.approx(CUT_S)
    assert dict(cost.shared) == {"body.air": pytest.approx(2 * CUT_S)}
    # Alone, the app gets 1 / (2 x 12.525 ms) = 39.92 frames/s (the air and the hub's radio).
    ev = evaluate([cost], devices)
    assert ev.rates_hz[0] == pytest.approx(1 / (2 * CUT_S))
    # Both hops' transfer and link latency are in the frame's latency.
    direct = split(model, devices["a"], devices["b"], body("body"))
    assert cost.latency_s - direct.latency_s == pytest.approx(CUT_S + BLE.latency_s)
    # A transfer to or from the central itself is one hop.
    assert len(route(devices["a"], devices["hub"], devices).hops) == 1


def test_a_pair_link_overrides_the_radios_and_the_slower_declaration_counts() -> None:
    a = on(device("a", link="usb_hs"), b="uart_921600")
    b = device("b", link="usb_hs")
    assert link_for(a, b) == UART and link_for(b, a) == UART
    b2 = on(b, a="uart_115200")
    assert link_for(a, b2) == LINK_PRESETS["uart_115200"]
    devices = {"a": on(a), "b": b}
    devices["a"] = dataclasses.replace(devices["a"], sensors=device("x", sensors=[("camera", 1000.0)]).sensors)
    devices["a"] = on(devices["a"], b="uart_921600")
    cost = split(CostModel(checker=estimate_fit), devices["a"], devices["b"], devices)
    work = {w.device_id: w for w in cost.work}
    assert work["a"].radio_s == pytest.approx((2_000 + 2) / 92_160)


def test_the_planner_respects_the_shared_air_time() -> None:
    devices = body("body", central="hub")
    apps = [app("one", MODEL, "camera", "display"), app("two", MODEL, "camera", "display")]
    ours = get_planner("synergy").plan(list(devices.values()), apps)
    assert len(ours.plan.plans) == 2
    # Whatever it chose, the predicted rates fit the air and every radio.
    assert all(u <= 1.0 + 1e-9 for u in ours.evaluation.utilisation.values())
    exact = get_planner("exact").plan(list(devices.values()), apps)
    assert exact.optimal
    assert ours.evaluation.system_throughput >= exact.evaluation.system_throughput * 0.98


def test_the_wire_carries_medium_central_and_pair_links() -> None:
    d = on(device("a", link="ble5_2m"), "body", True, b="uart_921600", c="ble_24k")
    assert device_from_proto(device_to_proto(d)) == d


def test_space_files_refuse_bad_topologies(tmp_path: Path) -> None:
    def space(text: str) -> Path:
        path = tmp_path / "space.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    ok = space(
        "devices:\n"
        "  - {name: a, board: max78000, medium: body, central: true, peer_links: {b: uart_921600}}\n"
        "  - {name: b, board: max78000, medium: body}\n"
    )
    a = load_space(ok).devices[0]
    assert (a.medium, a.central, a.peer_links) == ("body", True, (PeerLink("b", UART),))
    with pytest.raises(NotFound, match="unknown device 'zz'"):
        load_space(space("devices:\n  - {name: a, board: max78000, peer_links: {zz: ble_24k}}\n"))
    with pytest.raises(InvalidArgument, match="2 centrals"):
        load_space(
            space(
                "devices:\n  - {name: a, board: max78000, medium: m, central: true}\n"
                "  - {name: b, board: max78000, medium: m, central: true}\n"
            )
        )
    with pytest.raises(InvalidArgument, match="central: a central needs a medium"):
        load_space(space("devices:\n  - {name: a, board: max78000, central: true}\n"))
    with pytest.raises(InvalidArgument, match="peer_links"):
        load_space(space("devices:\n  - {name: a, board: max78000, peer_links: {a: ble_24k}}\n"))


def test_the_wire_refuses_a_bad_topology_naming_the_field() -> None:
    msg = device_to_proto(on(device("a", link="ble5_2m"), b="uart_921600"))
    msg.central = True
    with pytest.raises(InvalidArgument, match=r"device\.central"):
        device_from_proto(msg)
    msg = device_to_proto(on(device("a", link="ble5_2m"), a2="uart_921600"))
    msg.peer_links[0].peer_device_id = "a"
    with pytest.raises(InvalidArgument, match=r"peer_links\[0\]\.peer_device_id"):
        device_from_proto(msg)
    msg.peer_links[0].peer_device_id = "b"
    msg.peer_links[0].link.bandwidth_bytes_per_s = -1
    with pytest.raises(InvalidArgument, match=r"peer_links\[0\]\.link\.bandwidth_bytes_per_s"):
        device_from_proto(msg)


# --- a real board behind a serial port -------------------------------------------------------


def _port(payload_bytes_per_s: float) -> BoardPort:
    return BoardPort("/dev/ttyACM0", 921_600, "1.0.0", 1, payload_bytes_per_s * 1.02, payload_bytes_per_s)


def test_a_serial_board_caps_its_links_at_the_measured_payload_rate_rounded_down() -> None:
    fast = dataclasses.replace(device("pi", link="usb_hs"), board_port=_port(89_412.7))
    capped = through_port(on(fast, ring="ble5_2m", watch="usb_hs"))
    assert capped.link.bandwidth_bytes_per_s == 89_000
    assert capped.link.name == "usb_hs|serial"
    assert capped.link.per_message_overhead_bytes == SERIAL_MESSAGE_OVERHEAD_BYTES
    # A pair link slower than the port keeps its figures; a faster one is capped too.
    pairs = {p.peer: p.link for p in capped.peer_links}
    assert pairs["ring"].bandwidth_bytes_per_s == 89_000  # ble5_2m's 160,000 B/s is faster
    assert pairs["watch"].bandwidth_bytes_per_s == 89_000
    # Without a port, nothing changes.
    plain = device("pi", link="usb_hs")
    assert through_port(plain) is plain
    # A slower radio than the port keeps its rate, but every transfer still crosses the port.
    slow = dataclasses.replace(device("pi", link="ble_24k"), board_port=_port(89_000))
    ble = LINK_PRESETS["ble_24k"]
    assert through_port(slow).link.bandwidth_bytes_per_s == ble.bandwidth_bytes_per_s
    assert through_port(slow).link.per_message_overhead_bytes == SERIAL_MESSAGE_OVERHEAD_BYTES


def test_a_pair_link_declared_by_the_peer_still_ends_at_the_board_port() -> None:
    board = through_port(dataclasses.replace(device("pi", link="usb_hs"), board_port=_port(50_000)))
    peer = on(device("watch", link="usb_hs"), pi="usb_hs")
    assert link_for(peer, board).bandwidth_bytes_per_s == 50_000
    assert link_for(board, peer).bandwidth_bytes_per_s == 50_000


def test_boards_measured_alike_share_a_device_class_and_the_planner_sees_the_cap() -> None:
    boards = [
        dataclasses.replace(
            device(f"pi{i}", sensors=[("camera", 10.0)], outputs=["display"], link="usb_hs"), board_port=_port(rate)
        )
        for i, rate in enumerate((89_101.0, 89_950.0))
    ]
    problem = PlanningProblem(boards, [app("a", MODEL, "camera", "display")], CostModel())
    assert len(problem.classes) == 1
    assert problem.classes[0].link.bandwidth_bytes_per_s == 89_000


def test_board_port_round_trips_the_wire_and_bad_figures_are_refused() -> None:
    spec = dataclasses.replace(device("pi"), board_port=_port(89_000))
    assert device_from_proto(device_to_proto(spec)) == spec
    msg = device_to_proto(spec)
    msg.board_port.measured_payload_bytes_per_s = 2 * msg.board_port.measured_wire_bytes_per_s
    with pytest.raises(InvalidArgument, match=r"board_port\.measured_payload_bytes_per_s exceeds"):
        device_from_proto(msg)
    msg = device_to_proto(spec)
    msg.board_port.baud = 0
    with pytest.raises(InvalidArgument, match=r"device.board_port.baud must be an integer in \[1, "):
        device_from_proto(msg)
    msg = device_to_proto(spec)
    msg.board_port.transport = "spi"
    with pytest.raises(InvalidArgument, match=r"board_port\.transport must be 'serial'"):
        device_from_proto(msg)
