"""Who may call what: the authorization policy of every Synergy server, as pure decisions.

One decision function per server (DESIGN.md §8, issue 8 item 3). Each takes the caller's
:class:`~synergy.security.identity.Identity` (from its verified certificate; ``None`` on a
plaintext connection) and the facts the rule needs as plain arguments, and either returns an
:class:`Allowed` or raises a :class:`Refusal`. Nothing here does I/O, reads a clock or imports
grpc: the servers gather the facts, this module decides, and the whole policy is a unit test
(``tests/unit/test_authz.py``).

======================  ===================================================================
server                  decision
======================  ===================================================================
coordinator, Registry   :func:`authorize_registry` (Register, Heartbeat, Deregister,
                        ReportResult(s): an agent acts only for the device its certificate
                        names) and :func:`authorize_report` (ReportResult, and each result
                        of ReportResults: results only from the app's planned target,
                        drops from its pipeline)
agent, AgentService     :func:`authorize_agent_control` (Deploy, Activate, Undeploy, Status,
                        Inject: only the coordinator) and :func:`authorize_frames` (a frame
                        stream only from the upstream of that hop)
coordinator, Apps       :func:`authorize_apps` (client or admin; apps belong to their
                        submitter) and :func:`redact_for` (whose results a viewer may see)
======================  ===================================================================

Refusals: no identity (plain text) or a role that is not one of
:data:`~synergy.security.identity.ROLES` is ``UNAUTHENTICATED``; a known identity of the wrong
role or name is ``PERMISSION_DENIED``. A method this module has no rule for is refused
(default deny). Every reason says who asked, what they asked, and the rule that refused::

    agent:ring may not register device watch: an agent registers only the device its certificate names

:class:`Policy` holds the server's mode. With ``--insecure`` (plain text, no certificates)
every decision allows, and the first one carries a :attr:`Allowed.notice` for the server to
log once; otherwise it applies the functions above.

Methods are given by their bare name (``"Register"``) or their full gRPC path
(``"/synergy.v1.RegistryService/Register"``, what an interceptor sees).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final, Literal

from synergy.security.identity import ROLES, Identity

__all__ = [
    "AGENT_CONTROL_METHODS",
    "AGENT_SERVICE",
    "APPS_METHODS",
    "APPS_SERVICE",
    "REGISTRY_METHODS",
    "REGISTRY_SERVICE",
    "UNOWNED",
    "Allowed",
    "Policy",
    "Refusal",
    "RefusalCode",
    "ResultsFilter",
    "authorize_agent_control",
    "authorize_apps",
    "authorize_frames",
    "authorize_frame_in_stream",
    "authorize_registry",
    "authorize_report",
    "redact_for",
]

#: Full names of the services, as in their gRPC method paths.
REGISTRY_SERVICE: Final = "synergy.v1.RegistryService"
AGENT_SERVICE: Final = "synergy.v1.AgentService"
APPS_SERVICE: Final = "synergy.v1.AppsService"

REGISTRY_METHODS: Final = ("Register", "Heartbeat", "ReportResult", "ReportResults", "Deregister")
#: AgentService methods only the coordinator calls (Frames has its own rule).
AGENT_CONTROL_METHODS: Final = ("Deploy", "Activate", "Undeploy", "Status", "Inject")
APPS_METHODS: Final = (
    "SubmitApp",
    "RemoveApp",
    "ListApps",
    "GetPlan",
    "ListDevices",
    "WatchResults",
    "Infer",
    "GetStats",
    "ForgetDevice",
)
_FRAMES = "Frames"

#: Owner of an app submitted without an identity (a server run with ``--insecure``): on a
#: secured server only an admin sees its results or may remove it.
UNOWNED: Final = ""

RefusalCode = Literal["UNAUTHENTICATED", "PERMISSION_DENIED"]

_UNAUTHENTICATED: Final = "UNAUTHENTICATED"
_PERMISSION_DENIED: Final = "PERMISSION_DENIED"

_INSECURE_NOTICE = (
    "authorization is off (--insecure): every call is allowed whoever makes it; "
    "run with --tls-dir to have each server check its callers"
)


class Refusal(Exception):
    """A call this policy refuses; the server answers it with status :attr:`code`.

    ``str(refusal)`` is :attr:`reason`. :attr:`identity` is who asked (None: no certificate).
    """

    def __init__(self, code: RefusalCode, reason: str, method: str, *, service: str, identity: Identity | None) -> None:
        super().__init__(reason)
        self.code: RefusalCode = code
        self.reason = reason
        #: The bare method name, e.g. ``"Register"``.
        self.method = method
        #: The service's full name, e.g. ``"synergy.v1.RegistryService"``.
        self.service = service
        self.identity = identity

    @property
    def rpc(self) -> str:
        """``Service/Method`` without the package, e.g. ``"RegistryService/Register"``."""
        return f"{self.service.rsplit('.', 1)[-1]}/{self.method}"

    def __repr__(self) -> str:
        return f"Refusal({self.code}, {self.rpc}, {self.reason!r})"


@dataclass(frozen=True)
class ResultsFilter:
    """Which apps' results a ``WatchResults`` naming no app may stream: ``owner`` None = all."""

    owner: str | None

    def admits(self, owner: str) -> bool:
        """Whether results of an app owned by ``owner`` pass this filter."""
        return self.owner is None or owner == self.owner


