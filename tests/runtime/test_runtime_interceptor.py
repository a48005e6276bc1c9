"""What every call gets from the interceptor, seen from a real client over a real socket."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import structlog
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from runtime_helpers import LogCapture, Scripted

from onexen.runtime import errors
from onexen.runtime.interceptor import REQUEST_ID_KEY, outgoing_metadata
from onexen.v1 import monitor_pb2, monitor_pb2_grpc, translator_pb2
from onexen.v1.translator_pb2_grpc import TranslatorServiceStub

TRANSLATE = "/onexen.v1.TranslatorService/Translate"


def request(command: str) -> translator_pb2.TranslateRequest:
    return translator_pb2.TranslateRequest(vm_xml=command)


def domain_error(cls: type[errors.OnexenError]) -> errors.OnexenError:
    if cls is errors.InvalidArgument:
        return errors.InvalidArgument.for_field("vm_xml", "vm_xml is empty")
    if cls is errors.CommandFailed:
        return errors.CommandFailed(
            "xl create failed on xen1",
            host="xen1",
            command="xl create /tmp/d",
            exit_code=3,
            stderr="no memory",
        )
    return cls(f"{cls.__name__} on purpose", reason="ON_PURPOSE", metadata={"host": "xen1"})


@pytest.mark.parametrize("cls", list(errors.STATUS_FOR), ids=lambda cls: cls.__name__)
async def test_each_domain_error_reaches_the_client_as_its_code_with_details(
    cls: type[errors.OnexenError], scripted: Scripted, translator: TranslatorServiceStub, logs: LogCapture
) -> None:
    sent = scripted.translator.domain_error = domain_error(cls)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await translator.Translate(request("raise"))
    assert caught.value.code() == errors.STATUS_FOR[cls]
    assert caught.value.details() == sent.message

    status = rpc_status.from_call(caught.value)
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    info = error_details_pb2.ErrorInfo()
    infos[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (sent.reason, "onexen.v1", sent.metadata)

    received = errors.from_rpc_error(caught.value)
    assert type(received) is cls
    assert (received.message, received.reason, received.metadata) == (
        sent.message,
        sent.reason,
        sent.metadata,
    )

    (event,) = await logs.wait_for_rpc_events(TRANSLATE, 1)
    assert (event["code"], event["reason"]) == (errors.STATUS_FOR[cls].name, sent.reason)


async def test_invalid_argument_field_violations_decode_with_rpc_status(
    scripted: Scripted, translator: TranslatorServiceStub
) -> None:
    scripted.translator.domain_error = errors.InvalidArgument(
        "two fields are wrong",
        [errors.FieldViolation("vm_xml", "not XML"), errors.FieldViolation("defaults", "unknown key FOO")],
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await translator.Translate(request("raise"))
    status = rpc_status.from_call(caught.value)
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("vm_xml", "not XML"),
        ("defaults", "unknown key FOO"),
    ]
    received = errors.from_rpc_error(caught.value)
    assert isinstance(received, errors.InvalidArgument)
    assert [v.field for v in received.violations] == ["vm_xml", "defaults"]


async def test_a_huge_stderr_still_arrives_as_a_command_failure(
    scripted: Scripted, translator: TranslatorServiceStub
) -> None:
    stderr = "x" * 200_000 + "\nlibxl: error: the real cause"
    scripted.translator.domain_error = errors.CommandFailed(
        "xl create failed", host="xen1", command="xl create", exit_code=1, stderr=stderr
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await translator.Translate(request("raise"))
    received = errors.from_rpc_error(caught.value)
    assert isinstance(received, errors.CommandFailed)
    assert received.code == grpc.StatusCode.FAILED_PRECONDITION
    assert received.exit_code == 1 and received.stderr.endswith("libxl: error: the real cause")


async def test_an_unexpected_exception_is_internal_without_its_traceback(
    translator: TranslatorServiceStub, logs: LogCapture
) -> None:
    call = translator.Translate(request("crash"), metadata=((REQUEST_ID_KEY, "crash-1"),))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    message = caught.value.details()
    assert "crash-1" in message
    for leak in ("Traceback", "secret internals", "RuntimeError", ".py"):
        assert leak not in message
    received = errors.from_rpc_error(caught.value)
    assert isinstance(received, errors.Internal) and received.reason == "INTERNAL"

    (event,) = await logs.wait_for_rpc_events(TRANSLATE, 1)
    assert (event["code"], event["level"], event["request_id"]) == ("INTERNAL", "error", "crash-1")
    frames = event["exception"]
    assert frames[0]["exc_type"] == "RuntimeError" and "secret internals" in frames[0]["exc_value"]
    assert logs.stream.getvalue().count("secret internals") == 1
    assert "hunter2" not in logs.stream.getvalue()


async def test_an_expired_deadline_cancels_the_handler_and_is_logged_once(
    scripted: Scripted, translator: TranslatorServiceStub, logs: LogCapture
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await translator.Translate(request("sleep:30"), timeout=0.3)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(scripted.translator.cancelled.wait(), timeout=3)
    (event,) = await logs.wait_for_rpc_events(TRANSLATE, 1)
    assert event["code"] == "DEADLINE_EXCEEDED" and event["level"] == "warning"
    assert 250 <= event["duration_ms"] < 3000


async def test_a_client_that_gives_up_is_logged_as_cancelled(
    scripted: Scripted, translator: TranslatorServiceStub, logs: LogCapture
) -> None:
    call = translator.Translate(request("sleep:30"))
    await asyncio.sleep(0.2)
    call.cancel()
    await asyncio.wait_for(scripted.translator.cancelled.wait(), timeout=3)
    (event,) = await logs.wait_for_rpc_events(TRANSLATE, 1)
    assert event["code"] == "CANCELLED"


async def test_the_request_id_is_echoed_and_bound_for_the_handler(
    translator: TranslatorServiceStub, logs: LogCapture
) -> None:
    call = translator.Translate(request("request-id"), metadata=((REQUEST_ID_KEY, "adapter-42"),))
    response = await call
    assert response.config == "adapter-42"
    assert (REQUEST_ID_KEY, "adapter-42") in tuple(await call.trailing_metadata())

    made_up = translator.Translate(
        request("request-id"), metadata=((REQUEST_ID_KEY, "not a token; " + "x" * 200),)
    )
    generated = (await made_up).config
    assert len(generated) == 32 and (REQUEST_ID_KEY, generated) in tuple(await made_up.trailing_metadata())

    events = await logs.wait_for_rpc_events(TRANSLATE, 2)
    assert [e["request_id"] for e in events] == ["adapter-42", generated]


async def test_the_request_id_travels_with_errors_too(
    scripted: Scripted, translator: TranslatorServiceStub
) -> None:
    scripted.translator.domain_error = errors.NotFound("no such domain")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await translator.Translate(request("raise"), metadata=((REQUEST_ID_KEY, "err-7"),))
    assert (REQUEST_ID_KEY, "err-7") in tuple(caught.value.trailing_metadata())


async def test_run_blocking_carries_the_request_id_into_the_thread(translator: TranslatorServiceStub) -> None:
    response = await translator.Translate(
        request("request-id-in-thread"), metadata=((REQUEST_ID_KEY, "thread-1"),)
    )
    assert response.config == "thread-1"


async def test_deadline_seconds_is_what_the_client_left(translator: TranslatorServiceStub) -> None:
    assert float((await translator.Translate(request("deadline"), timeout=20)).config) == pytest.approx(
        20, abs=2
    )
    assert (await translator.Translate(request("deadline"))).config == "None"


async def test_a_stream_is_logged_once_when_it_ends(channel: grpc.aio.Channel, logs: LogCapture) -> None:
    watch = monitor_pb2_grpc.MonitorServiceStub(channel).Watch
    events = [response.event.host_id async for response in watch(monitor_pb2.WatchRequest())]
    assert events == [0, 1, 2]
    (event,) = await logs.wait_for_rpc_events("/Watch", 1)
    assert event["code"] == "OK"

    failing = watch(monitor_pb2.WatchRequest(host_id=404))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in failing:
            pass
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert errors.from_rpc_error(caught.value).reason == "HOST_NOT_WATCHED"
    assert [e["code"] for e in await logs.wait_for_rpc_events("/Watch", 2)] == ["OK", "NOT_FOUND"]


async def test_every_call_is_logged_exactly_once(
    scripted: Scripted, translator: TranslatorServiceStub, logs: LogCapture
) -> None:
    scripted.translator.domain_error = errors.Unavailable("xen1 does not answer")
    commands = ["ok", "raise", "crash", "ok", "request-id"]
    await asyncio.gather(*(translator.Translate(request(c)) for c in commands), return_exceptions=True)
    events = await logs.wait_for_rpc_events(TRANSLATE, len(commands))
    await asyncio.sleep(0.1)
    assert len(logs.rpc_events(TRANSLATE)) == len(commands)
    assert sorted(e["code"] for e in events) == sorted(["OK", "UNAVAILABLE", "INTERNAL", "OK", "OK"])
    assert len({e["request_id"] for e in events}) == len(commands)


async def test_an_unknown_method_is_logged_as_unimplemented(
    channel: grpc.aio.Channel, logs: LogCapture
) -> None:
    call = channel.unary_unary("/onexen.v1.NoSuchService/Nothing")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"")
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    (event,) = await logs.wait_for_rpc_events("/Nothing", 1)
    assert event["code"] == "UNIMPLEMENTED"


def test_outgoing_metadata_passes_the_request_id_on() -> None:
    assert outgoing_metadata() == ()
    with structlog.contextvars.bound_contextvars(request_id="adapter-42"):
        assert outgoing_metadata() == ((REQUEST_ID_KEY, "adapter-42"),)
