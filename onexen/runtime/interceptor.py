"""The server interceptor every onexen service runs: request ids, errors, one log line, metrics.

A grpc.aio interceptor only sees the method name and the metadata, never the
status, so it wraps the handler's behaviour. Each call then:

- gets a request id (the client's `x-request-id` if it is sane, else a new one),
  sent back in the trailing metadata and bound, with the method, into structlog's
  contextvars for every log line the handler writes;
- turns an `OnexenError` into its status with google.rpc details (errors.STATUS_FOR),
  and any other exception into INTERNAL with a fixed message, its traceback
  going to the log only;
- logs exactly one `rpc` event when it ends, however it ends: returned, aborted,
  raised, cancelled by the client or by its deadline, or (streams) finished;
- updates the Prometheus metrics.

Servicers must be `async`: the wrapper calls the behaviour on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import Executor
from typing import Any, TypeVar, TypeVarTuple

import grpc
import structlog

from onexen.runtime import errors
from onexen.runtime.logging import get_logger
from onexen.runtime.metrics import RpcMetrics

REQUEST_ID_KEY = "x-request-id"
HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"
# A client's id is echoed into logs and metadata: accept only short, plain tokens.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")

_SERVER_FAULTS = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS})
_DEGRADED = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_log = get_logger(__name__)


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and _SANE_REQUEST_ID.fullmatch(value):
            return value
    return new_request_id()


def current_request_id() -> str | None:
    """The request id bound for the call being served, if any."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata for a call made while serving one, so both log the same request id."""
    request_id = current_request_id()
    return ((REQUEST_ID_KEY, request_id),) if request_id else ()


def deadline_seconds(context: grpc.aio.ServicerContext) -> float | None:
    """Seconds left before the client's deadline, None when it set none.

    gRPC does not pass deadlines on: give this as `timeout=` to outgoing calls and
    as the bound of remote commands.
    """
    remaining = context.time_remaining()
    return None if remaining is None else max(0.0, float(remaining))


async def run_blocking(pool: Executor | None, fn: Callable[[*Ts], T], *args: *Ts) -> T:
    """`fn(*args)` on `pool`, with the caller's contextvars (request id, method) copied in.

    `loop.run_in_executor` alone runs `fn` with an empty context. When the call's
    deadline cancels the awaiting coroutine, the thread still runs `fn` to its end:
    blocking work must bound itself (see `deadline_seconds`).
    """
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await loop.run_in_executor(pool, context.run, fn, *args)


def _log_level(code: grpc.StatusCode, method: str, quiet_methods: frozenset[str]) -> int:
    if code in _SERVER_FAULTS:
        return logging.ERROR
    if code in _DEGRADED:
        return logging.WARNING
    if code == grpc.StatusCode.OK and method in quiet_methods:
        return logging.DEBUG
    return logging.INFO


class _CallRecord:
    """What the interceptor learns about one call while it runs."""

    def __init__(self, method: str, request_id: str, peer: str) -> None:
        self.method = method
        self.request_id = request_id
        self.peer = peer
        self.started = time.perf_counter()
        self.code = grpc.StatusCode.OK
        self.fields: dict[str, Any] = {}
        self.unexpected: BaseException | None = None


class ServiceInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(
        self,
        metrics: RpcMetrics | None = None,
        *,
        quiet_methods: Iterable[str] = (HEALTH_CHECK_METHOD,),
    ) -> None:
        self._metrics = metrics
        # Successful calls of these log at DEBUG: a container health check every
        # few seconds would otherwise drown the log.
        self._quiet_methods = frozenset(quiet_methods)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        metadata = handler_call_details.invocation_metadata
        if handler is None:
            # gRPC answers UNIMPLEMENTED itself; record it so unknown methods show up.
            record = _CallRecord(method, request_id_from(metadata), "")
            record.code = grpc.StatusCode.UNIMPLEMENTED
            self._finish(record)
            return None
        return self._wrap(handler, method, metadata)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str, metadata: Any) -> grpc.RpcMethodHandler:
        serializers = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary_response(handler.unary_unary, method, metadata), **serializers
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary_response(handler.stream_unary, method, metadata), **serializers
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream_response(handler.unary_stream, method, metadata), **serializers
            )
        return grpc.stream_stream_rpc_method_handler(
            self._stream_response(handler.stream_stream, method, metadata), **serializers
        )

    def _unary_response(
        self, behaviour: Callable[[Any, grpc.aio.ServicerContext], Any], method: str, metadata: Any
    ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
        async def observed_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with self._observe(method, metadata, context):
                result = behaviour(request, context)
                return await result if inspect.isawaitable(result) else result

        return observed_unary

    def _stream_response(
        self, behaviour: Callable[[Any, grpc.aio.ServicerContext], Any], method: str, metadata: Any
    ) -> Callable[[Any, grpc.aio.ServicerContext], Any]:
        if inspect.isasyncgenfunction(behaviour):

            async def observed_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                async with self._observe(method, metadata, context):
                    async for response in behaviour(request, context):
                        yield response

            return observed_stream

        # A coroutine that answers with `context.write()`, like the health Watch.
        async def observed_writer(request: Any, context: grpc.aio.ServicerContext) -> None:
            async with self._observe(method, metadata, context):
                await behaviour(request, context)

        return observed_writer

    @contextlib.asynccontextmanager
    async def _observe(
        self, method: str, metadata: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[_CallRecord]:
        record = _CallRecord(method, request_id_from(metadata), context.peer())
        tokens = structlog.contextvars.bind_contextvars(request_id=record.request_id, method=method)
        echo = ((REQUEST_ID_KEY, record.request_id),)
        context.set_trailing_metadata(echo)
        try:
            yield record
            record.code = context.code() or grpc.StatusCode.OK
        except errors.OnexenError as exc:
            record.code = errors.status_code_for(exc)
            record.fields = {"error": exc.message, "reason": exc.reason}
            await context.abort_with_status(errors.to_grpc_status(errors.to_status(exc), echo))
        except grpc.aio.AbortError:
            # The handler aborted on its own (as the health servicer does).
            record.code = context.code() or grpc.StatusCode.UNKNOWN
            record.fields = {"error": context.details() or ""}
            raise
        except asyncio.CancelledError:
            # The client went away or its deadline passed; the client already has
            # its status, gRPC cancels the handler: only the log is left to write.
            remaining = context.time_remaining()
            expired = remaining is not None and remaining <= 0
            record.code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
            raise
        except GeneratorExit:
            record.code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            record.code = grpc.StatusCode.INTERNAL
            record.fields = {"error": f"unexpected {type(exc).__name__}"}
            record.unexpected = exc
            message = (
                f"internal error in {method}; the server log has the details"
                f" under request id {record.request_id}"
            )
            await context.abort_with_status(errors.to_grpc_status(errors.internal_status(message), echo))
        finally:
            self._finish(record)
            with contextlib.suppress(ValueError):  # reset from another context (a GC'd stream)
                structlog.contextvars.reset_contextvars(**tokens)

    def _finish(self, record: _CallRecord) -> None:
        seconds = time.perf_counter() - record.started
        if self._metrics is not None:
            self._metrics.observe(record.method, record.code, seconds)
        level = _log_level(record.code, record.method, self._quiet_methods)
        _log.log(
            level,
            "rpc",
            method=record.method,
            request_id=record.request_id,
            peer=record.peer,
            code=record.code.name,
            duration_ms=round(seconds * 1000, 3),
            exc_info=record.unexpected or False,
            **record.fields,
        )