@dataclass(frozen=True)
class Allowed:
    """A call the policy allows, with what the server must do with the decision."""

    #: The service's full name and the bare method name.
    service: str
    method: str
    identity: Identity | None
    #: The rule that allowed the call, for logs.
    rule: str
    #: SubmitApp: the owner to record for the new app (the submitter's name).
    owner: str | None = None
    #: WatchResults naming no app: the apps whose results this caller may stream.
    results: ResultsFilter | None = None
    #: True when allowed only because the server runs with ``--insecure``.
    insecure: bool = False
    #: Set on the first decision of an insecure :class:`Policy`: a warning to log once.
    notice: str | None = None


# -- helpers -----------------------------------------------------------------------------------


def _bare_method(service: str, method: str) -> str:
    """``method`` without ``/<service>/``; a path of another service stays as it is (unknown)."""
    prefix = f"/{service}/"
    return method[len(prefix) :] if method.startswith(prefix) else method


def _a(role: str) -> str:
    """``role`` with its indefinite article: "an agent", "a client"."""
    return f"{'an' if role[:1] in 'aeiou' else 'a'} {role}"


def _short(service: str) -> str:
    return service.rsplit(".", 1)[-1]


def _authenticated(identity: Identity | None, service: str, method: str, what: str) -> Identity:
    """``identity`` if it is a certificate identity of a known role, else UNAUTHENTICATED."""
    if identity is None:
        raise Refusal(
            _UNAUTHENTICATED,
            f"an unauthenticated peer may not {what}: every call needs a certificate from the Synergy CA "
            "(this connection presented none: plain text, or no client certificate)",
            method,
            service=service,
            identity=None,
        )
    if identity.role not in ROLES:
        raise Refusal(
            _UNAUTHENTICATED,
            f"{identity} may not {what}: its role {identity.role!r} is not a Synergy role "
            f"(the roles are {', '.join(ROLES)})",
            method,
            service=service,
            identity=identity,
        )
    return identity


def _denied(identity: Identity, service: str, method: str, what: str, rule: str) -> Refusal:
    return Refusal(_PERMISSION_DENIED, f"{identity} may not {what}: {rule}", method, service=service, identity=identity)


def _no_rule(identity: Identity | None, service: str, method: str) -> Refusal:
    what = f"call {_short(service)}/{method}"
    who = _authenticated(identity, service, method, what)
    return _denied(who, service, method, what, "no rule allows that method here (default deny)")


# -- RegistryService (coordinator) -------------------------------------------------------------

