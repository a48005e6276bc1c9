"""onexen.v1.ExecutorService: gRPC glue between requests and actions.

Each RPC checks its request fields (validate.py: a refused value never reaches a host), turns
the call's deadline into the action's budget, runs the action (actions.py) and writes one
`action` log event (host, vm id, domain, duration, outcome), never a config, a key or
anything a script got on stdin.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeAlias

import grpc

from onexen.runtime.errors import OnexenError
from onexen.runtime.interceptor import deadline_seconds
from onexen.runtime.logging import get_logger
from onexen.v1 import executor_pb2, executor_pb2_grpc
from services.executor import parse, validate
from services.executor.actions import Actions, Budget
from services.executor.inventory import HostSettings, Inventory
from services.executor.runner import SshRunner
from services.executor.ssh import Result, SshPool

SERVICE_NAME: str = executor_pb2.DESCRIPTOR.services_by_name["ExecutorService"].full_name
# Blocking SSH work runs on this many threads: enough for 50 hosts with 8 busy channels each.
DEFAULT_SSH_THREADS = 400
# Output kept per command in a reply (the error details keep their own, shorter, tail).
MAX_REPLY_OUTPUT_CHARS = 64 * 1024

Context: TypeAlias = grpc.aio.ServicerContext

_STEPS = {
    executor_pb2.NETWORK_STEP_PRE: "pre",
    executor_pb2.NETWORK_STEP_POST: "post",
    executor_pb2.NETWORK_STEP_CLEAN: "clean",
    executor_pb2.NETWORK_STEP_UPDATE_SG: "update_sg",
}

_log = get_logger(__name__)


def inventory_host_message(host: HostSettings) -> executor_pb2.InventoryHost:
    """What ListHosts tells about a host: how it is reached and driven, never key material."""
    return executor_pb2.InventoryHost(
        name=host.name,
        address=host.address,
        port=host.port,
        user=host.user,
        xl_path=host.xm_path,
        shutdown_timeout_seconds=host.shutdown_timeout,
        force_destroy=host.force_destroy,
        default_file_prefix=host.default_file_prefix,
        use_sudo=host.use_sudo,
        datastore_roots=list(host.datastore_roots),
    )


def _bounded(text: str) -> str:
    text = parse.redact(text)
    return text if len(text) <= MAX_REPLY_OUTPUT_CHARS else "[...]" + text[-MAX_REPLY_OUTPUT_CHARS:]


def command_output(result: Result) -> executor_pb2.CommandOutput:
    return executor_pb2.CommandOutput(
        command=parse.redact(result.command),
        exit_code=result.exit_code,
        stdout=_bounded(result.stdout),
        stderr=_bounded(result.stderr),
        duration_seconds=result.duration,
    )


def outputs(results: Sequence[Result]) -> list[executor_pb2.CommandOutput]:
    return [command_output(r) for r in results]


def budget(context: Context) -> Budget:
    return Budget.of(deadline_seconds(context))


class ExecutorServicer(executor_pb2_grpc.ExecutorServiceServicer):
    def __init__(self, inventory: Inventory, actions: Actions) -> None:
        self.inventory = inventory
        self.actions = actions

    # ----- glue -----
    def _host(self, name: str, field: str = "host") -> HostSettings:
        return self.inventory.host(validate.host_name(name, field))

    @contextlib.asynccontextmanager
    async def _logged(self, action: str, host: str, vm_id: int, domain: str) -> AsyncIterator[None]:
        started = time.perf_counter()
        outcome = "ok"
        try:
            yield
        except OnexenError as exc:
            outcome = exc.reason
            raise
        except BaseException as exc:
            outcome = type(exc).__name__
            raise
        finally:
            _log.info(
                "action",
                action=action,
                host=host,
                vm_id=vm_id,
                domain=domain,
                outcome=outcome,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )

    # ----- lifecycle -----
    async def Deploy(
        self, request: executor_pb2.DeployRequest, context: Context
    ) -> executor_pb2.DeployResponse:
        host = self._host(request.host)
        domain = validate.config_domain_name(request.config)
        path = validate.path_under(request.remote_path, host.datastore_roots, "remote_path")
        weight = validate.credit_weight(request.cpu_weight, "cpu_weight") if request.cpu_weight else 0
        async with self._logged("deploy", host.name, request.vm_id, domain):
            done = await self.actions.deploy(host.name, request.config, domain, path, weight, budget(context))
        return executor_pb2.DeployResponse(
            domain=done.domain, already_running=done.already_running, outputs=outputs(done.outputs)
        )

    async def Shutdown(
        self, request: executor_pb2.ShutdownRequest, context: Context
    ) -> executor_pb2.ShutdownResponse:
        host = self._host(request.host)
        domain = validate.domain_name(request.domain)
        force = request.force_destroy if request.HasField("force_destroy") else None
        async with self._logged("shutdown", host.name, request.vm_id, domain):
            done = await self.actions.shutdown(
                host.name, domain, request.timeout_seconds, force, budget(context)
            )
        return executor_pb2.ShutdownResponse(destroyed=done.destroyed, outputs=outputs(done.outputs))

    async def Cancel(
        self, request: executor_pb2.CancelRequest, context: Context
    ) -> executor_pb2.CancelResponse:
        host = self._host(request.host)
        domain = validate.domain_name(request.domain)
        async with self._logged("cancel", host.name, request.vm_id, domain):
            done = await self.actions.cancel(host.name, domain, budget(context))
        return executor_pb2.CancelResponse(was_running=done.was_running, outputs=outputs(done.outputs))

    async def Reboot(
        self, request: executor_pb2.RebootRequest, context: Context
    ) -> executor_pb2.RebootResponse:
        host = self._host(request.host)
        domain = validate.domain_name(request.domain)
        async with self._logged("reboot", host.name, request.vm_id, domain):
            done = await self.actions.reboot(host.name, domain, budget(context))
        return executor_pb2.RebootResponse(outputs=outputs(done))

    async def Reset(self, request: executor_pb2.ResetRequest, context: Context) -> executor_pb2.ResetResponse:
        host = self._host(request.host)
        domain = validate.domain_name(request.domain)
        async with self._logged("reset", host.name, request.vm_id, domain):
            done = await self.actions.reboot(host.name, domain, budget(context), force=True)
        return executor_pb2.ResetResponse(outputs=outputs(done))

    async def Save(self, request: executor_pb2.SaveRequest, context: Context) -> executor_pb2.SaveResponse:
        host = self._host(request.host)
        domain = validate.domain_name(request.domain)
        path = validate.path_under(request.checkpoint_path, host.datastore_roots, "checkpoint_path")
        async with self._logged("save", host.name, request.vm_id, domain):
            done = await self.actions.save(host.name, domain, path, budget(context))
        return executor_pb2.SaveResponse(moved_aside_to=done.moved_aside_to, outputs=outputs(done.outputs))

    async def Restore(
        self, request: executor_pb2.RestoreRequest, context: Context
    ) -> executor_pb2.RestoreResponse:
        host = self._host(request.host)
        path = validate.path_under(request.checkpoint_path, host.datastore_roots, "checkpoint_path")
        domain = validate.domain_name(request.domain) if request.domain else ""
        async with self._logged("restore", host.name, request.vm_id, domain):
            done = await self.actions.restore(host.name, path, domain, budget(context))
        return executor_pb2.RestoreResponse(domain=done.domain, outputs=outputs(done.outputs))

    async def Migrate(
        self, request: executor_pb2.MigrateRequest, context: Context
    ) -> executor_pb2.MigrateResponse:
        host = self._host(request.host)
        domain = validate.domain_name(request.domain)
        destination = self._host(request.destination_host, "destination_host")
        async with self._logged("migrate", host.name, request.vm_id, domain):
            done = await self.actions.migrate(host.name, domain, destination.name, budget(context))
        return executor_pb2.MigrateResponse(outputs=outputs(done))

    # ----- devices -----
    async def AttachDisk(
        self, request: executor_pb2.AttachDiskRequest, context: Context
    ) -> executor_pb2.AttachDiskResponse:
        host = self._host(request.host)
        domain = validate.domain_name(request.domain)
        source = validate.path_under(request.source_path, host.datastore_roots, "source_path")
        target = validate.vdev(request.target)
        prefix = validate.disk_prefix(request.driver) if request.driver else ""
        async with self._logged("attach_disk", host.name, request.vm_id, domain):
            done = await self.actions.attach_disk(
                host.name, domain, source=source, target=target, prefix=prefix,
                readonly=request.readonly, cdrom=request.cdrom, budget=budget(context),
            )  # fmt: skip
        return executor_pb2.AttachDiskResponse(disk=done.disk, outputs=outputs(done.outputs))

    async def DetachDisk(
        self, request: executor_pb2.DetachDiskRequest, context: Context
    ) -> executor_pb2.DetachDiskResponse:
        host = self._host(request.host)
        domain = validate.domain_name(request.domain)
        target = validate.vdev(request.target)
        async with self._logged("detach_disk", host.name, request.vm_id, domain):
            done = await self.actions.detach_disk(host.name, domain, target, budget(context))
        return executor_pb2.DetachDiskResponse(outputs=outputs(done))

    async def AttachNic(
        self, request: executor_pb2.AttachNicRequest, context: Context
    ) -> executor_pb2.AttachNicResponse:
        host = self._host(request.host)
        domain = validate.domain_name(request.domain)
        mac = validate.mac(request.mac)
        bridge = validate.interface_name(request.bridge, "bridge")
        model = validate.nic_model(request.model) if request.model else ""
        ip = validate.ip_address(request.ip) if request.ip else ""
        script = validate.vif_script(request.script) if request.script else ""
        vifname = validate.interface_name(request.vifname, "vifname") if request.vifname else ""
        async with self._logged("attach_nic", host.name, request.vm_id, domain):
            done = await self.actions.attach_nic(
                host.name, domain, mac=mac, bridge=bridge, model=model, ip=ip, script=script,
                vifname=vifname, budget=budget(context),
            )  # fmt: skip
        return executor_pb2.AttachNicResponse(nic=done.nic, outputs=outputs(done.outputs))

    async def DetachNic(
        self, request: executor_pb2.DetachNicRequest, context: Context
    ) -> executor_pb2.DetachNicResponse:
        host = self._host(request.host)
        domain = validate.domain_name(request.domain)
        mac = validate.mac(request.mac)
        async with self._logged("detach_nic", host.name, request.vm_id, domain):
            done = await self.actions.detach_nic(host.name, domain, mac, budget(context))
        return executor_pb2.DetachNicResponse(outputs=outputs(done))

    async def SetCredit(
        self, request: executor_pb2.SetCreditRequest, context: Context
    ) -> executor_pb2.SetCreditResponse:
        host = self._host(request.host)
        domain = validate.domain_name(request.domain)
        weight = validate.credit_weight(request.weight)
        cap = validate.credit_cap(request.cap) if request.HasField("cap") else None
        async with self._logged("set_credit", host.name, request.vm_id, domain):
            done = await self.actions.set_credit(host.name, domain, weight, cap, budget(context))
        return executor_pb2.SetCreditResponse(outputs=outputs(done))

    # ----- looking -----
    async def Probe(self, request: executor_pb2.ProbeRequest, context: Context) -> executor_pb2.ProbeResponse:
        host = self._host(request.host)
        paths = [
            validate.path_under(p, host.datastore_roots, f"datastore_paths[{i}]", allow_root=True)
            for i, p in enumerate(request.datastore_paths)
        ]
        sample = request.sample_seconds
        if not 0 <= sample <= 60:
            raise validate.refuse("sample_seconds", f"sample_seconds {sample:g} must lie within 0..60")
        async with self._logged("probe", host.name, -1, ""):
            done = await self.actions.probe(host.name, paths, sample, budget(context))
        return executor_pb2.ProbeResponse(
            host_info=done.host_info,
            domains=done.domains,
            datastores=done.datastores,
            sampled_at=done.sampled_at,
            duration_seconds=done.duration,
        )

    async def GetDomain(
        self, request: executor_pb2.GetDomainRequest, context: Context
    ) -> executor_pb2.GetDomainResponse:
        host = self._host(request.host)
        domain = validate.domain_name(request.domain, allow_domain0=True)
        async with self._logged("get_domain", host.name, -1, domain):
            found = await self.actions.get_domain(host.name, domain, budget(context))
        return executor_pb2.GetDomainResponse(domain=found)

    async def RunNetworkStep(
        self, request: executor_pb2.RunNetworkStepRequest, context: Context
    ) -> executor_pb2.RunNetworkStepResponse:
        host = self._host(request.host)
        driver = validate.vnm_driver(request.driver)
        step = _STEPS.get(request.step)
        if step is None:
            raise validate.refuse("step", "step is unspecified: give one of PRE, POST, CLEAN, UPDATE_SG")
        argument = validate.domain_name(request.argument, "argument") if request.argument else ""
        message = request.driver_message.encode()
        if len(message) > validate.MAX_DRIVER_MESSAGE_BYTES:
            raise validate.refuse(
                "driver_message", f"driver_message is larger than {validate.MAX_DRIVER_MESSAGE_BYTES} bytes"
            )
        # OpenNebula's vnm scripts read the driver message base64-encoded from stdin.
        stdin = base64.b64encode(message) + b"\n"
        async with self._logged(f"network_{step}", host.name, request.vm_id, argument):
            done = await self.actions.network_step(host.name, driver, step, argument, stdin, budget(context))
        return executor_pb2.RunNetworkStepResponse(output=command_output(done))

    async def ListHosts(
        self, request: executor_pb2.ListHostsRequest, context: Context
    ) -> executor_pb2.ListHostsResponse:
        hosts = [inventory_host_message(self.inventory.host(name)) for name in self.inventory.names()]
        return executor_pb2.ListHostsResponse(hosts=hosts)


def ssh_actions(inventory: Inventory, threads: int = DEFAULT_SSH_THREADS) -> tuple[Actions, SshRunner]:
    """Actions over real SSH, on a dedicated thread pool (close the runner to drop the sessions)."""
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ssh")
    runner = SshRunner(pool, SshPool())
    return Actions(inventory, runner), runner


def servicers(
    inventory: Inventory, actions: Actions | None = None
) -> Callable[[grpc.aio.Server], Sequence[str]]:
    """The runtime's `add_servicers` for an executor serving this inventory."""
    if actions is None:
        actions, _ = ssh_actions(inventory)

    def add_to_server(server: grpc.aio.Server) -> Sequence[str]:
        executor_pb2_grpc.add_ExecutorServiceServicer_to_server(ExecutorServicer(inventory, actions), server)
        return (SERVICE_NAME,)

    return add_to_server
