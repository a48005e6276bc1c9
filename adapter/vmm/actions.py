"""Each VM action's step pipeline (spec §1.8), against the ports (gRPC services, local TM).

An action returns its reply: SUCCESS with the info oned expects (DEPLOY: the domain name,
UPDATESG: the security group id first), or FAILURE with one line a user can act on.
What upstream ran as remote vmm scripts over SSH is one ExecutorService call each; the
network steps still run OpenNebula's own vnm scripts on the host (RunNetworkStep), the
transfer-manager steps OpenNebula's tm scripts on this machine.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from adapter.vmm import deployment
from adapter.vmm.deployment import DeployType
from adapter.vmm.message import Device, DriverMessage
from adapter.vmm.ports import Executor, Logger, TransferManager, Translator
from adapter.vmm.scripts import error_block
from adapter.vmm.steps import Kind, Step, StepFailed, error_info, forward_stderr, log_failure, run_steps
from adapter.vmm.tm import TmCommand, parse_tm_commands
from onexen.runtime.errors import OnexenError, Unavailable
from onexen.v1 import executor_pb2, translator_pb2

T = TypeVar("T")

# Unavailable reasons that say the call never reached the host or the service, so a
# retry cannot run an operation twice; CONNECTION_LOST (may or may not have run) is not one.
_RETRYABLE = frozenset({"SERVICE_UNREACHABLE", "HOST_UNREACHABLE", "UNAVAILABLE"})
# The translator only renders text: without -w it still gets a bound.
TRANSLATE_SECONDS = 60.0
MAX_DEPLOYMENT_FILE_BYTES = 16 * 1024 * 1024

NETWORK_STEPS = {
    "pre": executor_pb2.NETWORK_STEP_PRE,
    "post": executor_pb2.NETWORK_STEP_POST,
    "clean": executor_pb2.NETWORK_STEP_CLEAN,
    "update_sg": executor_pb2.NETWORK_STEP_UPDATE_SG,
}

_NO_SNAPSHOTS = "system snapshots are not supported for Xen: xl has no domain snapshots"
UNSUPPORTED: dict[str, str] = {
    "SNAPSHOTCREATE": _NO_SNAPSHOTS,
    "SNAPSHOTREVERT": _NO_SNAPSHOTS,
    "SNAPSHOTDELETE": _NO_SNAPSHOTS,
    "DISKSNAPSHOTCREATE": "Cannot perform a live DISKSNAPSHOTCREATE operation: Xen has no live disk"
    " snapshots; power the VM off and take the snapshot then",
    "DISKSNAPSHOTREVERT": "live disk snapshots are not supported for Xen: power the VM off first",
    "RESIZEDISK": "live disk resize is not supported for Xen: power the VM off and resize the disk then",
    "POLL": "POLL is not used with onexen: VMs are monitored through one_im_grpc and onemonitord",
}


@dataclass(frozen=True)
class Settings:
    timeout: float | None = None  # -w: deadline of each service call and TM script
    retries: int = 0  # -r
    deploy_type: DeployType = "auto"
    defaults: str = ""  # the vmm_exec_xen.conf text
    shutdown_timeout: int = 0  # 0 = the host's SHUTDOWN_TIMEOUT
    retry_pause: float = 1.0


@dataclass(frozen=True)
class Ports:
    executor: Executor
    translator: Translator
    tm: TransferManager


@dataclass(frozen=True)
class Reply:
    result: Literal["SUCCESS", "FAILURE"]
    info: str = "-"

    @classmethod
    def failure(cls, info: str) -> Reply:
        return cls("FAILURE", info)


class _HasOutputs(Protocol):
    @property
    def outputs(self) -> Sequence[executor_pb2.CommandOutput]: ...


R = TypeVar("R", bound=_HasOutputs)


def _with_fallback(steps: list[Step], fallback: tuple[Step, ...]) -> list[Step]:
    return [Step(s.name, s.kind, s.run, on_failure=fallback, no_fail=s.no_fail) for s in steps]


@dataclass
class ActionRun:
    """One action on one VM: builds its pipeline from the message and runs it."""

    action: str
    vm_id: int
    message: DriverMessage
    ports: Ports
    settings: Settings
    log: Logger
    info: str = "-"  # the SUCCESS info
    domain: str = field(default="")  # the domain the action made or acts on, once known

    async def run(self) -> Reply:
        if self.action in UNSUPPORTED:
            return Reply.failure(UNSUPPORTED[self.action])
        build = PIPELINES.get(self.action)
        if build is None:
            return Reply.failure(f"{self.action} is not supported by the onexen Xen driver (one_vmm_grpc)")
        try:
            steps = await build(self)
        except StepFailed as exc:
            return Reply.failure(exc.info)
        failed = await run_steps(steps, self.log)
        return Reply.failure(failed) if failed is not None else Reply("SUCCESS", self.info)

    # ------------------------------------------------------------------ what the message holds

    @property
    def tag(self) -> str:
        return f"vm{self.vm_id}-{self.action.lower()}"

    def need(self, value: str, what: str) -> str:
        if not value:
            raise StepFailed(f"Cannot perform {self.action}, expecting {what} in the driver message")
        return value

    @property
    def host(self) -> str:
        return self.need(self.message.host, "HOST")

    @property
    def deploy_id(self) -> str:
        return self.need(self.message.deploy_id, "DEPLOY_ID")

    @property
    def timeout(self) -> float | None:
        return self.settings.timeout

    # ------------------------------------------------------------------ executor steps

    async def call(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """A service call, retried -r times (1 s apart) when it never reached a host or service."""
        tries = 0
        while True:
            try:
                return await attempt()
            except Unavailable as exc:
                if tries >= self.settings.retries or exc.reason not in _RETRYABLE:
                    raise
                tries += 1
                self.log("I", f"{what}: {exc.message}; retry {tries} of {self.settings.retries}")
                await asyncio.sleep(self.settings.retry_pause)

    def log_outputs(self, name: str, outputs: Sequence[executor_pb2.CommandOutput]) -> None:
        # A shutdown polls `xl list` until the guest is gone: one line for the run of polls.
        for command, runs in itertools.groupby(outputs, key=lambda o: o.command):
            done = list(runs)
            last = done[-1]
            seconds = sum(o.duration_seconds for o in done)
            times = f"{len(done)} times, last " if len(done) > 1 else ""
            self.log("I", f'{name}: Executed "{command}" ({times}exit {last.exit_code}, {seconds:.2f} s).')

    def executor_step(
        self,
        name: str,
        call: Callable[[], Awaitable[R]],
        *,
        then: Callable[[R], None] | None = None,
        on_failure: tuple[Step, ...] = (),
        no_fail: bool = False,
    ) -> Step:
        """A step that is one ExecutorService call (upstream: one remote vmm script)."""

        async def run() -> None:
            done = await self.call(name, call)
            self.log_outputs(name, done.outputs)
            if then is not None:
                then(done)

        return Step(name, "virtualization", run, on_failure=on_failure, no_fail=no_fail)

    def cancel_step(self, host: str, domain: str, *, no_fail: bool = False) -> Step:
        """`xl destroy`; `domain` "" means the one this action created (known when it runs)."""

        def request() -> executor_pb2.CancelRequest:
            return executor_pb2.CancelRequest(host=host, vm_id=self.vm_id, domain=domain or self.domain)

        def report(done: executor_pb2.CancelResponse) -> None:
            if not done.was_running:
                self.log("I", f"cancel: {domain or self.domain} was not running on {host}")

        return self.executor_step(
            "cancel",
            lambda: self.ports.executor.cancel(request(), timeout=self.timeout, tag=self.tag),
            then=report,
            no_fail=no_fail,
        )

    # ------------------------------------------------------------------ network steps

    def network(
        self, step: str, *, host: str | None = None, argument: str = "", no_fail: bool = False
    ) -> list[Step]:
        """The vnm `step` for every distinct VN_MAD of the VM's NICs; none without NICs."""
        drivers = self.message.network_drivers()
        if not drivers:
            return []
        where = host if host is not None else self.host

        async def run() -> None:
            for driver in drivers:
                await self._network_driver(where, driver, step, argument)

        return [Step(step, "network", run, no_fail=no_fail)]

    async def _network_driver(self, host: str, driver: str, step: str, argument: str) -> None:
        request = executor_pb2.RunNetworkStepRequest(
            host=host,
            vm_id=self.vm_id,
            driver=driver,
            step=NETWORK_STEPS[step],
            # post gets the deploy id; for DEPLOY it is only known once the domain runs.
            argument=argument or (self.domain if step == "post" else ""),
            driver_message=self.message.vm_xml,
        )
        try:
            done = await self.call(
                f"{driver}/{step}",
                lambda: self.ports.executor.run_network_step(request, timeout=self.timeout, tag=self.tag),
            )
        except OnexenError as exc:
            stderr = exc.metadata.get("stderr", "")
            log_failure(self.log, f"{driver}/{step}", exc)
            block = error_block(stderr)
            raise StepFailed(f"{driver}: {block}" if block else f"{driver}: {error_info(exc)}") from None
        forward_stderr(self.log, done.output.stderr)
        self.log("I", f'{step}: Executed "{done.output.command}" (exit {done.output.exit_code}).')

    # ------------------------------------------------------------------ transfer-manager steps

    def tm_commands(self, text: str) -> list[TmCommand]:
        try:
            return parse_tm_commands(text)
        except OnexenError as exc:
            raise StepFailed(f"Cannot perform {self.action}: {exc.message}") from None

    def transfer(
        self,
        commands: Sequence[TmCommand],
        *,
        prefix: str = "",
        stdin: bytes | None = None,
        no_fail: bool = False,
        on_failure: tuple[Step, ...] = (),
    ) -> list[Step]:
        """One step per TM command; `prefix` makes MIGRATE into PREMIGRATE, POSTMIGRATE..."""
        steps = []
        for command in commands:
            action = prefix + command.action

            async def run(command: TmCommand = command, action: str = action) -> None:
                await self._run_tm(action, command, stdin)

            steps.append(
                Step(action.lower(), "transfer manager", run, on_failure=on_failure, no_fail=no_fail)
            )
        return steps

    async def _run_tm(self, action: str, command: TmCommand, stdin: bytes | None) -> None:
        result = await self.ports.tm.run(
            action, command.tm_mad, list(command.args), stdin=stdin, timeout=self.timeout
        )
        forward_stderr(self.log, result.stderr)
        argv = " ".join(result.argv)
        if not result.ok:
            self.log("E", f"Command execution failed (exit code: {result.exit_code}): {argv}")
            lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
            why = error_block(result.stderr) or (lines[-1] if lines else f"exit code {result.exit_code}")
            raise StepFailed(f"{action.lower()} ({command.tm_mad}): {why}")
        self.log("I", f'{action.lower()}: Executed "{argv}".')

    def context_steps(self) -> list[Step]:
        """The TM_COMMAND lines (context, prolog or epilog), as the message gives them."""
        return self.transfer(self.tm_commands(self.message.tm_command))

    def reconfigure_note(self) -> Step:
        async def run() -> None:
            # As the add-on's prereconfigure/reconfigure (no-ops): xl cannot swap a running
            # guest's context CD, so the regenerated one is read at its next boot.
            self.log(
                "I",
                "reconfigure: Xen cannot refresh a running domain's context CD;"
                " the guest reads it at its next boot",
            )

        return Step("reconfigure", "virtualization", run)


