"""The server around the servicers: health, reflection, metrics, TLS, limits, draining."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from runtime_helpers import MONITOR, TRANSLATOR, LogCapture, Pki, Scripted, fetch, make_config

from onexen.runtime.config import ChannelConfig
from onexen.runtime.server import RunningServer, StartupError, run, started_server
from onexen.runtime.transport import open_channel
from onexen.v1 import translator_pb2
from onexen.v1.translator_pb2_grpc import TranslatorServiceStub

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def check(channel: grpc.aio.Channel, service: str = "") -> int:
    response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
    return int(response.status)


async def test_health_is_serving_for_the_server_and_each_service(channel: grpc.aio.Channel) -> None:
    assert [await check(channel, name) for name in ("", TRANSLATOR, MONITOR)] == [SERVING] * 3
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await check(channel, "onexen.v1.NoSuchService")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_health_turns_not_serving_while_draining(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=TRANSLATOR))
    assert (await watch.read()).status == SERVING
    await server.enter_drain()
    assert (await watch.read()).status == NOT_SERVING
    assert [await check(channel, name) for name in ("", TRANSLATOR)] == [NOT_SERVING] * 2
    watch.cancel()


async def test_reflection_lists_the_services(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    async for response in stub.ServerReflectionInfo(requests):
        names = {service.name for service in response.list_services_response.service}
        break
    assert names == {
        TRANSLATOR,
        MONITOR,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


async def test_metrics_are_exposed_and_count_calls(scripted: Scripted, logs: LogCapture) -> None:
    async with (
        started_server(make_config(metrics_port=free_port()), scripted.add_to_server) as server,
        grpc.aio.insecure_channel(server.target) as channel,
    ):
        stub = TranslatorServiceStub(channel)
        await stub.Translate(translator_pb2.TranslateRequest(vm_xml="ok"))
        await stub.Translate(translator_pb2.TranslateRequest(vm_xml="ok"))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Translate(translator_pb2.TranslateRequest(vm_xml="crash"))
        await logs.wait_for_rpc_events("/Translate", 3)
        text = await asyncio.to_thread(fetch, f"http://127.0.0.1:{server.metrics_port}/metrics")
    labels = 'method="Translate",service="onexen.v1.TranslatorService"'
    assert f'onexen_rpc_calls_total{{code="OK",{labels}}} 2.0' in text
    assert f'onexen_rpc_calls_total{{code="INTERNAL",{labels}}} 1.0' in text
    assert f'onexen_rpc_errors_total{{code="INTERNAL",{labels}}} 1.0' in text
    assert f"onexen_rpc_duration_seconds_count{{{labels}}} 3.0" in text
    assert "process_resident_memory_bytes" in text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def tls_server(scripted: Scripted, logs: LogCapture, pki: Pki) -> AsyncIterator[RunningServer]:
    config = make_config(tls_cert=pki.server_cert, tls_key=pki.server_key)
    async with started_server(config, scripted.add_to_server) as running:
        yield running


@pytest.fixture
async def mtls_server(scripted: Scripted, logs: LogCapture, pki: Pki) -> AsyncIterator[RunningServer]:
    config = make_config(tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca_cert)
    async with started_server(config, scripted.add_to_server) as running:
        yield running


async def translate_over(config: ChannelConfig) -> str:
    async with open_channel(config) as channel:
        response = await TranslatorServiceStub(channel).Translate(
            translator_pb2.TranslateRequest(vm_xml="ok"), timeout=5
        )
    return str(response.config)


async def test_tls(tls_server: RunningServer, pki: Pki) -> None:
    assert await translate_over(ChannelConfig(tls_server.target, ca_cert=pki.ca_cert)) == "ok"
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # a plaintext client gets nowhere
        await translate_over(ChannelConfig(tls_server.target))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_refuses_clients_without_a_certificate_from_the_ca(
    mtls_server: RunningServer, pki: Pki
) -> None:
    trusted = ChannelConfig(
        mtls_server.target, ca_cert=pki.ca_cert, client_cert=pki.client_cert, client_key=pki.client_key
    )
    assert await translate_over(trusted) == "ok"
    anonymous = ChannelConfig(mtls_server.target, ca_cert=pki.ca_cert)
    stranger = ChannelConfig(
        mtls_server.target, ca_cert=pki.ca_cert, client_cert=pki.stranger_cert, client_key=pki.stranger_key
    )
    for refused in (anonymous, stranger):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await translate_over(refused)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_taken_port_fails_the_start(server: RunningServer, scripted: Scripted) -> None:
    with pytest.raises(StartupError, match="cannot listen"):
        async with started_server(make_config(port=server.port), scripted.add_to_server):
            pass


async def test_calls_beyond_the_limit_are_shed(scripted: Scripted, logs: LogCapture) -> None:
    async with (
        started_server(make_config(max_concurrent_rpcs=1), scripted.add_to_server) as server,
        grpc.aio.insecure_channel(server.target) as channel,
    ):
        stub = TranslatorServiceStub(channel)
        slow = stub.Translate(translator_pb2.TranslateRequest(vm_xml="sleep:0.5"))
        await asyncio.sleep(0.1)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Translate(translator_pb2.TranslateRequest(vm_xml="ok"))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await slow).config == "slept"


async def test_stop_lets_calls_in_flight_finish_within_the_grace(
    scripted: Scripted, logs: LogCapture
) -> None:
    async with (
        started_server(make_config(grace_seconds=3), scripted.add_to_server) as server,
        grpc.aio.insecure_channel(server.target) as channel,
    ):
        stub = TranslatorServiceStub(channel)
        in_flight = stub.Translate(translator_pb2.TranslateRequest(vm_xml="sleep:0.5"))
        await asyncio.sleep(0.1)
        stopping = asyncio.create_task(server.stop())
        assert (await in_flight).config == "slept"
        await asyncio.wait_for(stopping, timeout=5)


async def test_stop_cancels_calls_that_outlive_the_grace(scripted: Scripted, logs: LogCapture) -> None:
    async with (
        started_server(make_config(grace_seconds=0.2), scripted.add_to_server) as server,
        grpc.aio.insecure_channel(server.target) as channel,
    ):
        stub = TranslatorServiceStub(channel)
        in_flight = stub.Translate(translator_pb2.TranslateRequest(vm_xml="sleep:30"))
        await asyncio.sleep(0.1)
        await asyncio.wait_for(server.stop(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await in_flight
    assert caught.value.code() in {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE}
    assert scripted.translator.cancelled.is_set()


def test_run_logs_the_failure_and_exits_1_when_it_cannot_listen(
    logs: LogCapture, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as exited:
            run(make_config(port=taken.getsockname()[1]), lambda server: ())
    assert exited.value.code == 1
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert events[-1]["event"] == "startup_failed" and "cannot listen" in events[-1]["error"]