_REGISTRY_WHAT: dict[str, Callable[[str], str]] = {
    "Register": lambda d: f"register device {d}",
    "Heartbeat": lambda d: f"heartbeat device {d}",
    "Deregister": lambda d: f"deregister device {d}",
    "ReportResult": lambda d: f"report a result under device {d}'s lease",
    "ReportResults": lambda d: f"report results under device {d}'s lease",
}
_REGISTRY_RULE = {
    "Register": "an agent registers only the device its certificate names",
    "Heartbeat": "an agent heartbeats only the device its certificate names",
    "Deregister": "an agent deregisters only the device its certificate names",
    "ReportResult": "an agent reports results only under its own device's lease",
    "ReportResults": "an agent reports results only under its own device's lease",
}


def authorize_registry(
    identity: Identity | None,
    method: str,
    *,
    device_id: str,
    live_holder: Identity | str | None,
    connection: str | None = None,
) -> Allowed:
    """RegistryService: Register, Heartbeat, Deregister and ReportResult only by an agent whose
    name is ``device_id`` (for ReportResult, the device of the lease the result came with).

    ``live_holder`` (Register only; ignored otherwise) is who holds ``device_id`` while its
    lease is live: None when nobody does; an :class:`Identity`, compared with ``identity``; or
    a connection key (e.g. the address the agent registered from), compared with
    ``connection``, the caller's key of the same kind. A Register of a live id held by anyone
    else is refused, so a second agent (even one with a copy of the right certificate) cannot
    take a live device from the one serving it.
    """
    method = _bare_method(REGISTRY_SERVICE, method)
    if method not in _REGISTRY_WHAT:
        raise _no_rule(identity, REGISTRY_SERVICE, method)
    what = _REGISTRY_WHAT[method](device_id)
    who = _authenticated(identity, REGISTRY_SERVICE, method, what)
    if who.role != "agent":
        verb = "report results" if method in ("ReportResult", "ReportResults") else f"{method.lower()} a device"
        raise _denied(
            who,
            REGISTRY_SERVICE,
            method,
            what,
            f"only an agent certificate may {verb} (this is {_a(who.role)} certificate)",
        )
    if who.name != device_id:
        raise _denied(who, REGISTRY_SERVICE, method, what, _REGISTRY_RULE[method])
    if method == "Register" and live_holder is not None:
        if isinstance(live_holder, Identity):
            if live_holder != who:
                raise _denied(
                    who,
                    REGISTRY_SERVICE,
                    method,
                    what,
                    f"device {device_id} is live, held by {live_holder}: a device id is held by one agent at a time",
                )
        elif connection is None or connection != live_holder:
            raise _denied(
                who,
                REGISTRY_SERVICE,
                method,
                what,
                f"device {device_id} is live, held by another connection ({live_holder}): a device id is held "
                "by one agent at a time (deregister it, or wait for its lease to expire)",
            )
        return Allowed(REGISTRY_SERVICE, method, who, "the device's own agent, from the connection that holds it")
    return Allowed(REGISTRY_SERVICE, method, who, _REGISTRY_RULE[method])