# ---------------------------------------------------------------------------- DEPLOY


async def _deploy(a: ActionRun) -> list[Step]:
    path = a.need(a.message.local_deployment_file, "LOCAL_DEPLOYMENT_FILE")
    remote = a.need(a.message.remote_deployment_file, "REMOTE_DEPLOYMENT_FILE")
    host = a.host
    if a.message.vm_id is not None and a.message.vm_id != a.vm_id:
        raise StepFailed(f"the driver message is about VM {a.message.vm_id}, the request about VM {a.vm_id}")
    content = await asyncio.to_thread(_read_deployment_file, path)
    if deployment.content_kind(content, a.settings.deploy_type) == "xml":
        config, weight = await _translate(a, content)
    else:
        config = content
        weight = deployment.xl_credit_weight(config)
        a.domain = deployment.xl_domain_name(config)
    request = executor_pb2.DeployRequest(
        host=host, vm_id=a.vm_id, config=config, remote_path=remote, cpu_weight=weight
    )

    def created(done: executor_pb2.DeployResponse) -> None:
        if done.already_running:
            a.log("I", f"deploy: {done.domain} was already running from this deployment file")
        a.domain = a.info = done.domain

    clean = tuple(a.network("clean"))
    return [
        *a.context_steps(),
        *a.network("pre"),
        a.executor_step(
            "deploy",
            lambda: a.ports.executor.deploy(request, timeout=a.timeout, tag=a.tag),
            then=created,
            on_failure=clean,
        ),
        *_with_fallback(a.network("post"), (a.cancel_step(host, ""), *clean)),
    ]


