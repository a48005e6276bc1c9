"""The error table and its two directions, without a network."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from onexen.runtime import errors


class FakeRpcError(grpc.RpcError):  # type: ignore[misc]
    """What a failed call looks like to a client (the parts from_rpc_error reads)."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing: Sequence[tuple[str, bytes | str]]):
        self._code, self._details, self._trailing = code, details, tuple(trailing)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, bytes | str], ...]:
        return self._trailing


def over_the_wire(exc: errors.OnexenError) -> FakeRpcError:
    grpc_status = rpc_status.to_status(errors.to_status(exc))
    return FakeRpcError(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)


def sample(cls: type[errors.OnexenError]) -> errors.OnexenError:
    if cls is errors.InvalidArgument:
        return errors.InvalidArgument.for_field("vm_xml", "vm_xml is empty")
    if cls is errors.CommandFailed:
        return errors.CommandFailed(
            "xl create failed",
            host="xen1",
            command="xl create /var/lib/one/1/deployment.0",
            exit_code=3,
            stderr="libxl: error: not enough memory",
        )
    return cls(f"{cls.__name__} happened", reason="SOMETHING_SPECIFIC", metadata={"host": "xen1"})


def test_every_domain_error_has_a_code() -> None:
    expected = {
        errors.OnexenError: grpc.StatusCode.UNKNOWN,
        errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
        errors.NotFound: grpc.StatusCode.NOT_FOUND,
        errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
        errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
        errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
        errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
        errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
        errors.Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
        errors.Internal: grpc.StatusCode.INTERNAL,
        errors.CommandFailed: grpc.StatusCode.FAILED_PRECONDITION,
    }
    assert expected == errors.STATUS_FOR
    assert set(errors.OnexenError.__subclasses__()) <= set(errors.STATUS_FOR)


def test_a_service_subclass_inherits_its_parents_code() -> None:
    class HostNotInInventory(errors.NotFound):
        default_reason = "HOST_NOT_IN_INVENTORY"

    exc = HostNotInInventory("no host xen9")
    assert exc.code == grpc.StatusCode.NOT_FOUND
    assert exc.reason == "HOST_NOT_IN_INVENTORY"


def test_invalid_argument_carries_bad_request_and_error_info() -> None:
    status = errors.to_status(errors.InvalidArgument.for_field("host", "host is empty"))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status.message == "host is empty"
    bad_request, info = error_details_pb2.BadRequest(), error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(bad_request) and status.details[1].Unpack(info)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [("host", "host is empty")]
    assert (info.reason, info.domain) == ("INVALID_ARGUMENT", "onexen.v1")


@pytest.mark.parametrize("cls", list(errors.STATUS_FOR), ids=lambda cls: cls.__name__)
def test_from_rpc_error_gives_back_the_same_error(cls: type[errors.OnexenError]) -> None:
    sent = sample(cls)
    received = errors.from_rpc_error(over_the_wire(sent))
    assert type(received) is cls
    assert (received.message, received.reason, received.metadata) == (
        sent.message,
        sent.reason,
        sent.metadata,
    )
    assert received.code == sent.code
    if isinstance(sent, errors.InvalidArgument):
        assert isinstance(received, errors.InvalidArgument)
        assert received.violations == sent.violations
    if isinstance(sent, errors.CommandFailed):
        assert isinstance(received, errors.CommandFailed)
        assert (received.host, received.command, received.exit_code, received.stderr) == (
            sent.host,
            sent.command,
            sent.exit_code,
            sent.stderr,
        )


def test_long_stderr_keeps_its_tail_and_fits_in_trailers() -> None:
    stderr = "progress line\n" * 20_000 + "libxl: error: the actual cause"
    status = errors.to_status(
        errors.CommandFailed("xl create failed", host="xen1", command="xl create", exit_code=1, stderr=stderr)
    )
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert info.metadata["stderr"].endswith("libxl: error: the actual cause")
    assert len(info.metadata["stderr"]) <= errors.MAX_METADATA_VALUE_CHARS
    assert len(status.SerializeToString()) < 4096


def test_transport_errors_without_details_map_by_code() -> None:
    received = errors.from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused", ()))
    assert isinstance(received, errors.Unavailable)
    assert (received.message, received.reason, received.metadata) == ("connection refused", "UNAVAILABLE", {})


def test_codes_outside_the_table_give_a_plain_onexen_error() -> None:
    received = errors.from_rpc_error(FakeRpcError(grpc.StatusCode.PERMISSION_DENIED, "no", ()))
    assert type(received) is errors.OnexenError
    assert received.reason == "PERMISSION_DENIED"


def test_details_that_contradict_the_call_are_ignored() -> None:
    lying = status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0], message="other")
    trailing = (("grpc-status-details-bin", lying.SerializeToString()),)
    received = errors.from_rpc_error(FakeRpcError(grpc.StatusCode.INTERNAL, "boom", trailing))
    assert isinstance(received, errors.Internal)
    assert received.message == "boom"
