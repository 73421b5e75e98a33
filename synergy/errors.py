"""The one exception tree of Synergy.

Every error our code raises on purpose derives from :class:`SynergyError`. Each subclass
names the gRPC status code it maps to; the mapping happens in exactly one place
(:mod:`synergy.wire.status`), so servicers simply raise and clients get a fitting code with
a message that names the constraint.

    SynergyError
    ├── InvalidArgument      bad input: malformed model, unknown type, wrong tensor shape
    │   ├── ModelError       a model that is not valid ONNX or uses unsupported operators
    │   └── ProtocolError    bytes from a board's serial link that break the serial protocol
    ├── NotFound             unknown app id, device id or zoo name
    ├── AlreadyExists        a second live agent claiming a device id
    ├── Unauthenticated      a caller without a certificate the server can trust
    ├── PermissionDenied     a known caller asking for what its role or name does not allow
    ├── FailedPrecondition   valid request the current state cannot serve
    │   └── PlanningError    no device (or combination) can run an app
    ├── ResourceExhausted    a partition or a frame over a hard limit
    │   └── DoesNotFit       a partition over a board limit (names the limit)
    └── Unavailable          a peer or the coordinator cannot be reached
        ├── DeadlineExceeded a peer did not answer in time
        └── AddressInUse     a daemon's listen address is held by another process
"""

from __future__ import annotations

__all__ = [
    "AddressInUse",
    "AlreadyExists",
    "DeadlineExceeded",
    "DoesNotFit",
    "FailedPrecondition",
    "InvalidArgument",
    "ModelError",
    "NotFound",
    "PermissionDenied",
    "PlanningError",
    "ProtocolError",
    "ResourceExhausted",
    "SynergyError",
    "Unauthenticated",
    "Unavailable",
]


class SynergyError(Exception):
    """Root of every error Synergy raises deliberately."""

    #: Name of the grpc.StatusCode member this error maps to.
    grpc_code: str = "INTERNAL"


class InvalidArgument(SynergyError):
    grpc_code = "INVALID_ARGUMENT"


class ModelError(InvalidArgument):
    """The model is not valid ONNX, or parts of it cannot run on any supported board."""


class ProtocolError(InvalidArgument):
    """A serial-link peer broke the wire protocol (docs/serial-protocol.md); names the field and bound."""


class NotFound(SynergyError):
    grpc_code = "NOT_FOUND"


class AlreadyExists(SynergyError):
    grpc_code = "ALREADY_EXISTS"


class Unauthenticated(SynergyError):
    """No identity to trust: plain text, no client certificate, or a role Synergy does not know."""

    grpc_code = "UNAUTHENTICATED"


class PermissionDenied(SynergyError):
    """A known identity asking for something its role or name does not allow (the message says which rule)."""

    grpc_code = "PERMISSION_DENIED"


class FailedPrecondition(SynergyError):
    grpc_code = "FAILED_PRECONDITION"


class PlanningError(FailedPrecondition):
    """No placement of an app satisfies every constraint; the message names the constraint."""


class ResourceExhausted(SynergyError):
    grpc_code = "RESOURCE_EXHAUSTED"


class DoesNotFit(ResourceExhausted):
    """A partition exceeds a board limit. The message names the limit, the need and the capacity."""


class Unavailable(SynergyError):
    grpc_code = "UNAVAILABLE"


class DeadlineExceeded(Unavailable):
    grpc_code = "DEADLINE_EXCEEDED"


class AddressInUse(Unavailable):
    """The address a daemon should listen on is held by another process."""