def _read_deployment_file(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_DEPLOYMENT_FILE_BYTES + 1)
    except OSError as exc:
        raise StepFailed(f"Cannot open deployment file {path}: {exc.strerror}") from None
    if not data.strip():
        raise StepFailed(f"Cannot open deployment file {path}: it is empty")
    if len(data) > MAX_DEPLOYMENT_FILE_BYTES:
        raise StepFailed(f"deployment file {path} is larger than {MAX_DEPLOYMENT_FILE_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


async def _translate(a: ActionRun, vm_xml: str) -> tuple[str, int]:
    """The xl config (and credit weight to set) for the VM XML of a TYPE="xml" deployment file."""
    history = a.message.history
    location = deployment.datastore_location(
        a.message.remote_deployment_file, a.vm_id, history.ds_id if history else ""
    )
    request = translator_pb2.TranslateRequest(
        vm_xml=vm_xml, defaults=deployment.defaults_for(a.settings.defaults, location)
    )
    timeout = a.timeout or TRANSLATE_SECONDS
    try:
        done = await a.call(
            "translate", lambda: a.ports.translator.translate(request, timeout=timeout, tag=a.tag)
        )
    except OnexenError as exc:
        log_failure(a.log, "translate", exc)
        a.log("E", "Failed to execute virtualization driver operation: translate.")
        raise StepFailed(f"the VM template cannot run on Xen: {error_info(exc)}") from None
    for warning in done.warnings:
        a.log("W", f"translate: {warning}")
    a.log("I", f"translate: the VM template became the xl config of {done.domain_name}")
    a.log("I", "Successfully execute virtualization driver operation: translate.")
    a.domain = done.domain_name
    # A weight the config sets itself is applied by xl create.
    return done.config, 0 if deployment.sets_weight(done.config) else done.cpu_weight


# ---------------------------------------------------------------------------- power


async def _shutdown(a: ActionRun) -> list[Step]:
    request = executor_pb2.ShutdownRequest(
        host=a.host, vm_id=a.vm_id, domain=a.deploy_id, timeout_seconds=a.settings.shutdown_timeout
    )

    def report(done: executor_pb2.ShutdownResponse) -> None:
        if done.destroyed:
            a.log("I", f"shutdown: {request.domain} ignored the shutdown; destroyed (FORCE_DESTROY)")

    return [
        a.executor_step(
            "shutdown",
            lambda: a.ports.executor.shutdown(request, timeout=a.timeout, tag=a.tag),
            then=report,
        ),
        *a.network("clean"),
    ]


async def _cancel(a: ActionRun) -> list[Step]:
    return [a.cancel_step(a.host, a.deploy_id), *a.network("clean")]


async def _reboot(a: ActionRun) -> list[Step]:
    request = executor_pb2.RebootRequest(host=a.host, vm_id=a.vm_id, domain=a.deploy_id)
    return [a.executor_step("reboot", lambda: a.ports.executor.reboot(request, timeout=a.timeout, tag=a.tag))]


async def _reset(a: ActionRun) -> list[Step]:
    request = executor_pb2.ResetRequest(host=a.host, vm_id=a.vm_id, domain=a.deploy_id)
    return [a.executor_step("reset", lambda: a.ports.executor.reset(request, timeout=a.timeout, tag=a.tag))]


# ---------------------------------------------------------------------------- save, restore, migrate


async def _save(a: ActionRun) -> list[Step]:
    request = executor_pb2.SaveRequest(
        host=a.host,
        vm_id=a.vm_id,
        domain=a.deploy_id,
        checkpoint_path=a.need(a.message.checkpoint_file, "CHECKPOINT_FILE"),
    )

    def report(done: executor_pb2.SaveResponse) -> None:
        if done.moved_aside_to:
            a.log("I", f"save: Moving old checkpoint file {request.checkpoint_path} to {done.moved_aside_to}")

    return [
        a.executor_step(
            "save", lambda: a.ports.executor.save(request, timeout=a.timeout, tag=a.tag), then=report
        ),
        *a.network("clean"),
    ]


async def _restore(a: ActionRun) -> list[Step]:
    request = executor_pb2.RestoreRequest(
        host=a.host,
        vm_id=a.vm_id,
        checkpoint_path=a.need(a.message.checkpoint_file, "CHECKPOINT_FILE"),
        domain=a.deploy_id,
    )
    a.domain = request.domain
    return [
        *a.context_steps(),
        *a.network("pre"),
        a.executor_step("restore", lambda: a.ports.executor.restore(request, timeout=a.timeout, tag=a.tag)),
        *_with_fallback(a.network("post"), (a.cancel_step(request.host, request.domain),)),
    ]


async def _migrate(a: ActionRun) -> list[Step]:
    source, domain = a.host, a.deploy_id
    destination = a.need(a.message.migr_host, "MIGR_HOST")
    a.domain = domain
    commands = a.tm_commands(a.message.tm_command)[:1]
    # The TM scripts get the VM's XML on stdin, base64, as from the stock driver.
    vm64 = base64.b64encode(a.message.vm_xml.encode()) if a.message.vm_xml else None
    request = executor_pb2.MigrateRequest(
        host=source, vm_id=a.vm_id, domain=domain, destination_host=destination
    )
    failed = tuple(a.transfer(commands, prefix="FAIL", stdin=vm64, no_fail=True))
    return [
        *a.transfer(commands, prefix="PRE", stdin=vm64),
        *a.network("pre", host=destination),
        a.executor_step(
            "migrate",
            lambda: a.ports.executor.migrate(request, timeout=a.timeout, tag=a.tag),
            on_failure=failed,
        ),
        *a.network("clean", host=source, no_fail=True),
        *a.network("post", host=destination, no_fail=True),
        *a.transfer(commands, prefix="POST", stdin=vm64, no_fail=True),
    ]


# ---------------------------------------------------------------------------- disks


def disk_prefix(disk: Device) -> str:
    """The hot-plug prefix: the disk's DRIVER, `phy` for a block device, else "" (the host's default)."""
    driver = disk.get("DRIVER")
    if driver:
        return driver[:-1] if driver.endswith(":") else driver
    # Upstream compared TYPE with lower-case "block" while oned writes BLOCK (spec §2.4).
    return "phy" if disk.get("TYPE").upper() == "BLOCK" else ""


def _attached_disk(a: ActionRun) -> Device:
    disk = a.message.attaching_disk()
    if disk is None or not disk.get("TARGET"):
        raise StepFailed(f"Cannot perform {a.action}, expecting VM/TEMPLATE/DISK[ATTACH='YES']/TARGET")
    return disk


async def _attach_disk(a: ActionRun) -> list[Step]:
    disk = _attached_disk(a)
    a.need(a.message.tm_command, "TM_COMMAND")
    request = executor_pb2.AttachDiskRequest(
        host=a.host,
        vm_id=a.vm_id,
        domain=a.deploy_id,
        source_path=a.need(a.message.disk_target_path, "DISK_TARGET_PATH"),
        target=disk.get("TARGET"),
        driver=disk_prefix(disk),
        readonly=disk.get("READONLY").upper() == "YES",
        cdrom=disk.get("TYPE").upper() == "CDROM",
    )
    rollback = tuple(a.transfer(a.tm_commands(a.message.tm_command_rollback)))
    return [
        *a.context_steps(),
        a.executor_step(
            "attach_disk",
            lambda: a.ports.executor.attach_disk(request, timeout=a.timeout, tag=a.tag),
            on_failure=rollback,
        ),
    ]


async def _detach_disk(a: ActionRun) -> list[Step]:
    disk = _attached_disk(a)
    request = executor_pb2.DetachDiskRequest(
        host=a.host, vm_id=a.vm_id, domain=a.deploy_id, target=disk.get("TARGET")
    )
    return [
        a.executor_step(
            "detach_disk", lambda: a.ports.executor.detach_disk(request, timeout=a.timeout, tag=a.tag)
        ),
        *a.context_steps(),
    ]


# ---------------------------------------------------------------------------- NICs, context, SGs


def _attached_nic(a: ActionRun) -> Device:
    nic = a.message.attaching_nic()
    if nic is None or not nic.get("MAC"):
        raise StepFailed(f"Cannot perform {a.action}, expecting VM/TEMPLATE/NIC[ATTACH='YES']/MAC")
    return nic


async def _attach_nic(a: ActionRun) -> list[Step]:
    nic = _attached_nic(a)
    if not nic.get("BRIDGE"):
        raise StepFailed("Missing VN_MAD, BRIDGE, TARGET or MAC in VM NIC: the new NIC has no BRIDGE")
    host = a.host
    a.domain = a.deploy_id
    request = executor_pb2.AttachNicRequest(
        host=host,
        vm_id=a.vm_id,
        domain=a.domain,
        mac=nic.get("MAC").lower(),
        bridge=nic.get("BRIDGE"),
        model=nic.get("MODEL"),
        ip=nic.get("IP"),
        script=nic.get("SCRIPT"),
    )
    undo_request = executor_pb2.DetachNicRequest(host=host, vm_id=a.vm_id, domain=a.domain, mac=request.mac)
    undo = a.executor_step(
        "detach_nic", lambda: a.ports.executor.detach_nic(undo_request, timeout=a.timeout, tag=a.tag)
    )
    return [
        *a.network("pre"),
        a.executor_step(
            "attach_nic", lambda: a.ports.executor.attach_nic(request, timeout=a.timeout, tag=a.tag)
        ),
        *_with_fallback(a.network("post"), (undo,)),
        *a.context_steps(),
        a.reconfigure_note(),
    ]


async def _detach_nic(a: ActionRun) -> list[Step]:
    nic = _attached_nic(a)
    request = executor_pb2.DetachNicRequest(
        host=a.host, vm_id=a.vm_id, domain=a.deploy_id, mac=nic.get("MAC").lower()
    )
    return [
        a.executor_step(
            "detach_nic", lambda: a.ports.executor.detach_nic(request, timeout=a.timeout, tag=a.tag)
        ),
        *a.network("clean"),
        *a.context_steps(),
        a.reconfigure_note(),
    ]


async def _update_conf(a: ActionRun) -> list[Step]:
    a.need(a.message.host, "HOST")
    return [*a.context_steps(), a.reconfigure_note()]


async def _update_sg(a: ActionRun) -> list[Step]:
    sg_id = a.need(a.message.security_group_id, "SECURITY_GROUP_ID")
    a.info = f"{sg_id} -"

    def with_id(run: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        # oned reads the security group id first on FAILURE too (spec §1.5).
        async def wrapped() -> None:
            try:
                await run()
            except StepFailed as exc:
                raise StepFailed(f"{sg_id} {exc.info}") from None

        return wrapped

    return [Step(s.name, s.kind, with_id(s.run)) for s in a.network("update_sg", argument=a.deploy_id)]


# ---------------------------------------------------------------------------- CLEANUP


async def _cleanup(a: ActionRun) -> list[Step]:
    """Best effort, every step: destroy what may run, undo the network, delete the disks."""
    host = a.host
    steps: list[Step] = []
    if a.message.deploy_id:
        steps.append(a.cancel_step(host, a.message.deploy_id, no_fail=True))
    steps += a.network("clean", no_fail=True)
    if a.message.migr_host:
        if a.message.deploy_id:
            steps.append(a.cancel_step(a.message.migr_host, a.message.deploy_id, no_fail=True))
        steps += a.network("clean", host=a.message.migr_host, no_fail=True)
    steps += a.transfer(a.tm_commands(a.message.tm_command), no_fail=True)
    return steps


PIPELINES: dict[str, Callable[[ActionRun], Awaitable[list[Step]]]] = {
    "DEPLOY": _deploy,
    "SHUTDOWN": _shutdown,
    "CANCEL": _cancel,
    "SAVE": _save,
    "RESTORE": _restore,
    "MIGRATE": _migrate,
    "REBOOT": _reboot,
    "RESET": _reset,
    "ATTACHDISK": _attach_disk,
    "DETACHDISK": _detach_disk,
    "ATTACHNIC": _attach_nic,
    "DETACHNIC": _detach_nic,
    "UPDATECONF": _update_conf,
    "UPDATESG": _update_sg,
    "CLEANUP": _cleanup,
}


def read_defaults(path: Path | None) -> str:
    """The defaults file's text; "" when there is none (a missing file is not an error)."""
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


__all__ = ["PIPELINES", "UNSUPPORTED", "ActionRun", "Kind", "Ports", "Reply", "Settings", "read_defaults"]
