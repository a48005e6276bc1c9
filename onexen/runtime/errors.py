"""Domain errors and the one table that turns them into gRPC status codes.

Services raise these exceptions; the server interceptor turns them into a
`google.rpc.Status` (code, message, details) and clients turn a failed call back
into the same exception with `from_rpc_error`, so a service calling a service
catches `NotFound`, not a status code.

Every status carries a `google.rpc.ErrorInfo` (reason, domain "onexen.v1",
metadata), as AIP-193 asks; `InvalidArgument` also carries a `google.rpc.BadRequest`
with one field violation per refused field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "onexen.v1"

# gRPC sends the status message twice (grpc-message header and inside the
# base64-encoded grpc-status-details-bin trailer) and refuses trailers over about
# 8 KiB: a long stderr would turn a clear error into an opaque transport failure.
MAX_MESSAGE_CHARS = 1024
MAX_METADATA_VALUE_CHARS = 1024
_TRUNCATED = "[...]"


@dataclass(frozen=True)
class FieldViolation:
    """One refused request field (`google.rpc.BadRequest.FieldViolation`)."""

    field: str
    description: str


class OnexenError(Exception):
    """Base of every domain error; `reason` is a stable UPPER_SNAKE_CASE identifier."""

    default_reason: ClassVar[str] = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})

    @property
    def code(self) -> grpc.StatusCode:
        return status_code_for(self)

    @classmethod
    def _from_wire(
        cls,
        message: str,
        reason: str,
        metadata: Mapping[str, str],
        violations: Sequence[FieldViolation],
    ) -> Self:
        return cls(message, reason=reason, metadata=metadata)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r}, metadata={self.metadata!r})"


class InvalidArgument(OnexenError):
    """The request itself is wrong, whatever the state of the system."""

    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        violations: Iterable[FieldViolation] = (),
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations: tuple[FieldViolation, ...] = tuple(violations)

    @classmethod
    def for_field(cls, field: str, description: str) -> InvalidArgument:
        """One refused field; its description doubles as the status message."""
        return cls(description, [FieldViolation(field, description)])

    @classmethod
    def _from_wire(
        cls,
        message: str,
        reason: str,
        metadata: Mapping[str, str],
        violations: Sequence[FieldViolation],
    ) -> Self:
        return cls(message, violations, reason=reason, metadata=metadata)


class NotFound(OnexenError):
    default_reason = "NOT_FOUND"


class AlreadyExists(OnexenError):
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(OnexenError):
    """The system is not in the state the operation needs; retrying as-is will not help."""

    default_reason = "FAILED_PRECONDITION"


class Unavailable(OnexenError):
    """Transient: a host or a service cannot be reached now; retrying may help."""

    default_reason = "UNAVAILABLE"


class DeadlineExceeded(OnexenError):
    default_reason = "DEADLINE_EXCEEDED"


class ResourceExhausted(OnexenError):
    default_reason = "RESOURCE_EXHAUSTED"


class Unimplemented(OnexenError):
    default_reason = "UNIMPLEMENTED"


class Internal(OnexenError):
    """A bug or a broken invariant on the server side."""

    default_reason = "INTERNAL"


class CommandFailed(OnexenError):
    """A command on a Xen host ran and exited non-zero.

    Maps to FAILED_PRECONDITION, not ABORTED or UNKNOWN: the host refused the
    operation in its current state (no memory, domain gone, bad config), so a blind
    retry will fail the same way; ABORTED would invite one. Clients tell it from
    other precondition failures by the reason COMMAND_FAILED; host, command,
    exit_code and stderr (its tail, bounded) travel in the ErrorInfo metadata.
    A remote command killed by the deadline is a `DeadlineExceeded`, not this.
    """

    default_reason = "COMMAND_FAILED"

    def __init__(
        self,
        message: str,
        *,
        host: str,
        command: str,
        exit_code: int,
        stderr: str,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        merged = {
            **(metadata or {}),
            "host": host,
            "command": command,
            "exit_code": str(exit_code),
            "stderr": stderr,
        }
        super().__init__(message, reason=reason, metadata=merged)
        self.host = host
        self.command = command
        self.exit_code = exit_code
        self.stderr = stderr

    @classmethod
    def _from_wire(
        cls,
        message: str,
        reason: str,
        metadata: Mapping[str, str],
        violations: Sequence[FieldViolation],
    ) -> Self:
        try:
            exit_code = int(metadata.get("exit_code", "-1"))
        except ValueError:
            exit_code = -1
        return cls(
            message,
            host=metadata.get("host", ""),
            command=metadata.get("command", ""),
            exit_code=exit_code,
            stderr=metadata.get("stderr", ""),
            reason=reason,
            metadata=metadata,
        )


# THE table. Subclasses defined by services inherit their parent's code
# (status_code_for walks the MRO), so a service adds a class, not a row.
STATUS_FOR: dict[type[OnexenError], grpc.StatusCode] = {
    OnexenError: grpc.StatusCode.UNKNOWN,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
    Internal: grpc.StatusCode.INTERNAL,
    CommandFailed: grpc.StatusCode.FAILED_PRECONDITION,
}

# The inverse for clients: several classes share FAILED_PRECONDITION, so the
# ErrorInfo reason picks among them first.
_ERROR_FOR_REASON: dict[tuple[grpc.StatusCode, str], type[OnexenError]] = {
    (grpc.StatusCode.FAILED_PRECONDITION, CommandFailed.default_reason): CommandFailed,
}
_ERROR_FOR_CODE: dict[grpc.StatusCode, type[OnexenError]] = {
    code: cls for cls, code in STATUS_FOR.items() if cls not in _ERROR_FOR_REASON.values()
}


def status_code_for(exc: OnexenError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS_FOR:
            return STATUS_FOR[cls]
    return grpc.StatusCode.UNKNOWN


def _truncate_head(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def _truncate_tail(text: str, limit: int) -> str:
    # The end of stderr holds the error; the start is usually progress chatter.
    return text if len(text) <= limit else _TRUNCATED + text[-(limit - len(_TRUNCATED)) :]


def _bounded_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    return {
        key: (_truncate_tail if key == "stderr" else _truncate_head)(value, MAX_METADATA_VALUE_CHARS)
        for key, value in metadata.items()
    }


def to_status(exc: OnexenError) -> status_pb2.Status:
    """The `google.rpc.Status` a server sends for `exc`."""
    code = status_code_for(exc)
    status = status_pb2.Status(
        code=code.value[0],
        message=_truncate_head(exc.message, MAX_MESSAGE_CHARS),
    )
    if isinstance(exc, InvalidArgument) and exc.violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=_truncate_head(v.description, MAX_METADATA_VALUE_CHARS)
                )
                for v in exc.violations
            ]
        )
        status.details.add().Pack(bad_request)
    error_info = error_details_pb2.ErrorInfo(
        reason=exc.reason, domain=ERROR_DOMAIN, metadata=_bounded_metadata(exc.metadata)
    )
    status.details.add().Pack(error_info)
    return status


def internal_status(message: str) -> status_pb2.Status:
    """INTERNAL for an unexpected exception: a fixed message, never the traceback."""
    return to_status(Internal(message))


def to_grpc_status(
    status: status_pb2.Status, extra_trailing_metadata: Sequence[tuple[str, str | bytes]] = ()
) -> grpc.Status:
    """What `context.abort_with_status` takes; abort_with_status replaces the
    trailing metadata, so anything else the client should get back goes here."""
    grpc_status = rpc_status.to_status(status)
    return grpc_status._replace(
        trailing_metadata=tuple(grpc_status.trailing_metadata) + tuple(extra_trailing_metadata)
    )


def _decode_details(
    status: status_pb2.Status | None,
) -> tuple[str | None, dict[str, str], list[FieldViolation]]:
    reason: str | None = None
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
            metadata = dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(FieldViolation(v.field, v.description) for v in bad_request.field_violations)
    return reason, metadata, violations


def from_rpc_error(error: grpc.RpcError) -> OnexenError:
    """The domain error a failed call stands for, with its details decoded.

    Works for `grpc.aio.AioRpcError` and sync `grpc.RpcError` calls alike. Errors
    made by the transport (connection refused, client-side deadline) carry no
    details: they map by code alone, with the code's name as reason. Codes outside
    the table (CANCELLED, ABORTED, PERMISSION_DENIED, ...) give a plain
    `OnexenError` whose reason is the code's name unless the server sent one.
    """
    code: grpc.StatusCode = error.code()
    message: str = error.details() or ""
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        # Code or message in the details disagree with the call's: trust the call.
        status = None
    reason, metadata, violations = _decode_details(status)
    reason = reason or code.name
    cls = _ERROR_FOR_REASON.get((code, reason)) or _ERROR_FOR_CODE.get(code, OnexenError)
    return cls._from_wire(message, reason, metadata, violations)
