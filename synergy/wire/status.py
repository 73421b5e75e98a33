"""The one choke point between Synergy's errors and gRPC status codes.

Servers install :class:`ErrorInterceptor`: a :class:`~synergy.errors.SynergyError` raised by a
servicer becomes the status code the error class names, with its message; anything else
becomes INTERNAL and is logged with its traceback. Clients call :func:`error_from_rpc` to turn
a failed call back into the matching :class:`~synergy.errors.SynergyError` subclass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog

from synergy import errors

__all__ = ["ErrorInterceptor", "error_from_rpc"]

log = structlog.get_logger(__name__)

_CLASS_FOR_CODE: dict[grpc.StatusCode, type[errors.SynergyError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.Unavailable,
}


def _status_for(exc: errors.SynergyError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, exc.grpc_code, grpc.StatusCode.INTERNAL)


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    if isinstance(exc, errors.SynergyError):
        await context.abort(_status_for(exc), str(exc))
    log.exception("rpc_failed", method=method)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}: {type(exc).__name__}: {exc}")


def _wrap_unary(behavior: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Awaitable[Any]]:
    async def wrapper(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(request_or_iterator, context)
        except (errors.SynergyError, Exception) as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort(context, exc, method)

    return wrapper


def _wrap_streaming(behavior: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., AsyncIterator[Any]]:
    async def wrapper(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for item in behavior(request_or_iterator, context):
                yield item
        except (errors.SynergyError, Exception) as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort(context, exc, method)

    return wrapper


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Maps SynergyError subclasses to their status codes on every method of a server."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=_wrap_unary(handler.unary_unary, method))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=_wrap_unary(handler.stream_unary, method))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=_wrap_streaming(handler.unary_stream, method))
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=_wrap_streaming(handler.stream_stream, method))
        return handler


def error_from_rpc(exc: grpc.aio.AioRpcError | grpc.RpcError) -> errors.SynergyError:
    """The SynergyError a failed call stands for (Unavailable for transport failures)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    cls = _CLASS_FOR_CODE.get(code, errors.SynergyError)
    error = cls(details or str(code))
    error.grpc_code = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    return error
