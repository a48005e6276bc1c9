"""gRPC calls to the onexen services, failures turned into typed errors a user can act on.

A call the service answered with an error keeps the service's message and details
(`from_rpc_error`). A call that never reached the service (connection refused, TLS
mismatch) or that ran past the adapter's own deadline carries no details; its message
then says which service, at which address, and what to check.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from grpc_status import rpc_status

from onexen.runtime.errors import DeadlineExceeded, OnexenError, Unavailable, from_rpc_error
from onexen.runtime.interceptor import REQUEST_ID_KEY

Response = TypeVar("Response")


@dataclass(frozen=True)
class Peer:
    """A service the adapter calls: its name for messages and its address."""

    service: str  # "executor", "translator", "monitor"
    target: str


def request_id(tag: str) -> str:
    """An id both the adapter's and the service's logs carry, e.g. `vm42-deploy-1f2e…`."""
    return f"{tag}-{uuid.uuid4().hex[:12]}"


def describe(error: grpc.RpcError, peer: Peer, timeout: float | None) -> OnexenError:
    """The typed error for a failed call, with a clear message when the transport failed."""
    typed = from_rpc_error(error)
    if _has_details(error):
        return typed
    detail = typed.message or typed.reason
    if typed.code == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(
            f"the onexen {peer.service} service at {peer.target} cannot be reached ({detail});"
            f" is it running, and are the adapter's --{peer.service} address and TLS settings right?",
            reason="SERVICE_UNREACHABLE",
            metadata={"service": peer.service, "target": peer.target},
        )
    if typed.code == grpc.StatusCode.DEADLINE_EXCEEDED and timeout is not None:
        return DeadlineExceeded(
            f"the onexen {peer.service} service at {peer.target} did not answer within the action"
            f" timeout of {timeout:g} s (-w)",
            reason="ACTION_TIMEOUT",
            metadata={"service": peer.service, "target": peer.target},
        )
    return typed


def _has_details(error: grpc.RpcError) -> bool:
    """Whether a service answered (onexen services always send google.rpc details)."""
    try:
        return rpc_status.from_call(error) is not None
    except ValueError:
        return True


async def unary(
    peer: Peer,
    method: Callable[..., Awaitable[Response]],
    request: Any,
    *,
    timeout: float | None,
    tag: str,
) -> Response:
    """One unary call; raises the `OnexenError` it failed with."""
    try:
        return await method(request, timeout=timeout, metadata=((REQUEST_ID_KEY, request_id(tag)),))
    except grpc.RpcError as exc:
        raise describe(exc, peer, timeout) from None
