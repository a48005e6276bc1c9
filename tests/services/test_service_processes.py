"""The three services as real processes: start on free ports, health, reflection, a refused
input, and SIGTERM draining to exit status 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from onexen.runtime import errors
from onexen.v1 import executor_pb2, executor_pb2_grpc, monitor_pb2, monitor_pb2_grpc

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
GRPCURL = Path(sys.executable).parent / "grpcurl"
GRACE_SECONDS = 2.0
# The service-specific flags docker-compose.yml and the stack launcher pass: the
# skeletons must accept them already.
COMPOSE_FLAGS = {
    "translator": [],
    "executor": ["--inventory", "/etc/onexen/inventory.toml"],
    "monitor": ["--executor", "executor:50052", "--translator", "translator:50051"],
}
SERVICES = {
    "translator": "onexen.v1.TranslatorService",
    "executor": "onexen.v1.ExecutorService",
    "monitor": "onexen.v1.MonitorService",
}


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    port: int = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def service_name(self) -> str:
        return SERVICES[self.name]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]


def spawn(name: str, directory: Path) -> ServiceProcess:
    log_path = directory / f"{name}.log"
    log_file = log_path.open("wb")
    environ = {key: value for key, value in os.environ.items() if not key.startswith("ONEXEN_")}
    environ["PYTHONPATH"] = str(REPO)
    argv = [
        sys.executable,
        "-m",
        f"services.{name}.main",
        "--port",
        "0",
        "--grace-seconds",
        str(GRACE_SECONDS),
    ]
    process = subprocess.Popen(argv, cwd=REPO, env=environ, stdout=subprocess.DEVNULL, stderr=log_file)
    return ServiceProcess(name, process, log_path, log_file)


def wait_until_serving(service: ServiceProcess, timeout: float = 30) -> None:
    """Its stderr says where it listens: the 'serving' event carries the bound port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in service.events() if service.log_path.stat().st_size else ():
            if event.get("event") == "serving":
                service.port = int(event["port"])
                return
        if service.process.poll() is not None:
            raise AssertionError(
                f"{service.name} exited {service.process.returncode}: {service.log_path.read_text()}"
            )
        time.sleep(0.05)
    raise AssertionError(f"{service.name} did not log 'serving' in {timeout} s")


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServiceProcess]]:
    directory = tmp_path_factory.mktemp("services")
    started = {name: spawn(name, directory) for name in SERVICES}
    try:
        for service in started.values():
            wait_until_serving(service)
        yield started
    finally:
        for service in started.values():
            if service.process.poll() is None:
                service.process.kill()
                service.process.wait(timeout=10)
            service.log_file.close()


async def test_each_service_is_serving(services: dict[str, ServiceProcess]) -> None:
    for service in services.values():
        async with grpc.aio.insecure_channel(service.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", service.service_name):
                response = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                assert response.status == health_pb2.HealthCheckResponse.SERVING, (service.name, name)


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    if not GRPCURL.exists():
        pytest.skip(f"no grpcurl at {GRPCURL}")
    return subprocess.run([str(GRPCURL), *args], capture_output=True, text=True, timeout=20, check=False)


def test_grpcurl_lists_each_service_by_reflection(services: dict[str, ServiceProcess]) -> None:
    for service in services.values():
        listed = grpcurl("-plaintext", service.target, "list")
        assert listed.returncode == 0, listed.stderr
        assert set(listed.stdout.split()) == {
            service.service_name,
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        }


def test_grpcurl_gets_invalid_argument_with_the_field_violation(services: dict[str, ServiceProcess]) -> None:
    translator = services["translator"]
    answer = grpcurl(
        "-plaintext", "-format-error", "-d", '{"vm_xml": ""}', translator.target,
        "onexen.v1.TranslatorService/Translate",
    )  # fmt: skip
    assert answer.returncode == 64 + grpc.StatusCode.INVALID_ARGUMENT.value[0], answer.stderr
    status = json.loads(answer.stderr)  # grpcurl writes the error status to stderr
    assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    (bad_request,) = [d for d in status["details"] if d["@type"].endswith("google.rpc.BadRequest")]
    assert bad_request["field_violations"] == [
        {
            "field": "vm_xml",
            "description": "vm_xml is empty: pass the VM XML oned writes to the deployment file",
        }
    ]


async def test_executor_and_monitor_refuse_an_empty_host(services: dict[str, ServiceProcess]) -> None:
    async with grpc.aio.insecure_channel(services["executor"].target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await executor_pb2_grpc.ExecutorServiceStub(channel).Probe(executor_pb2.ProbeRequest(), timeout=5)
    refused = errors.from_rpc_error(caught.value)
    assert isinstance(refused, errors.InvalidArgument)
    assert [v.field for v in refused.violations] == ["host"]

    async with grpc.aio.insecure_channel(services["monitor"].target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await monitor_pb2_grpc.MonitorServiceStub(channel).AddHost(
                monitor_pb2.AddHostRequest(), timeout=5
            )
    status = rpc_status.from_call(caught.value)
    bad_request = error_details_pb2.BadRequest()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == ["host_name"]


async def test_an_unreachable_host_is_unavailable_through_the_process(
    services: dict[str, ServiceProcess],
) -> None:
    # A host outside the inventory is reached by its name; `.invalid` never resolves.
    async with grpc.aio.insecure_channel(services["executor"].target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await executor_pb2_grpc.ExecutorServiceStub(channel).Probe(
                executor_pb2.ProbeRequest(host="xen1.invalid"), timeout=20
            )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "xen1.invalid" in caught.value.details()


async def drain_watch(service: ServiceProcess) -> list[str]:
    """Hold a Health/Watch open (a call in flight), SIGTERM the process, read to the end."""
    seen: list[str] = []
    async with grpc.aio.insecure_channel(service.target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name((await watch.read()).status))
        service.process.send_signal(signal.SIGTERM)
        try:
            while (response := await watch.read()) is not grpc.aio.EOF:
                seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
        except grpc.aio.AioRpcError as ended:
            seen.append(ended.code().name)
    return seen


# Last in this module: it stops the module's processes.
async def test_sigterm_drains_and_exits_zero_within_the_grace(services: dict[str, ServiceProcess]) -> None:
    started = time.monotonic()
    results = await asyncio.gather(*(drain_watch(service) for service in services.values()))
    for service, seen in zip(services.values(), results, strict=True):
        assert seen[:2] == ["SERVING", "NOT_SERVING"], (service.name, seen)
        assert seen[2] in {"CANCELLED", "UNAVAILABLE"}, (service.name, seen)  # a clean status, not a hang
        assert await asyncio.to_thread(service.process.wait, GRACE_SECONDS + 5) == 0
        names = [e["event"] for e in service.events()]  # every line of stderr is JSON
        assert names[-1] == "stopped" and "draining" in names
    assert time.monotonic() - started < GRACE_SECONDS + 5
