"""The one choke point between Synergy's errors and gRPC status codes, and the server's door.

Servers install :class:`ErrorInterceptor`. On every method it

- holds each request message to that method's size limit (:func:`synergy.limits.message_limit`;
  gRPC's own server-wide limit is the largest of them), decodes it, and runs its validator
  (:func:`synergy.wire.validate.check_request`). A request that is too large, undecodable or
  invalid becomes INVALID_ARGUMENT naming the method and the bound or the field; without this
  gRPC answers UNKNOWN for a message that does not decode. The deserializer never raises: it
  hands the behaviour a refusal, which aborts the call (streamed requests: when the servicer
  reads the refused message);
- maps a :class:`~synergy.errors.SynergyError` raised by a servicer to the status code the
  error class names, with its message (bounded); anything else becomes INTERNAL and is logged
  with its traceback.

Clients call :func:`error_from_rpc` to turn a failed call back into the matching
:class:`~synergy.errors.SynergyError` subclass.

Memory: gRPC buffers a whole request (up to the server-wide limit) before Python sees it, in
many small heap blocks spread over its threads' malloc arenas; glibc keeps that memory mapped
after it is freed (measured: +144 MB of RSS kept after ten 55 MB junk requests, for good).
So after refusing a large request the interceptor asks glibc to return free memory to the
system (``malloc_trim(0)``, a few milliseconds), and a daemon's RSS comes back to its baseline
(measured: +5 MB after the same ten requests). After any other call whose request was large it
does the same half a second later, after a garbage collection. And the behaviour wrapper drops
its reference to the request before aborting: gRPC keeps the abort's exception (and so the
wrapper's frame) until the next call fails, which kept a failed 55 MB request in memory
(measured on a coordinator: six 50-55 MB SubmitApp calls with junk ONNX, +630 MB before,
+2 MB after). Requests over the server-wide limit are refused by gRPC's core
(RESOURCE_EXHAUSTED) before Python sees them; they cost about 30 MB after ten of 75 MB.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import functools
import gc
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog

from synergy import errors, limits
from synergy.wire import validate

__all__ = ["ErrorInterceptor", "RequestRefused", "error_from_rpc", "release_free_memory"]

log = structlog.get_logger(__name__)

#: A call whose request is at least this large returns free heap memory to the system after it.
TRIM_AFTER_BYTES = 1024 * 1024
#: Seconds after such a call before garbage is collected and the heap trimmed (several large
#: calls in a row share one collection).
COLLECT_DELAY_S = 0.5

#: Size of the request of the current call when it is large (set by the deserializer, which
#: runs in the call's task, read by the behaviour wrapper).
_LARGE_REQUEST: contextvars.ContextVar[int] = contextvars.ContextVar("synergy_large_request", default=0)

_CLASS_FOR_CODE: dict[grpc.StatusCode, type[errors.SynergyError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.Unavailable,
}


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols: glibc's when linked
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> None:
    """Return free heap memory to the system (glibc ``malloc_trim(0)``; a no-op elsewhere)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class RequestRefused:
    """What the guarded deserializer returns instead of raising: why the request is refused."""

    __slots__ = ("message", "size")

    def __init__(self, message: str, size: int) -> None:
        self.message = message
        self.size = size

    def error(self) -> errors.InvalidArgument:
        if self.size >= TRIM_AFTER_BYTES:
            # At once: a streamed request may be read in another task than the call's.
            release_free_memory()
            _LARGE_REQUEST.set(0)
        return errors.InvalidArgument(self.message)


def _message_type(deserializer: Callable[[bytes], Any] | None) -> str:
    """The full name of the message ``deserializer`` builds (``X.FromString``), for errors."""
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "message"))


def _guard(deserializer: Callable[[bytes], Any] | None, method: str) -> Callable[[bytes], Any]:
    limit = limits.message_limit(method)
    type_name = _message_type(deserializer)

    def deserialize(data: bytes) -> Any:
        size = len(data)
        if size >= TRIM_AFTER_BYTES:
            _LARGE_REQUEST.set(size)
        if size > limit:
            return RequestRefused(f"{method}: a request of {size} bytes exceeds this method's limit of {limit}", size)
        if deserializer is None:
            return data
        try:
            message = deserializer(data)
        except Exception as exc:  # DecodeError, and whatever else a parser of hostile bytes raises
            # The parser's text names the type again ("Error parsing message with type 'X': ...").
            reason = str(exc).rpartition("': ")[2] or str(exc)
            return RequestRefused(
                f"{method}: the request is not a valid {type_name} ({type(exc).__name__}: {reason[:200]})", size
            )
        try:
            validate.check_request(method, message)
        except errors.InvalidArgument as exc:
            return RequestRefused(str(exc), size)
        return message

    return deserialize


def _status_for(exc: errors.SynergyError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, exc.grpc_code, grpc.StatusCode.INTERNAL)


def _details(text: str) -> str:
    cap = limits.MAX_STATUS_DETAILS_CHARS
    return text if len(text) <= cap else text[:cap] + "…"


