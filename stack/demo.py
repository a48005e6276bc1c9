"""`make demo`: the stack started, each part shown working, the stack stopped.

Written for a newcomer reading the terminal: each step says what it shows and the
command an operator would type to see the same thing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from adapter.demo import vm_life
from onexen.v1 import translator_pb2, translator_pb2_grpc
from stack.launcher import FULL_NAMES, Stack


def say(text: str = "") -> None:
    print(text, flush=True)


def step(title: str) -> None:
    say()
    say(f"== {title}")


def run_demo(stack: Stack) -> int:
    step("Starting two simulated Xen hosts (real OpenSSH sshd, simulated xl) and the three services")
    with stack:
        for host in stack.hosts:
            say(
                f"  host {host.name}: sshd on {host.address}:{host.port}, known_hosts {host.known_hosts_path}"
            )
        for name, service in stack.services.items():
            say(f"  {name:<10} listening on {service.address} (log {service.log_path})")

        step("Each service answers grpc.health.v1 and lists itself by server reflection")
        for name, service in stack.services.items():
            with grpc.insecure_channel(service.address) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                status = health.Check(
                    health_pb2.HealthCheckRequest(service=FULL_NAMES[name]), timeout=5
                ).status
            say(f"  {FULL_NAMES[name]}: {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")
            say(f"  $ grpcurl -plaintext {service.address} list")
            for line in grpcurl("-plaintext", service.address, "list"):
                say(f"    {line}")

        step("Each simulated host answers `xl info` over real SSH, host key verified")
        for host in stack.hosts:
            command = [
                "ssh", "-i", str(host.key_path), "-p", str(host.port),
                "-o", f"UserKnownHostsFile={host.known_hosts_path}", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes", f"{host.user}@{host.address}", "sudo", "-n", "xl", "info",
            ]  # fmt: skip
            say(f"  $ ssh -p {host.port} {host.user}@{host.address} sudo -n xl info")
            result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
            if result.returncode != 0:
                say(f"    failed ({result.returncode}): {result.stderr.strip()}")
                return 1
            wanted = ("host", "nr_cpus", "total_memory", "free_memory", "xen_version", "xen_scheduler")
            for line in result.stdout.splitlines():
                if line.split(":")[0].strip() in wanted:
                    say(f"    {line}")

        step("Bad input gets a clear error: INVALID_ARGUMENT naming the field")
        translator = stack.services["translator"].address
        request = '{"vm_xml": ""}'
        say(f"  $ grpcurl -plaintext -d '{request}' {translator} onexen.v1.TranslatorService/Translate")
        with grpc.insecure_channel(translator) as channel:
            stub = translator_pb2_grpc.TranslatorServiceStub(channel)
            try:
                stub.Translate(translator_pb2.TranslateRequest(vm_xml=""), timeout=5)
                say("    unexpectedly accepted")
                return 1
            except grpc.RpcError as err:
                say(f"    {err.code().name}: {err.details()}")
                status = rpc_status.from_call(err)
                for detail in status.details if status else []:
                    say(f"    detail: {detail.type_url.rsplit('/', 1)[-1]}")

        step("A VM's whole life, driven as OpenNebula drives it (one_vmm_grpc and one_im_grpc)")
        if vm_life(stack, say) != 0:
            say("  the VM's life did not go as expected: see the lines above and the service logs")
            return 1

        step("Stopping everything that was started")
    say("  all services and hosts stopped; demo done")
    return 0


def grpcurl(*args: str) -> list[str]:
    binary = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    result = subprocess.run([binary, *args], capture_output=True, text=True, timeout=30, check=False)
    output = result.stdout if result.returncode == 0 else result.stderr
    return output.strip().splitlines()