def authorize_report(
    identity: Identity | None,
    *,
    app_id: str,
    epoch: int,
    dropped: bool,
    result_device: str,
    target_device: str | None,
    pipeline: Collection[str] = (),
    method: str = "ReportResult",
) -> Allowed:
    """ReportResult (and each result of a ReportResults batch, ``method``): a delivered result
    of ``app_id`` in ``epoch`` only from ``target_device``, the device that epoch's plan names
    as the app's target; a drop also from any other device of that pipeline (``pipeline``:
    every device the plan involves), since a frame can be dropped at any hop.
    ``target_device`` None: the app has no plan in that epoch (or the epoch is unknown, or
    long retired): nobody reports for it. The result must name the reporting device
    (``result_device``) as where it happened.

    Check :func:`authorize_registry` (the lease's device) first; this adds the plan's rule.
    """
    method = _bare_method(REGISTRY_SERVICE, method)
    what = f"report a {'drop' if dropped else 'result'} for app {app_id} epoch {epoch}"
    who = _authenticated(identity, REGISTRY_SERVICE, method, what)
    if who.role != "agent":
        raise _denied(
            who,
            REGISTRY_SERVICE,
            method,
            what,
            f"only an agent certificate may report results (this is {_a(who.role)} certificate)",
        )
    if target_device is None:
        raise _denied(
            who, REGISTRY_SERVICE, method, what, f"app {app_id} has no plan in epoch {epoch} (it is not planned there)"
        )
    if result_device != who.name:
        raise _denied(
            who,
            REGISTRY_SERVICE,
            method,
            what,
            f"the result names device {result_device or '(none)'}: "
            "an agent reports only what happened on its own device",
        )
    if who.name == target_device:
        return Allowed(REGISTRY_SERVICE, method, who, "the app's target device in that epoch's plan")
    if dropped and who.name in pipeline:
        return Allowed(REGISTRY_SERVICE, method, who, "a device of the app's pipeline reports a drop")
    rule = (
        f"only the app's target in that epoch's plan, device {target_device}, reports its results"
        if not dropped
        else f"only the devices of the app's pipeline in that epoch ({', '.join(sorted(pipeline)) or target_device}) "
        "report its drops"
    )
    raise _denied(who, REGISTRY_SERVICE, method, what, rule)


# -- AgentService (agent) ----------------------------------------------------------------------


def authorize_agent_control(identity: Identity | None, method: str) -> Allowed:
    """AgentService Deploy, Activate, Undeploy, Status and Inject: only the coordinator.

    Frames is not decided here but by :func:`authorize_frames`.
    """
    method = _bare_method(AGENT_SERVICE, method)
    if method not in AGENT_CONTROL_METHODS:
        raise _no_rule(identity, AGENT_SERVICE, method)
    what = f"call AgentService/{method}"
    who = _authenticated(identity, AGENT_SERVICE, method, what)
    if who.role != "coordinator":
        raise _denied(
            who,
            AGENT_SERVICE,
            method,
            what,
            "only the coordinator deploys to, activates, undeploys, injects into or asks the status of an agent",
        )
    return Allowed(AGENT_SERVICE, method, who, "the coordinator controls agents")


def authorize_frames(
    identity: Identity | None, *, app_id: str, epoch: int, segment: int, upstream: str | None
) -> Allowed:
    """A Frames stream into (``app_id``, ``epoch``, ``segment``) only from its upstream.

    ``upstream`` is the device the agent's current deployment names as the previous segment of
    that hop; None when the agent holds no such app, epoch and segment (or holds it as segment
    0, which no peer feeds): refused, so nothing is read from a stream nobody should send.
    An ``app_id`` of "" means the stream did not say what it feeds: refused too.
    Check each frame of an allowed stream with :func:`authorize_frame_in_stream`.
    """
    method = _FRAMES
    if not app_id:
        who = _authenticated(identity, AGENT_SERVICE, method, "open a frame stream")
        raise _denied(
            who,
            AGENT_SERVICE,
            method,
            "open a frame stream",
            "the stream's metadata does not name the app, epoch and segment it feeds",
        )
    what = f"open a frame stream into app {app_id} epoch {epoch} segment {segment}"
    who = _authenticated(identity, AGENT_SERVICE, method, what)
    if upstream is None:
        raise _denied(
            who,
            AGENT_SERVICE,
            method,
            what,
            "this agent holds no such app, epoch and segment fed by a peer "
            "(a stream is accepted only for what it holds)",
        )
    if who.role != "agent" or who.name != upstream:
        raise _denied(
            who,
            AGENT_SERVICE,
            method,
            what,
            f"only device {upstream}, the upstream of that hop in this agent's deployment, may feed it",
        )
    return Allowed(AGENT_SERVICE, method, who, "the upstream device of that hop")