def _status_of(exc: Exception, method: str) -> tuple[grpc.StatusCode, str]:
    """The status a servicer's exception becomes; anything but a SynergyError is logged."""
    if isinstance(exc, errors.SynergyError):
        return _status_for(exc), _details(str(exc))
    if isinstance(exc, NotImplementedError):  # generated servicer bases raise it for missing methods
        return grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented"
    log.exception("rpc_failed", method=method)  # called in the except block: logs the traceback
    return grpc.StatusCode.INTERNAL, _details(f"internal error in {method}: {type(exc).__name__}: {exc}")


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A request stream that raises InvalidArgument at the first refused message."""
    async for request in requests:
        if isinstance(request, RequestRefused):
            raise request.error()
        yield request


class _Collector:
    """Collects garbage and trims the heap once, shortly after calls with large requests.

    Collecting first: a failed call's exception may sit in a reference cycle (an asyncio
    future holds the exception, whose traceback holds frames), and with it frames that hold
    the request; only the cycle collector frees those.
    """

    def __init__(self) -> None:
        self.pending = False

    def schedule(self) -> None:
        if not self.pending:
            self.pending = True
            # Later, not now: the call's own objects are still alive until its answer is sent.
            asyncio.get_running_loop().call_later(COLLECT_DELAY_S, self._run)

    def _run(self) -> None:
        self.pending = False
        gc.collect()
        release_free_memory()


_COLLECTOR = _Collector()


def _after_large_request() -> None:
    """Once a call with a large request is over, collect garbage and give memory back."""
    if _LARGE_REQUEST.get():
        _LARGE_REQUEST.set(0)
        _COLLECTOR.schedule()


def _arguments(request_or_iterator: Any, streamed: bool) -> Any:
    if streamed:
        return _checked(request_or_iterator)
    if isinstance(request_or_iterator, RequestRefused):
        raise request_or_iterator.error()
    return request_or_iterator


def _wrap_call(behavior: Callable[..., Awaitable[Any]], method: str, streamed: bool) -> Callable[..., Awaitable[Any]]:
    """A coroutine behaviour: unary answers, or streamed answers written with ``context.write``."""

    async def wrapper(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            try:
                return await behavior(_arguments(request_or_iterator, streamed), context)
            except grpc.aio.AbortError:
                del request_or_iterator  # see below
                raise
            except Exception as exc:
                code, details = _status_of(exc, method)
            # gRPC keeps the abort's exception, and with its traceback this frame, until the
            # next call fails: not the request (measured: a 55 MB request stayed in RSS). And
            # the abort does not chain to the servicer's error, whose frames hold it too.
            del request_or_iterator
            await context.abort(code, details)
        finally:
            _after_large_request()

    return wrapper


def _wrap_generator(
    behavior: Callable[..., AsyncIterator[Any]], method: str, streamed: bool
) -> Callable[..., AsyncIterator[Any]]:
    """An async-generator behaviour (streamed answers yielded)."""

    async def wrapper(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            try:
                async for item in behavior(_arguments(request_or_iterator, streamed), context):
                    yield item
                return
            except grpc.aio.AbortError:
                del request_or_iterator  # as in _wrap_call
                raise
            except Exception as exc:
                code, details = _status_of(exc, method)
            del request_or_iterator
            await context.abort(code, details)
        finally:
            _after_large_request()

    return wrapper


def _as_async(behavior: Callable[..., Any], answers_streamed: bool) -> Callable[..., Any]:
    """A synchronous behaviour as an async one, run inline on the event loop.

    Synergy's servicers are async; the synchronous behaviours a server meets are the generated
    bases' stubs of methods a servicer does not implement (they raise NotImplementedError).
    """
    if answers_streamed:

        async def stream(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            for item in behavior(request_or_iterator, context):
                yield item

        return stream

    async def call(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        return behavior(request_or_iterator, context)

    return call


def _wrap(behavior: Any, method: str, streamed: bool, answers_streamed: bool) -> Any:
    if not (inspect.isasyncgenfunction(behavior) or inspect.iscoroutinefunction(behavior)):
        behavior = _as_async(behavior, answers_streamed)
    if inspect.isasyncgenfunction(behavior):
        return _wrap_generator(behavior, method, streamed)
    return _wrap_call(behavior, method, streamed)


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Guards every method's requests and maps SynergyError subclasses to their status codes."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        for kind, streamed, answers_streamed in (
            ("unary_unary", False, False),
            ("unary_stream", False, True),
            ("stream_unary", True, False),
            ("stream_stream", True, True),
        ):
            behavior = getattr(handler, kind)
            if behavior is not None:
                return handler._replace(
                    request_deserializer=_guard(handler.request_deserializer, method),
                    **{kind: _wrap(behavior, method, streamed, answers_streamed)},
                )
        return handler


def error_from_rpc(exc: grpc.aio.AioRpcError | grpc.RpcError) -> errors.SynergyError:
    """The SynergyError a failed call stands for (Unavailable for transport failures)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    cls = _CLASS_FOR_CODE.get(code, errors.SynergyError)
    error = cls(details or str(code))
    error.grpc_code = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    return error
