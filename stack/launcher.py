"""Start and stop a whole local onexen stack: simulated Xen hosts behind real sshd, then
the three services as separate processes, each waited for until its health check says
SERVING. Stops exactly what it started, in reverse order."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.executor.inventory import render_inventory
from simxen.host import SimHost

SERVICES: dict[str, int] = {"translator": 50051, "executor": 50052, "monitor": 50053}
FULL_NAMES = {
    "translator": "onexen.v1.TranslatorService",
    "executor": "onexen.v1.ExecutorService",
    "monitor": "onexen.v1.MonitorService",
}


class StackError(RuntimeError):
    """The stack could not start; the message names the part and points at its log."""


@dataclass
class ServiceProcess:
    name: str
    address: str
    log_path: Path
    process: subprocess.Popen[bytes]


@dataclass
class Stack:
    workdir: Path
    host_names: Sequence[str] = ("xen1", "xen2")
    ports: dict[str, int] = field(default_factory=lambda: dict(SERVICES))
    hosts: list[SimHost] = field(default_factory=list)
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    @property
    def stack_file(self) -> Path:
        return self.workdir / "stack.json"

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        # A fresh start: domains left by an earlier run would only confuse. The hosts share
        # one workdir so they trust each other's host keys, as a cluster's hosts do for migration.
        shutil.rmtree(self.workdir / "hosts", ignore_errors=True)
        for name in self.host_names:
            self.hosts.append(SimHost.start(self.workdir / "hosts", name=name))
        self.datastores.mkdir(exist_ok=True)
        (self.workdir / "remotes").mkdir(exist_ok=True)
        inventory = self.workdir / "inventory.toml"
        inventory.write_text(self._inventory_text())
        for name, port in self.ports.items():
            extra = {
                "executor": ["--inventory", str(inventory)],
                "monitor": [
                    "--executor",
                    f"127.0.0.1:{self.ports['executor']}",
                    "--translator",
                    f"127.0.0.1:{self.ports['translator']}",
                ],
            }.get(name, [])
            self.services[name] = self._spawn(name, port, extra)
        for service in self.services.values():
            wait_serving(service, timeout=30)
        self.stack_file.write_text(json.dumps(self.describe(), indent=2) + "\n")

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            _terminate(service.process)
        self.services.clear()
        for host in reversed(self.hosts):
            host.stop()
        self.hosts.clear()
        self.stack_file.unlink(missing_ok=True)

    def describe(self) -> dict[str, object]:
        """What `make up` writes to .onexen/stack.json for tools and tests."""
        return {
            "services": {name: s.address for name, s in self.services.items()},
            "logs": {name: str(s.log_path) for name, s in self.services.items()},
            "inventory": str(self.workdir / "inventory.toml"),
            "datastores": str(self.datastores),
            "hosts": [
                {
                    "name": h.name,
                    "address": h.address,
                    "port": h.port,
                    "user": h.user,
                    "key": str(h.key_path),
                    "known_hosts": str(h.known_hosts_path),
                    "state_dir": str(h.state_dir),
                }
                for h in self.hosts
            ],
        }

    @property
    def datastores(self) -> Path:
        """DATASTORE_LOCATION of the simulated hosts (they share this machine's disk)."""
        return self.workdir / "datastores"

    def _inventory_text(self) -> str:
        first = self.hosts[0]
        defaults = {
            "user": first.user,
            "key": str(first.key_path),
            "known_hosts": str(first.cluster_known_hosts_path),
            "SHUTDOWN_TIMEOUT": 30,
            "datastore_roots": [str(self.datastores)],
            "remote_dir": str(self.workdir / "remotes"),
            # The simulated sudo keeps PATH, so xl's migration ssh is the host's own
            # (which knows the other hosts); no `su - oneadmin` as on a real cluster.
            "migration_via_su": False,
            "migration_key": str(first.key_path),
            "migration_known_hosts": str(first.cluster_known_hosts_path),
        }
        hosts = {
            h.name: {
                "address": h.address,
                "port": h.port,
                "XM_PATH": str(h.xl_path),
                "xentop_path": str(h.xentop_path),
            }
            for h in self.hosts
        }
        return render_inventory(defaults, hosts)

    def _spawn(self, name: str, port: int, extra: list[str]) -> ServiceProcess:
        log_path = self.workdir / "logs" / f"{name}.log"
        log = log_path.open("ab")
        command = [sys.executable, "-m", f"services.{name}.main", "--port", str(port), *extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()
        return ServiceProcess(name=name, address=f"127.0.0.1:{port}", log_path=log_path, process=process)


def wait_serving(service: ServiceProcess, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    with grpc.insecure_channel(service.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                raise StackError(
                    f"{service.name} exited with status {service.process.returncode} while starting; "
                    f"see {service.log_path}:\n{_tail(service.log_path)}"
                )
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=FULL_NAMES[service.name]), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last_error = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                last_error = exc.code().name
            time.sleep(0.1)
    raise StackError(f"{service.name} at {service.address} not SERVING after {timeout:.0f}s ({last_error})")


def _terminate(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
