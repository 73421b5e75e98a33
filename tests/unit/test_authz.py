"""The authorization policy (synergy.security.authz): every rule allowed and refused, with each
role, the reasons it gives, and the insecure mode."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from synergy.security import authz
from synergy.security.authz import (
    AGENT_CONTROL_METHODS,
    AGENT_SERVICE,
    APPS_METHODS,
    APPS_SERVICE,
    REGISTRY_METHODS,
    REGISTRY_SERVICE,
    UNOWNED,
    Allowed,
    Policy,
    Refusal,
    ResultsFilter,
    authorize_agent_control,
    authorize_apps,
    authorize_frame_in_stream,
    authorize_frames,
    authorize_registry,
    authorize_report,
    redact_for,
)
from synergy.security.identity import Identity
from synergy.v1 import agent_pb2, apps_pb2, registry_pb2

COORDINATOR = Identity("coordinator", "coordinator")
WATCH = Identity("agent", "watch")
RING = Identity("agent", "ring")
ALICE = Identity("client", "alice")
BOB = Identity("client", "bob")
ROOT = Identity("admin", "root")
STRANGER_ROLE = Identity("wizard", "merlin")

EVERY_ROLE = [COORDINATOR, WATCH, ALICE, ROOT]


def refused(call: object) -> Refusal:
    """The Refusal a zero-argument callable raises."""
    assert callable(call)
    with pytest.raises(Refusal) as info:
        call()
    return info.value


# -- module shape ------------------------------------------------------------------------------


def test_method_tables_match_the_protos() -> None:
    def methods(descriptor: object, service: str) -> set[str]:
        return {m.name for m in descriptor.services_by_name[service].methods}  # type: ignore[attr-defined]

    assert set(REGISTRY_METHODS) == methods(registry_pb2.DESCRIPTOR, "RegistryService")
    assert set(APPS_METHODS) == methods(apps_pb2.DESCRIPTOR, "AppsService")
    assert {*AGENT_CONTROL_METHODS, "Frames"} == methods(agent_pb2.DESCRIPTOR, "AgentService")
    assert registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name == REGISTRY_SERVICE
    assert apps_pb2.DESCRIPTOR.services_by_name["AppsService"].full_name == APPS_SERVICE
    assert agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name == AGENT_SERVICE


def test_module_is_pure() -> None:
    """No grpc, no I/O, no clock: only the standard library's typing helpers and our identity."""
    tree = ast.parse(Path(authz.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported == {"__future__", "collections.abc", "dataclasses", "typing", "synergy.security.identity"}


def test_refusal_carries_code_reason_method_and_who() -> None:
    r = refused(lambda: authorize_registry(RING, "Register", device_id="watch", live_holder=None))
    assert r.code == "PERMISSION_DENIED"
    assert r.method == "Register"
    assert r.service == REGISTRY_SERVICE
    assert r.rpc == "RegistryService/Register"
    assert r.identity == RING
    assert str(r) == r.reason
    assert "RegistryService/Register" in repr(r)


def test_full_method_paths_are_understood() -> None:
    allowed = authorize_registry(WATCH, "/synergy.v1.RegistryService/Heartbeat", device_id="watch", live_holder=None)
    assert allowed.method == "Heartbeat"
    # a path of another service is not a registry method: default deny
    r = refused(
        lambda: authorize_registry(WATCH, "/synergy.v1.AppsService/Heartbeat", device_id="watch", live_holder=None)
    )
    assert r.code == "PERMISSION_DENIED"
    assert "default deny" in r.reason


# -- who is calling ----------------------------------------------------------------------------

DECISIONS = {
    "registry": lambda who: authorize_registry(who, "Heartbeat", device_id="watch", live_holder=None),
    "report": lambda who: report(who),
    "agent_control": lambda who: authorize_agent_control(who, "Deploy"),
    "frames": lambda who: authorize_frames(who, app_id="app-1", epoch=3, segment=1, upstream="watch"),
    "apps": lambda who: authorize_apps(who, "ListApps", owner=None),
}


@pytest.mark.parametrize("decision", list(DECISIONS))
def test_no_identity_is_unauthenticated(decision: str) -> None:
    r = refused(lambda: DECISIONS[decision](None))
    assert r.code == "UNAUTHENTICATED"
    assert r.identity is None
    assert r.reason.startswith("an unauthenticated peer may not ")
    assert "certificate from the Synergy CA" in r.reason


@pytest.mark.parametrize("decision", list(DECISIONS))
def test_unknown_role_is_unauthenticated(decision: str) -> None:
    r = refused(lambda: DECISIONS[decision](STRANGER_ROLE))
    assert r.code == "UNAUTHENTICATED"
    assert r.reason.startswith("wizard:merlin may not ")
    assert "'wizard' is not a Synergy role (the roles are coordinator, agent, client, admin)" in r.reason


@pytest.mark.parametrize(
    "call",
    [
        lambda: authorize_registry(None, "Teleport", device_id="watch", live_holder=None),
        lambda: authorize_agent_control(None, "Teleport"),
        lambda: authorize_apps(None, "Teleport", owner=None),
    ],
)
def test_unknown_method_without_identity_is_unauthenticated(call: object) -> None:
    assert refused(call).code == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("call", "rpc"),
    [
        (
            lambda: authorize_registry(WATCH, "Teleport", device_id="watch", live_holder=None),
            "RegistryService/Teleport",
        ),
        (lambda: authorize_agent_control(COORDINATOR, "Teleport"), "AgentService/Teleport"),
        (lambda: authorize_agent_control(COORDINATOR, "Frames"), "AgentService/Frames"),
        (lambda: authorize_apps(ROOT, "Teleport", owner=None), "AppsService/Teleport"),
    ],
)
def test_unknown_method_is_denied_by_default(call: object, rpc: str) -> None:
    r = refused(call)
    assert r.code == "PERMISSION_DENIED"
    assert r.rpc == rpc
    assert r.reason.endswith(f"may not call {rpc}: no rule allows that method here (default deny)")


# -- RegistryService ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", REGISTRY_METHODS)
def test_agent_acts_for_its_own_device(method: str) -> None:
    allowed = authorize_registry(WATCH, method, device_id="watch", live_holder=None)
    assert allowed == Allowed(REGISTRY_SERVICE, method, WATCH, allowed.rule)
    assert allowed.owner is None and allowed.results is None and not allowed.insecure and allowed.notice is None


@pytest.mark.parametrize(
    ("method", "reason"),
    [
        (
            "Register",
            "agent:ring may not register device watch: an agent registers only the device its certificate names",
        ),
        (
            "Heartbeat",
            "agent:ring may not heartbeat device watch: an agent heartbeats only the device its certificate names",
        ),
        (
            "Deregister",
            "agent:ring may not deregister device watch: an agent deregisters only the device its certificate names",
        ),
        (
            "ReportResult",
            "agent:ring may not report a result under device watch's lease: "
            "an agent reports results only under its own device's lease",
        ),
        (
            "ReportResults",
            "agent:ring may not report results under device watch's lease: "
            "an agent reports results only under its own device's lease",
        ),
    ],
)
def test_agent_may_not_act_for_another_device(method: str, reason: str) -> None:
    r = refused(lambda: authorize_registry(RING, method, device_id="watch", live_holder=None))
    assert r.code == "PERMISSION_DENIED"
    assert r.reason == reason


@pytest.mark.parametrize("who", [COORDINATOR, Identity("client", "watch"), Identity("admin", "watch")])
@pytest.mark.parametrize("method", REGISTRY_METHODS)
def test_only_agents_use_the_registry(who: Identity, method: str) -> None:
    r = refused(lambda: authorize_registry(who, method, device_id="watch", live_holder=None))
    assert r.code == "PERMISSION_DENIED"
    assert r.reason.startswith(f"{who} may not ")
    verb = "report results" if method.startswith("ReportResult") else f"{method.lower()} a device"
    article = "an" if who.role == "admin" else "a"
    assert r.reason.endswith(f": only an agent certificate may {verb} (this is {article} {who.role} certificate)")


def test_register_of_a_live_id_held_by_the_same_identity() -> None:
    assert authorize_registry(WATCH, "Register", device_id="watch", live_holder=WATCH).method == "Register"


def test_register_of_a_live_id_held_by_another_identity() -> None:
    r = refused(lambda: authorize_registry(WATCH, "Register", device_id="watch", live_holder=Identity("agent", "old")))
    assert r.code == "PERMISSION_DENIED"
    assert r.reason == (
        "agent:watch may not register device watch: device watch is live, held by agent:old: "
        "a device id is held by one agent at a time"
    )


def test_register_of_a_live_id_from_the_holding_connection() -> None:
    allowed = authorize_registry(
        WATCH, "Register", device_id="watch", live_holder="10.0.0.5:50061", connection="10.0.0.5:50061"
    )
    assert "connection that holds it" in allowed.rule


@pytest.mark.parametrize("connection", ["10.0.0.9:50061", None])
def test_register_of_a_live_id_held_by_another_connection(connection: str | None) -> None:
    r = refused(
        lambda: authorize_registry(
            WATCH, "Register", device_id="watch", live_holder="10.0.0.5:50061", connection=connection
        )
    )
    assert r.code == "PERMISSION_DENIED"
    assert r.reason.startswith("agent:watch may not register device watch: device watch is live, held by another ")
    assert "(10.0.0.5:50061)" in r.reason
    assert "one agent at a time" in r.reason


@pytest.mark.parametrize("method", ["Heartbeat", "Deregister", "ReportResult"])
def test_live_holder_matters_only_to_register(method: str) -> None:
    authorize_registry(WATCH, method, device_id="watch", live_holder="10.0.0.5:50061", connection="elsewhere")


def test_name_is_checked_before_the_holder() -> None:
    r = refused(lambda: authorize_registry(RING, "Register", device_id="watch", live_holder=RING))
    assert "registers only the device its certificate names" in r.reason


# -- ReportResult: the plan's target -----------------------------------------------------------


def report(
    who: Identity | None,
    *,
    app: str = "app-1",
    dropped: bool = False,
    device: str | None = None,
    target: str | None = "watch",
    pipeline: tuple[str, ...] = ("glasses", "ring", "watch"),
) -> Allowed:
    reporting = device if device is not None else (who.name if who is not None else "")
    return authorize_report(
        who, app_id=app, epoch=4, dropped=dropped, result_device=reporting, target_device=target, pipeline=pipeline
    )


def test_report_from_the_target() -> None:
    allowed = report(WATCH)
    assert allowed.method == "ReportResult" and allowed.service == REGISTRY_SERVICE
    assert report(WATCH, dropped=True).rule == "the app's target device in that epoch's plan"


def test_report_from_another_device() -> None:
    r = refused(lambda: report(RING))
    assert r.code == "PERMISSION_DENIED"
    assert r.reason == (
        "agent:ring may not report a result for app app-1 epoch 4: "
        "only the app's target in that epoch's plan, device watch, reports its results"
    )


def test_a_drop_from_any_device_of_the_pipeline() -> None:
    assert report(RING, dropped=True).rule == "a device of the app's pipeline reports a drop"
    r = refused(lambda: report(Identity("agent", "earbud"), dropped=True))
    assert r.reason == (
        "agent:earbud may not report a drop for app app-1 epoch 4: "
        "only the devices of the app's pipeline in that epoch (glasses, ring, watch) report its drops"
    )


def test_a_result_names_the_reporting_device() -> None:
    r = refused(lambda: report(WATCH, device="ring"))
    assert r.reason == (
        "agent:watch may not report a result for app app-1 epoch 4: "
        "the result names device ring: an agent reports only what happened on its own device"
    )


def test_report_for_an_unplanned_app() -> None:
    r = refused(lambda: report(WATCH, app="app-7", target=None))
    assert r.code == "PERMISSION_DENIED"
    assert r.reason == (
        "agent:watch may not report a result for app app-7 epoch 4: app app-7 has no plan in epoch 4 "
        "(it is not planned there)"
    )


@pytest.mark.parametrize("who", [COORDINATOR, Identity("client", "watch"), Identity("admin", "watch")])
def test_report_only_by_an_agent(who: Identity) -> None:
    r = refused(lambda: report(who))
    assert r.code == "PERMISSION_DENIED"
    assert "only an agent certificate may report results" in r.reason


# -- AgentService: control ---------------------------------------------------------------------


@pytest.mark.parametrize("method", AGENT_CONTROL_METHODS)
def test_coordinator_controls_agents(method: str) -> None:
    allowed = authorize_agent_control(COORDINATOR, method)
    assert (allowed.service, allowed.method, allowed.identity) == (AGENT_SERVICE, method, COORDINATOR)
    assert authorize_agent_control(COORDINATOR, f"/{AGENT_SERVICE}/{method}").method == method


@pytest.mark.parametrize("who", [WATCH, ALICE, ROOT, Identity("client", "coordinator")])
@pytest.mark.parametrize("method", AGENT_CONTROL_METHODS)
def test_nobody_else_controls_agents(who: Identity, method: str) -> None:
    r = refused(lambda: authorize_agent_control(who, method))
    assert r.code == "PERMISSION_DENIED"
    assert r.reason == (
        f"{who} may not call AgentService/{method}: only the coordinator deploys to, activates, undeploys, "
        "injects into or asks the status of an agent"
    )


# -- AgentService: frames ----------------------------------------------------------------------


def test_frames_from_the_upstream_device() -> None:
    allowed = authorize_frames(WATCH, app_id="app-1", epoch=3, segment=1, upstream="watch")
    assert (allowed.service, allowed.method, allowed.rule) == (
        AGENT_SERVICE,
        "Frames",
        "the upstream device of that hop",
    )


@pytest.mark.parametrize("who", [RING, COORDINATOR, Identity("client", "watch"), Identity("admin", "watch"), ROOT])
def test_frames_from_anyone_but_the_upstream(who: Identity) -> None:
    r = refused(lambda: authorize_frames(who, app_id="app-1", epoch=3, segment=1, upstream="watch"))
    assert r.code == "PERMISSION_DENIED"
    assert r.rpc == "AgentService/Frames"
    assert r.reason == (
        f"{who} may not open a frame stream into app app-1 epoch 3 segment 1: "
        "only device watch, the upstream of that hop in this agent's deployment, may feed it"
    )


@pytest.mark.parametrize("who", EVERY_ROLE)
def test_frames_for_what_the_agent_does_not_hold(who: Identity) -> None:
    r = refused(lambda: authorize_frames(who, app_id="app-1", epoch=9, segment=1, upstream=None))
    assert r.code == "PERMISSION_DENIED"
    assert r.reason == (
        f"{who} may not open a frame stream into app app-1 epoch 9 segment 1: "
        "this agent holds no such app, epoch and segment fed by a peer (a stream is accepted only for what it holds)"
    )


@pytest.mark.parametrize("who", EVERY_ROLE)
def test_frames_into_segment_0_are_refused(who: Identity) -> None:
    # Segment 0 senses, or the coordinator feeds it with Inject: no peer streams into it, so
    # the agent reports no upstream for it.
    r = refused(lambda: authorize_frames(who, app_id="app-2", epoch=3, segment=0, upstream=None))
    assert r.code == "PERMISSION_DENIED"


@pytest.mark.parametrize("who", EVERY_ROLE)
def test_a_stream_that_does_not_say_what_it_feeds_is_refused(who: Identity) -> None:
    r = refused(lambda: authorize_frames(who, app_id="", epoch=0, segment=0, upstream=None))
    assert r.code == "PERMISSION_DENIED"
    assert r.reason == (
        f"{who} may not open a frame stream: the stream's metadata does not name the app, epoch and segment it feeds"
    )


def test_frames_of_the_stream_target_pass() -> None:
    authorize_frame_in_stream(WATCH, stream=("app-1", 3, 1), frame=("app-1", 3, 1), seq=7)


@pytest.mark.parametrize("frame", [("app-2", 3, 1), ("app-1", 4, 1), ("app-1", 3, 2)])
def test_a_frame_for_another_target_ends_the_stream(frame: tuple[str, int, int]) -> None:
    r = refused(lambda: authorize_frame_in_stream(WATCH, stream=("app-1", 3, 1), frame=frame, seq=7))
    assert r.code == "PERMISSION_DENIED"
    assert r.reason == (
        f"agent:watch may not send frame 7 for app {frame[0]} epoch {frame[1]} segment {frame[2]}: "
        "the stream was allowed into app app-1 epoch 3 segment 1 only"
    )
    Policy(insecure=True).frame_in_stream(None, stream=("app-1", 3, 1), frame=frame, seq=7)  # off: passes


# -- AppsService -------------------------------------------------------------------------------


@pytest.mark.parametrize("who", [COORDINATOR, WATCH])
@pytest.mark.parametrize("method", APPS_METHODS)
def test_apps_need_a_client_or_admin(who: Identity, method: str) -> None:
    owner = "alice" if method in ("RemoveApp", "WatchResults", "Infer") else None
    r = refused(lambda: authorize_apps(who, method, owner=owner, app_id="app-1"))
    assert r.code == "PERMISSION_DENIED"
    assert r.rpc == f"AppsService/{method}"
    article = "an" if who.role == "agent" else "a"
    assert r.reason.endswith(
        f"AppsService needs a client or an admin certificate (this is {article} {who.role} certificate)"
    )


def test_an_agent_may_not_submit() -> None:
    r = refused(lambda: authorize_apps(WATCH, "SubmitApp", owner=None))
    assert r.reason == (
        "agent:watch may not call AppsService/SubmitApp: "
        "AppsService needs a client or an admin certificate (this is an agent certificate)"
    )


@pytest.mark.parametrize("who", [ALICE, ROOT])
def test_submit_records_the_submitter_as_owner(who: Identity) -> None:
    allowed = authorize_apps(who, "SubmitApp", owner=None)
    assert allowed.owner == who.name


@pytest.mark.parametrize("who", [ALICE, BOB, ROOT])
@pytest.mark.parametrize("method", ["ListApps", "GetPlan", "ListDevices", "GetStats"])
def test_anyone_certified_may_look(who: Identity, method: str) -> None:
    allowed = authorize_apps(who, method, owner=None)
    assert allowed.method == method and allowed.owner is None and allowed.results is None


@pytest.mark.parametrize("method", ["RemoveApp", "WatchResults", "Infer"])
def test_the_owner_acts_on_its_app(method: str) -> None:
    allowed = authorize_apps(ALICE, method, owner="alice", app_id="app-1")
    assert allowed.rule == "the app's owner"
    assert allowed.results is None


@pytest.mark.parametrize("method", ["RemoveApp", "WatchResults", "Infer"])
@pytest.mark.parametrize("owner", ["alice", UNOWNED])
def test_an_admin_acts_on_every_app(method: str, owner: str) -> None:
    assert authorize_apps(ROOT, method, owner=owner, app_id="app-1").rule == "an admin acts on every app"


@pytest.mark.parametrize(
    ("method", "verb"), [("RemoveApp", "remove"), ("WatchResults", "watch the results of"), ("Infer", "call Infer on")]
)
def test_another_client_may_not_act_on_an_app(method: str, verb: str) -> None:
    r = refused(lambda: authorize_apps(BOB, method, owner="alice", app_id="app-1"))
    assert r.code == "PERMISSION_DENIED"
    assert r.reason == (
        f"client:bob may not {verb} app app-1: app app-1 belongs to another client: "
        f"only its owner or an admin may {verb} it"
    )
    assert "alice" not in r.reason  # the owner's name is not given away


def test_an_unowned_app_is_the_admins() -> None:
    r = refused(lambda: authorize_apps(ALICE, "RemoveApp", owner=UNOWNED, app_id="app-1"))
    assert r.code == "PERMISSION_DENIED"


def test_reason_without_an_app_id() -> None:
    r = refused(lambda: authorize_apps(BOB, "RemoveApp", owner="alice"))
    assert r.reason.startswith("client:bob may not remove an app: an app belongs to another client")


@pytest.mark.parametrize("method", ["RemoveApp", "Infer"])
@pytest.mark.parametrize("who", [ALICE, ROOT])
def test_an_unknown_app_is_left_to_not_found(method: str, who: Identity) -> None:
    allowed = authorize_apps(who, method, owner=None, app_id="app-99")
    assert "NOT_FOUND" in allowed.rule


def test_watch_everything_as_admin() -> None:
    allowed = authorize_apps(ROOT, "WatchResults", owner=None)
    assert allowed.results == ResultsFilter(None)
    assert allowed.results.admits("alice") and allowed.results.admits(UNOWNED)


def test_watch_everything_as_a_client_means_its_own() -> None:
    allowed = authorize_apps(ALICE, "WatchResults", owner=None)
    assert allowed.results == ResultsFilter("alice")
    assert allowed.results.admits("alice")
    assert not allowed.results.admits("bob")
    assert not allowed.results.admits(UNOWNED)


@pytest.mark.parametrize(
    ("viewer", "owner", "hidden"),
    [
        (ALICE, "alice", False),
        (BOB, "alice", True),
        (ROOT, "alice", False),
        (ROOT, UNOWNED, False),
        (ALICE, UNOWNED, True),
        (Identity("agent", "alice"), "alice", True),  # same name, not a client
        (Identity("coordinator", "alice"), "alice", True),
        (None, "alice", True),
        (None, UNOWNED, True),
    ],
)
def test_redact_for(viewer: Identity | None, owner: str, hidden: bool) -> None:
    assert redact_for(viewer, owner) is hidden
    assert Policy().redact_for(viewer, owner) is hidden
    assert Policy(insecure=True).redact_for(viewer, owner) is False


# -- Policy: enforced and insecure -------------------------------------------------------------


def policy_calls(policy: Policy, who: Identity | None) -> list[object]:
    return [
        lambda: policy.registry(who, "Register", device_id="watch", live_holder="elsewhere"),
        lambda: policy.report(
            who, app_id="app-1", epoch=2, dropped=False, result_device="watch", target_device=None
        ),
        lambda: policy.agent_control(who, "Undeploy"),
        lambda: policy.frames(who, app_id="app-1", epoch=2, segment=1, upstream=None),
        lambda: policy.apps(who, "RemoveApp", owner="alice", app_id="app-1"),
    ]


@pytest.mark.parametrize("who", [None, STRANGER_ROLE, RING, BOB])
def test_an_enforcing_policy_refuses_like_the_functions(who: Identity | None) -> None:
    policy = Policy()
    assert not policy.insecure
    for call in policy_calls(policy, who):
        refused(call)


def test_an_enforcing_policy_allows_like_the_functions() -> None:
    policy = Policy()
    assert policy.registry(WATCH, "Register", device_id="watch", live_holder=None).rule
    report = policy.report(WATCH, app_id="app-1", epoch=2, dropped=False, result_device="watch", target_device="watch")
    assert report.rule
    assert policy.agent_control(COORDINATOR, "Undeploy").rule
    assert policy.frames(WATCH, app_id="app-1", epoch=2, segment=1, upstream="watch").rule
    assert policy.apps(ALICE, "SubmitApp", owner=None).owner == "alice"
    assert policy.apps(ALICE, "WatchResults", owner=None).results == ResultsFilter("alice")
    assert all(a.notice is None and not a.insecure for a in [policy.agent_control(COORDINATOR, "Status")])


@pytest.mark.parametrize("who", [None, STRANGER_ROLE, RING, BOB])
def test_an_insecure_policy_allows_everything_and_says_so_once(who: Identity | None) -> None:
    policy = Policy(insecure=True)
    assert policy.insecure
    decisions = [call() for call in policy_calls(policy, who)]  # type: ignore[operator]
    assert all(isinstance(d, Allowed) and d.insecure for d in decisions)
    assert all(d.rule == "--insecure: authorization is off" for d in decisions)
    notices = [d.notice for d in decisions]
    assert notices[0] is not None and "--insecure" in notices[0]
    assert notices[1:] == [None] * (len(decisions) - 1)
    assert [d.method for d in decisions] == ["Register", "ReportResult", "Undeploy", "Frames", "RemoveApp"]


def test_an_insecure_policy_records_owners_and_watches_all() -> None:
    policy = Policy(insecure=True)
    assert policy.apps(None, "SubmitApp", owner=None).owner == UNOWNED
    assert policy.apps(ALICE, "/synergy.v1.AppsService/SubmitApp", owner=None).owner == "alice"
    assert policy.apps(ALICE, "WatchResults", owner=None).results == ResultsFilter(None)
    assert policy.apps(ALICE, "WatchResults", owner="bob").results is None