def authorize_frame_in_stream(
    identity: Identity | None, *, stream: tuple[str, int, int], frame: tuple[str, int, int], seq: int
) -> None:
    """One frame of an allowed stream: it must be for the (app, epoch, segment) the stream was
    allowed into, or the sender could feed any app through one hop it may feed."""
    if frame == stream:
        return
    method = _FRAMES
    app, epoch, segment = stream
    what = f"send frame {seq} for app {frame[0]} epoch {frame[1]} segment {frame[2]}"
    who = _authenticated(identity, AGENT_SERVICE, method, what)
    raise _denied(
        who,
        AGENT_SERVICE,
        method,
        what,
        f"the stream was allowed into app {app} epoch {epoch} segment {segment} only",
    )


# -- AppsService (coordinator) -----------------------------------------------------------------

_OWNED_VERB = {"RemoveApp": "remove", "WatchResults": "watch the results of", "Infer": "call Infer on"}


def authorize_apps(identity: Identity | None, method: str, *, owner: str | None, app_id: str = "") -> Allowed:
    """AppsService: every call needs a client or an admin certificate; apps belong to their submitter.

    - SubmitApp: allowed; :attr:`Allowed.owner` is the owner to record (the caller's name);
    - RemoveApp, WatchResults, Infer on an app (``owner``: its recorded owner; ``app_id`` for
      the reason): only by the owner or an admin. A WatchResults naming several apps is
      authorized once per app. ``owner`` None means the call names no existing app: RemoveApp
      and Infer are then allowed, for the server to answer NOT_FOUND (ListApps shows which
      apps exist anyway), and a WatchResults naming no app is allowed with
      :attr:`Allowed.results` — all apps for an admin, the caller's own for a client;
    - ListApps, GetPlan, ListDevices, GetStats: any client or admin (hide others' results with
      :func:`redact_for`);
    - ForgetDevice (drop an offline device's record): only an admin.
    """
    method = _bare_method(APPS_SERVICE, method)
    if method not in APPS_METHODS:
        raise _no_rule(identity, APPS_SERVICE, method)
    app = f"app {app_id}" if app_id else "an app"
    what = (
        f"{_OWNED_VERB[method]} {app}" if method in _OWNED_VERB and owner is not None else f"call AppsService/{method}"
    )
    who = _authenticated(identity, APPS_SERVICE, method, what)
    if who.role not in ("client", "admin"):
        raise _denied(
            who,
            APPS_SERVICE,
            method,
            what,
            f"AppsService needs a client or an admin certificate (this is {_a(who.role)} certificate)",
        )
    if method == "SubmitApp":
        return Allowed(APPS_SERVICE, method, who, "a client's app belongs to it", owner=who.name)
    if method == "ForgetDevice":
        if who.role != "admin":
            raise _denied(who, APPS_SERVICE, method, what, "only an admin may forget a device")
        return Allowed(APPS_SERVICE, method, who, "an admin keeps the device list")
    if method in _OWNED_VERB:
        if owner is None:
            if method == "WatchResults":
                if who.role == "admin":
                    return Allowed(APPS_SERVICE, method, who, "an admin watches every app", results=ResultsFilter(None))
                return Allowed(
                    APPS_SERVICE, method, who, "a client watches its own apps", results=ResultsFilter(who.name)
                )
            return Allowed(APPS_SERVICE, method, who, "no such app: the server answers NOT_FOUND")
        if who.role == "admin":
            return Allowed(APPS_SERVICE, method, who, "an admin acts on every app")
        if who.name != owner:
            raise _denied(
                who,
                APPS_SERVICE,
                method,
                what,
                f"{app} belongs to another client: only its owner or an admin may {_OWNED_VERB[method]} it",
            )
        return Allowed(APPS_SERVICE, method, who, "the app's owner")
    return Allowed(APPS_SERVICE, method, who, "any client or admin may look (others' results hidden)")


def redact_for(identity: Identity | None, owner: str) -> bool:
    """Whether the results and per-app stats of an app owned by ``owner`` are hidden from this
    viewer: shown only to the owner (a client of that name) and to admins."""
    if identity is None:
        return True
    if identity.role == "admin":
        return False
    return not (identity.role == "client" and identity.name == owner)


# -- the server's mode -------------------------------------------------------------------------


