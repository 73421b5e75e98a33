"""Batches of results on the Registry API (``ReportResults``): the request and the per-result outcomes.

A target agent sends what queued while its previous report was in flight in one call; the
coordinator answers one :class:`~synergy.v1.registry_pb2.ResultOutcome` per result, in order:
accepted, or refused with the status code name the refusal stands for and its reason. Here
both sides turn those into our types: a refusal is the :class:`~synergy.errors.SynergyError`
a unary ``ReportResult`` of that result would have raised, so the agent treats it the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from synergy import errors
from synergy.reports import Result
from synergy.v1 import registry_pb2
from synergy.wire.reports import result_to_proto

__all__ = ["outcome_to_proto", "outcomes_from_proto", "results_request"]

#: The error class a refusal's code name stands for (as :mod:`synergy.wire.status` maps codes).
_CLASS_FOR_CODE: dict[str, type[errors.SynergyError]] = {
    cls.grpc_code: cls
    for cls in (
        errors.InvalidArgument,
        errors.NotFound,
        errors.AlreadyExists,
        errors.FailedPrecondition,
        errors.Unauthenticated,
        errors.PermissionDenied,
        errors.ResourceExhausted,
        errors.Unavailable,
    )
}


def results_request(lease_id: str, results: Sequence[Result]) -> registry_pb2.ReportResultsRequest:
    return registry_pb2.ReportResultsRequest(lease_id=lease_id, results=[result_to_proto(r) for r in results])


def outcome_to_proto(refusal: errors.SynergyError | None) -> registry_pb2.ResultOutcome:
    """A result's outcome: accepted (None) or refused with ``refusal``'s code and reason."""
    if refusal is None:
        return registry_pb2.ResultOutcome(accepted=True)
    return registry_pb2.ResultOutcome(accepted=False, code=refusal.grpc_code, reason=str(refusal))


def outcomes_from_proto(answer: registry_pb2.ReportResultsResponse, count: int) -> list[errors.SynergyError | None]:
    """One entry per result sent: None when accepted, else the refusal as an error.

    An answer with a different number of outcomes is a broken coordinator: refused as a whole
    (InvalidArgument), so the caller neither counts a result sent that was not, nor sends one twice.
    """
    if len(answer.outcomes) != count:
        raise errors.InvalidArgument(f"ReportResults answered {len(answer.outcomes)} outcomes for {count} results")
    out: list[errors.SynergyError | None] = []
    for outcome in answer.outcomes:
        if outcome.accepted:
            out.append(None)
            continue
        cls = _CLASS_FOR_CODE.get(outcome.code, errors.SynergyError)
        error = cls(outcome.reason[:4096] or outcome.code or "refused")
        error.grpc_code = outcome.code or error.grpc_code
        out.append(error)
    return out