class Policy:
    """The decisions of one server, in its mode: enforced, or off with ``insecure``.

    With ``insecure`` (a server started with ``--insecure``, where callers have no
    certificates) every decision allows; the first :class:`Allowed` it returns carries a
    :attr:`~Allowed.notice` for the server to log, the later ones do not. SubmitApp then
    records the caller's name as owner, or :data:`UNOWNED` without an identity.
    """

    def __init__(self, *, insecure: bool = False) -> None:
        self._insecure = insecure
        self._noticed = False

    @property
    def insecure(self) -> bool:
        return self._insecure

    def _open(
        self,
        service: str,
        method: str,
        identity: Identity | None,
        *,
        owner: str | None = None,
        results: ResultsFilter | None = None,
    ) -> Allowed:
        notice = None
        if not self._noticed:
            self._noticed = True
            notice = _INSECURE_NOTICE
        return Allowed(
            service,
            _bare_method(service, method),
            identity,
            "--insecure: authorization is off",
            owner=owner,
            results=results,
            insecure=True,
            notice=notice,
        )

    def registry(
        self,
        identity: Identity | None,
        method: str,
        *,
        device_id: str,
        live_holder: Identity | str | None,
        connection: str | None = None,
    ) -> Allowed:
        """:func:`authorize_registry` in this policy's mode."""
        if self._insecure:
            return self._open(REGISTRY_SERVICE, method, identity)
        return authorize_registry(identity, method, device_id=device_id, live_holder=live_holder, connection=connection)

    def report(
        self,
        identity: Identity | None,
        *,
        app_id: str,
        epoch: int,
        dropped: bool,
        result_device: str,
        target_device: str | None,
        pipeline: Collection[str] = (),
        method: str = "ReportResult",
    ) -> Allowed:
        """:func:`authorize_report` in this policy's mode."""
        if self._insecure:
            return self._open(REGISTRY_SERVICE, method, identity)
        return authorize_report(
            identity,
            app_id=app_id,
            epoch=epoch,
            dropped=dropped,
            result_device=result_device,
            target_device=target_device,
            pipeline=pipeline,
            method=method,
        )

    def agent_control(self, identity: Identity | None, method: str) -> Allowed:
        """:func:`authorize_agent_control` in this policy's mode."""
        if self._insecure:
            return self._open(AGENT_SERVICE, method, identity)
        return authorize_agent_control(identity, method)

    def frames(
        self, identity: Identity | None, *, app_id: str, epoch: int, segment: int, upstream: str | None
    ) -> Allowed:
        """:func:`authorize_frames` in this policy's mode."""
        if self._insecure:
            return self._open(AGENT_SERVICE, _FRAMES, identity)
        return authorize_frames(identity, app_id=app_id, epoch=epoch, segment=segment, upstream=upstream)

    def frame_in_stream(
        self, identity: Identity | None, *, stream: tuple[str, int, int], frame: tuple[str, int, int], seq: int
    ) -> None:
        """:func:`authorize_frame_in_stream` in this policy's mode."""
        if not self._insecure:
            authorize_frame_in_stream(identity, stream=stream, frame=frame, seq=seq)

    def apps(self, identity: Identity | None, method: str, *, owner: str | None, app_id: str = "") -> Allowed:
        """:func:`authorize_apps` in this policy's mode."""
        if self._insecure:
            bare = _bare_method(APPS_SERVICE, method)
            if bare == "SubmitApp":
                return self._open(APPS_SERVICE, method, identity, owner=identity.name if identity else UNOWNED)
            if bare == "WatchResults" and owner is None:
                return self._open(APPS_SERVICE, method, identity, results=ResultsFilter(None))
            return self._open(APPS_SERVICE, method, identity)
        return authorize_apps(identity, method, owner=owner, app_id=app_id)

    def redact_for(self, identity: Identity | None, owner: str) -> bool:
        """:func:`redact_for` in this policy's mode (nothing is hidden with ``insecure``)."""
        return False if self._insecure else redact_for(identity, owner)
