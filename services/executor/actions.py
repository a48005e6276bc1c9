"""What each VM action does on a Xen host, with upstream's semantics and clearer failures.

The actions only decide: which allow-listed commands to run (commands.py), in what order,
and what their results mean. Running them is the `Runner`'s job (SSH in production, a fake
in unit tests). Values arrive validated (validate.py). Every action on a domain holds that
domain's lock, so two actions on one domain never interleave, and every command's time
limit comes from the action's `Budget` (the RPC deadline, less a margin to report in).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from onexen.runtime.errors import CommandFailed, DeadlineExceeded, FailedPrecondition, OnexenError
from onexen.v1 import common_pb2
from services.executor import commands, parse
from services.executor.commands import Command
from services.executor.errors import (
    CheckpointNotFound,
    DeviceBusy,
    DeviceNotFound,
    DomainExists,
    DomainNotFound,
    ShutdownTimedOut,
)
from services.executor.inventory import HostSettings, Inventory
from services.executor.locks import DomainLocks
from services.executor.ssh import Result

# Default time limits (seconds) of each kind of command when the caller set no deadline.
QUERY_SECONDS = 30.0
CREATE_SECONDS = 180.0
CONTROL_SECONDS = 60.0  # destroy, shutdown request, reboot, hot-plug
SAVE_SECONDS = 1800.0  # save, restore: the guest's memory goes to or comes from disk
MIGRATE_SECONDS = 3600.0
FILE_SECONDS = 60.0
NETWORK_STEP_SECONDS = 300.0
# After a shutdown the domain can stay listed ("--ps--") for 1-3 s until xl's monitor
# destroys it (NOTES item 5); without a monitor (after `save -c`, NOTES item 4) it stays
# "---s--" for good. Past this grace a shut-down domain is cleaned up with destroy.
SHUT_DOWN_GRACE_SECONDS = 5.0
CANCEL_WAIT_SECONDS = 30.0
CHECKPOINT_HEAD_BYTES = 1 << 20


class Runner(Protocol):
    """Runs commands and moves files on a host; raises the errors of services.executor.errors."""

    async def run(self, host: HostSettings, command: Command) -> Result: ...

    async def upload(self, host: HostSettings, path: str, data: bytes, *, timeout: float) -> None: ...

    async def read_file(
        self, host: HostSettings, path: str, *, timeout: float, limit: int
    ) -> bytes | None: ...

    async def rename(self, host: HostSettings, source: str, target: str, *, timeout: float) -> bool: ...


def margin(left: float) -> float:
    """Time kept back from the RPC deadline to report what happened before the client gives up."""
    return min(2.0, max(0.5, left * 0.15))


@dataclass(frozen=True)
class Budget:
    """The time an action may take: the RPC deadline (on `clock`), or none."""

    deadline: float | None = None
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def of(cls, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> Budget:
        return cls(None if seconds is None else clock() + seconds, clock)

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    def limit(self, default: float, what: str, host: str) -> float:
        """The time limit of the next step: its default, cut to what the deadline leaves."""
        left = self.left()
        if left is None:
            return default
        usable = left - margin(left)
        if usable < commands.MIN_TIMEOUT:
            raise DeadlineExceeded(
                f"the RPC deadline leaves {max(left, 0):.1f} s: too little to run {what} on Xen host {host}",
                reason="DEADLINE_TOO_SHORT",
                metadata={"host": host, "command": what},
            )
        return min(default, usable)


@dataclass
class Session:
    """One action on one host: runs its commands within the budget and keeps their results."""

    runner: Runner
    host: HostSettings
    budget: Budget
    outputs: list[Result] = field(default_factory=list)

    async def run(self, command: Command) -> Result:
        timeout = self.budget.limit(command.timeout, command.name, self.host.name)
        result = await self.runner.run(self.host, command.with_timeout(timeout))
        self.outputs.append(result)
        return result

    async def run_ok(self, command: Command, domain: str | None = None) -> Result:
        """Run and insist on success: an unknown domain is NOT_FOUND, other failures COMMAND_FAILED."""
        result = await self.run(command)
        if not result.ok:
            if domain is not None and parse.says_no_such_domain(result.stderr):
                raise DomainNotFound(self.host.name, domain, parse.redact(result.stderr))
            raise command_failed(result)
        return result

    async def listed(self, domain: str) -> parse.ListRow | None:
        """The domain's `xl list` row; None when the host has no such domain."""
        result = await self.run(commands.xl_list(self.host, domain, timeout=QUERY_SECONDS))
        if not result.ok:
            if parse.says_no_such_domain(result.stderr):
                return None
            raise command_failed(result)
        rows = parse.xl_list(result.stdout)
        return next((r for r in rows if r.name == domain), None)

    def file_limit(self, what: str) -> float:
        return self.budget.limit(FILE_SECONDS, what, self.host.name)


# What libxl prints while cleaning up after a failure: true, but never the reason. A refused
# `xl create` ends with these three lines, after the line that says why.
_CLEANUP_NOISE = re.compile(
    r"Non-existant domain|Unable to destroy guest|Destruction of domain failed|^Parsing config from "
)
# "libxl: error: libxl_create.c:1296:initiate_domain_create: Domain 3:" says where, not what.
_LIBXL_PREFIX = re.compile(r"^libxl: (error|warning): [\w.]+:\d+:\w+: (Domain \d+:)?")


def stderr_summary(stderr: str) -> str:
    """The lines of a failed command's stderr an operator needs: the cause first, libxl's
    cleanup chatter and source locations left out (the whole stderr stays in the details)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    telling = [_LIBXL_PREFIX.sub("", line) for line in lines if not _CLEANUP_NOISE.search(line)]
    if telling:
        return " / ".join(telling[:4])
    return " / ".join(lines[-3:]) if lines else "nothing on stderr"


def command_failed(result: Result, explanation: str = "") -> CommandFailed:
    stderr = parse.redact(result.stderr)
    tail = stderr_summary(stderr)
    lead = explanation or f"{result.name} failed on Xen host {result.host}"
    return CommandFailed(
        f"{lead} (exit {result.exit_code}): {tail}",
        host=result.host,
        command=result.command,
        exit_code=result.exit_code,
        stderr=stderr,
    )


# ----------------------------------------------------------------------------- outcomes


@dataclass
class DeployOutcome:
    domain: str
    already_running: bool
    outputs: list[Result]


@dataclass
class ShutdownOutcome:
    destroyed: bool
    outputs: list[Result]


@dataclass
class CancelOutcome:
    was_running: bool
    outputs: list[Result]


@dataclass
class SaveOutcome:
    moved_aside_to: str
    outputs: list[Result]


@dataclass
class RestoreOutcome:
    domain: str
    outputs: list[Result]


@dataclass
class DiskOutcome:
    disk: common_pb2.DomainDisk
    outputs: list[Result]


@dataclass
class NicOutcome:
    nic: common_pb2.DomainNic
    outputs: list[Result]


@dataclass
class ProbeOutcome:
    host_info: common_pb2.HostInfo
    domains: list[common_pb2.Domain]
    datastores: list[common_pb2.DatastoreUsage]
    sampled_at: float
    duration: float
    outputs: list[Result]


# ----------------------------------------------------------------------------- the actions


class Actions:
    def __init__(
        self,
        inventory: Inventory,
        runner: Runner,
        *,
        locks: DomainLocks | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll_seconds: float = 1.0,
    ) -> None:
        self.inventory = inventory
        self.runner = runner
        self.locks = locks or DomainLocks()
        self._sleep = sleep
        self._clock = clock
        self._poll_seconds = poll_seconds

    def session(self, host: str, budget: Budget) -> Session:
        return Session(self.runner, self.inventory.host(host), budget)

    @contextlib.asynccontextmanager
    async def _locked(self, *keys: tuple[str, str]) -> AsyncIterator[None]:
        # Sorted, so two actions taking the same pair of locks cannot deadlock.
        async with contextlib.AsyncExitStack() as stack:
            for host, domain in sorted(set(keys)):
                await stack.enter_async_context(self.locks.hold(host, domain))
            yield

    def _poll_delays(self) -> Iterator[float]:
        """Growing pauses between polls: short at first (most waits end within seconds)."""
        delay = min(0.25, self._poll_seconds)
        while True:
            yield delay
            delay = min(delay * 2, self._poll_seconds)

    # ----- deploy -----
    async def deploy(
        self, host: str, config: str, domain: str, remote_path: str, cpu_weight: int, budget: Budget
    ) -> DeployOutcome:
        """Upload the config and `xl create` it; a retry finds the domain already running."""
        s = self.session(host, budget)
        data = config.encode()
        async with self._locked((s.host.name, domain)):
            if await s.listed(domain) is not None:
                existing = await self.runner.read_file(
                    s.host, remote_path, timeout=s.file_limit("sftp get"), limit=len(data) + 1
                )
                if existing == data:
                    return DeployOutcome(domain, True, s.outputs)
                where = "from a different config" if existing is not None else f"but {remote_path} is missing"
                raise DomainExists(s.host.name, domain, f"{where}: refusing to deploy over it")
            await self.runner.upload(s.host, remote_path, data, timeout=s.file_limit("sftp put"))
            created = await s.run(commands.create(s.host, remote_path, timeout=CREATE_SECONDS))
            if not created.ok:
                if parse.says_domain_exists(created.stderr):
                    raise DomainExists(s.host.name, domain, "(created by someone else meanwhile)")
                raise command_failed(created, f"xl create of {domain} failed on Xen host {s.host.name}")
            if cpu_weight:
                # As upstream: a domain that runs with the default weight is still deployed.
                await s.run(commands.sched_credit(s.host, domain, cpu_weight, None, timeout=QUERY_SECONDS))
        return DeployOutcome(domain, False, s.outputs)

    # ----- shutdown, cancel, reboot, reset -----
    async def shutdown(
        self, host: str, domain: str, timeout_seconds: int, force_destroy: bool | None, budget: Budget
    ) -> ShutdownOutcome:
        s = self.session(host, budget)
        wait_for = float(timeout_seconds or s.host.shutdown_timeout)
        force = s.host.force_destroy if force_destroy is None else force_destroy
        async with self._locked((s.host.name, domain)):
            before = await s.listed(domain)
            await s.run_ok(commands.shutdown(s.host, domain, timeout=CONTROL_SECONDS), domain)
            started = self._clock()
            shut_since: float | None = None
            asked_domid = before.domid if before is not None else None
            delays = self._poll_delays()
            while True:
                row = await s.listed(domain)
                now = self._clock()
                if row is None:
                    return ShutdownOutcome(False, s.outputs)
                if asked_domid is not None and row.domid != asked_domid:
                    # A new domid under the same name: the guest was rebooting (a REBOOT just
                    # before this SHUTDOWN), and a Linux guest already going down drops further
                    # requests without a word. Ask the guest it came back as.
                    await s.run_ok(commands.shutdown(s.host, domain, timeout=CONTROL_SECONDS), domain)
                asked_domid = row.domid
                if parse.domain_state(row.flags) == common_pb2.DOMAIN_STATE_SHUTDOWN:
                    shut_since = shut_since if shut_since is not None else now
                    if now - shut_since >= SHUT_DOWN_GRACE_SECONDS:
                        # The guest is down but nothing reaps it (no xl monitor): finishing
                        # that is cleanup, not forcing.
                        await self._clean_up(s, domain)
                        return ShutdownOutcome(False, s.outputs)
                waited = now - started
                if waited >= wait_for:
                    break
                pause = min(next(delays), wait_for - waited)
                left = budget.left()
                if left is not None and left - margin(left) < pause + 0.5:
                    raise ShutdownTimedOut(
                        s.host.name,
                        domain,
                        waited,
                        f"the RPC deadline came before the shutdown timeout ({wait_for:g} s);"
                        " it was not destroyed",
                    )
                await self._sleep(pause)
            if not force:
                raise ShutdownTimedOut(
                    s.host.name,
                    domain,
                    wait_for,
                    "FORCE_DESTROY is off for this host, so it was left running (Cancel destroys it)",
                )
            await self._destroy(s, domain)
            return ShutdownOutcome(True, s.outputs)

    async def _clean_up(self, s: Session, domain: str) -> None:
        """Destroy a shut-down domain; a failure is no failure when the domain is gone anyway.

        A slow xl monitor may be reaping it meanwhile (on a busy real host its hotplug scripts
        took over 20 s): both tear the devices down, ours then fails with "unable to find
        domain info" once the monitor has finished, and the domain is gone as asked.
        """
        try:
            await self._destroy(s, domain)
        except CommandFailed:
            if await s.listed(domain) is not None:
                raise

    async def _destroy(self, s: Session, domain: str) -> bool:
        """`xl destroy`; False when the domain was already gone."""
        result = await s.run(commands.destroy(s.host, domain, timeout=CONTROL_SECONDS))
        if result.ok:
            return True
        if parse.says_no_such_domain(result.stderr):
            return False
        raise command_failed(result)

    async def cancel(self, host: str, domain: str, budget: Budget) -> CancelOutcome:
        s = self.session(host, budget)
        async with self._locked((s.host.name, domain)):
            was_running = await self._destroy(s, domain)
            if was_running:
                # libxl returns once the domain is torn down; a dying one may linger a moment.
                started = self._clock()
                delays = self._poll_delays()
                while await s.listed(domain) is not None:
                    if self._clock() - started > CANCEL_WAIT_SECONDS:
                        raise DeadlineExceeded(
                            f"domain {domain} on Xen host {s.host.name} was destroyed but is still listed"
                            f" after {CANCEL_WAIT_SECONDS:g} s",
                            reason="DOMAIN_STILL_LISTED",
                            metadata={"host": s.host.name, "domain": domain},
                        )
                    await self._sleep(next(delays))
        return CancelOutcome(was_running, s.outputs)

    async def reboot(self, host: str, domain: str, budget: Budget, *, force: bool = False) -> list[Result]:
        s = self.session(host, budget)
        async with self._locked((s.host.name, domain)):
            await s.run_ok(commands.reboot(s.host, domain, force=force, timeout=CONTROL_SECONDS), domain)
        return s.outputs

    # ----- save, restore, migrate -----
    async def save(self, host: str, domain: str, checkpoint: str, budget: Budget) -> SaveOutcome:
        s = self.session(host, budget)
        async with self._locked((s.host.name, domain)):
            aside = f"{checkpoint}.{int(time.time())}"
            moved = await self.runner.rename(s.host, checkpoint, aside, timeout=s.file_limit("sftp rename"))
            result = await s.run(commands.save(s.host, domain, checkpoint, timeout=SAVE_SECONDS))
            if not result.ok:
                if moved:
                    # Nothing new was written: put the previous checkpoint back where it was.
                    with contextlib.suppress(OnexenError):
                        await self.runner.rename(
                            s.host, aside, checkpoint, timeout=s.file_limit("sftp rename")
                        )
                if parse.says_no_such_domain(result.stderr):
                    raise DomainNotFound(s.host.name, domain, parse.redact(result.stderr))
                raise command_failed(result, f"xl save of {domain} failed on Xen host {s.host.name}")
        return SaveOutcome(aside if moved else "", s.outputs)

    async def restore(self, host: str, checkpoint: str, domain: str, budget: Budget) -> RestoreOutcome:
        s = self.session(host, budget)
        try:
            head = await self.runner.read_file(
                s.host, checkpoint, timeout=s.file_limit("sftp get"), limit=CHECKPOINT_HEAD_BYTES
            )
        except FailedPrecondition:
            # Not readable by the executor's user (xl wrote it as root): xl restore can still
            # read it, only the name check is lost.
            head = b""
        if head is None:
            raise CheckpointNotFound(s.host.name, checkpoint)
        recorded = parse.checkpoint_domain_name(head)
        if domain and recorded and recorded != domain:
            raise FailedPrecondition(
                f"checkpoint {checkpoint} on Xen host {s.host.name} holds domain {recorded}, not {domain}",
                reason="CHECKPOINT_MISMATCH",
                metadata={"host": s.host.name, "path": checkpoint, "domain": recorded},
            )
        name = recorded or domain
        async with self._locked((s.host.name, name or f"checkpoint:{checkpoint}")):
            result = await s.run(commands.restore(s.host, checkpoint, timeout=SAVE_SECONDS))
            if not result.ok:
                if parse.says_restore_file_missing(result.stderr):
                    raise CheckpointNotFound(s.host.name, checkpoint)
                if parse.says_domain_exists(result.stderr):
                    raise DomainExists(
                        s.host.name, name or "?", f"already: not restoring {checkpoint} over it"
                    )
                raise command_failed(result, f"xl restore of {checkpoint} failed on Xen host {s.host.name}")
            if name and await s.listed(name) is None:
                raise FailedPrecondition(
                    f"xl restore of {checkpoint} succeeded but Xen host {s.host.name} lists no domain {name}",
                    reason="RESTORED_DOMAIN_MISSING",
                    metadata={"host": s.host.name, "domain": name},
                )
        return RestoreOutcome(name, s.outputs)

    async def migrate(self, host: str, domain: str, destination: str, budget: Budget) -> list[Result]:
        s = self.session(host, budget)
        target = self.inventory.host(destination)
        if target.name == s.host.name:
            raise FailedPrecondition(
                f"cannot migrate {domain} from Xen host {host} to itself",
                reason="SAME_HOST",
                metadata={"host": host},
            )
        async with self._locked((s.host.name, domain), (target.name, domain)):
            result = await s.run(commands.migrate(s.host, domain, target, timeout=MIGRATE_SECONDS))
            if not result.ok:
                if parse.says_no_such_domain(result.stderr):
                    raise DomainNotFound(s.host.name, domain, parse.redact(result.stderr))
                raise command_failed(
                    result, f"migration of {domain} from Xen host {s.host.name} to {target.name} failed"
                )
            there = Session(self.runner, target, budget, s.outputs)
            if await there.listed(domain) is None:
                raise FailedPrecondition(
                    f"xl migrate reported success but Xen host {target.name} lists no domain {domain}",
                    reason="MIGRATED_DOMAIN_MISSING",
                    metadata={"host": target.name, "domain": domain},
                )
        return s.outputs

    # ----- disks -----
    async def attach_disk(
        self,
        host: str,
        domain: str,
        *,
        source: str,
        target: str,
        prefix: str,
        readonly: bool,
        cdrom: bool,
        budget: Budget,
    ) -> DiskOutcome:
        s = self.session(host, budget)
        prefix = prefix or s.host.default_file_prefix.rstrip(":")
        async with self._locked((s.host.name, domain)):
            command = commands.block_attach(
                s.host, domain, prefix=prefix, source=source, vdev=target, readonly=readonly, cdrom=cdrom,
                timeout=CONTROL_SECONDS,
            )  # fmt: skip
            await s.run_ok(command, domain)
            listed = await s.run_ok(commands.block_list(s.host, domain, timeout=QUERY_SECONDS), domain)
            if parse.vdev_number(target) not in parse.block_list(listed.stdout):
                raise FailedPrecondition(
                    f"xl block-attach of {target} to {domain} exited 0 but xl block-list does not show it",
                    reason="DEVICE_NOT_ATTACHED",
                    metadata={"host": s.host.name, "domain": domain, "device": target},
                )
        disk = common_pb2.DomainDisk(
            vdev=target, pdev_path=source, format=prefix, readwrite=not (readonly or cdrom), is_cdrom=cdrom
        )
        return DiskOutcome(disk, s.outputs)

    async def detach_disk(self, host: str, domain: str, target: str, budget: Budget) -> list[Result]:
        s = self.session(host, budget)
        async with self._locked((s.host.name, domain)):
            result = await s.run(commands.block_detach(s.host, domain, target, timeout=CONTROL_SECONDS))
            if not result.ok:
                if parse.says_no_such_domain(result.stderr):
                    raise DomainNotFound(s.host.name, domain, parse.redact(result.stderr))
                if parse.says_device_not_connected(result.stderr):
                    raise DeviceNotFound(s.host.name, domain, f"disk {target}", parse.redact(result.stderr))
                raise _busy(result, domain, target)
            listed = await s.run_ok(commands.block_list(s.host, domain, timeout=QUERY_SECONDS), domain)
            if parse.vdev_number(target) in parse.block_list(listed.stdout):
                raise _busy(listed, domain, target)
        return s.outputs

    # ----- NICs -----
    async def attach_nic(
        self,
        host: str,
        domain: str,
        *,
        mac: str,
        bridge: str,
        model: str,
        ip: str,
        script: str,
        vifname: str,
        budget: Budget,
    ) -> NicOutcome:
        s = self.session(host, budget)

        def nic(devid: int) -> common_pb2.DomainNic:
            return common_pb2.DomainNic(
                devid=devid, mac=mac, bridge=bridge, ip=ip, model=model, script=script, vifname=vifname
            )

        async with self._locked((s.host.name, domain)):
            before = await self._nics(s, domain)
            for row in before:
                if row.mac == mac:
                    return NicOutcome(nic(row.devid), s.outputs)  # a retried attach
            command = commands.network_attach(
                s.host, domain, mac=mac, bridge=bridge, model=model, ip=ip, script=script, vifname=vifname,
                timeout=CONTROL_SECONDS,
            )  # fmt: skip
            result = await s.run(command)
            after = await self._nics(s, domain)
            if not result.ok:
                # A failed attach leaves a half-made vif with a random MAC (NOTES item 2).
                known = {row.devid for row in before}
                leftovers = [row.devid for row in after if row.devid not in known]
                for devid in leftovers:
                    with contextlib.suppress(OnexenError):
                        await s.run(commands.network_detach(s.host, domain, devid, timeout=CONTROL_SECONDS))
                if parse.says_no_such_domain(result.stderr):
                    raise DomainNotFound(s.host.name, domain, parse.redact(result.stderr))
                note = f"; the half-made vif {leftovers} was removed" if leftovers else ""
                raise command_failed(
                    result, f"xl network-attach of {mac} to {domain} failed on Xen host {s.host.name}{note}"
                )
            found = next((row for row in after if row.mac == mac), None)
            if found is None:
                raise FailedPrecondition(
                    f"xl network-attach of {mac} to {domain} exited 0 but xl network-list does not show it",
                    reason="DEVICE_NOT_ATTACHED",
                    metadata={"host": s.host.name, "domain": domain, "device": mac},
                )
        return NicOutcome(nic(found.devid), s.outputs)

    async def _nics(self, s: Session, domain: str) -> list[parse.NetworkRow]:
        result = await s.run_ok(commands.network_list(s.host, domain, timeout=QUERY_SECONDS), domain)
        return parse.network_list(result.stdout)

    async def detach_nic(self, host: str, domain: str, mac: str, budget: Budget) -> list[Result]:
        s = self.session(host, budget)
        async with self._locked((s.host.name, domain)):
            found = next((row for row in await self._nics(s, domain) if row.mac == mac), None)
            if found is None:
                raise DeviceNotFound(s.host.name, domain, f"NIC with MAC {mac}")
            await s.run_ok(
                commands.network_detach(s.host, domain, found.devid, timeout=CONTROL_SECONDS), domain
            )
            if any(row.mac == mac for row in await self._nics(s, domain)):
                raise FailedPrecondition(
                    f"xl network-detach of {mac} (vif {found.devid}) from {domain} exited 0 but the vif is"
                    " still listed",
                    reason="DEVICE_STILL_ATTACHED",
                    metadata={"host": s.host.name, "domain": domain, "device": mac},
                )
        return s.outputs

    # ----- scheduling -----
    async def set_credit(
        self, host: str, domain: str, weight: int, cap: int | None, budget: Budget
    ) -> list[Result]:
        s = self.session(host, budget)
        async with self._locked((s.host.name, domain)):
            await s.run_ok(commands.sched_credit(s.host, domain, weight, cap, timeout=QUERY_SECONDS), domain)
        return s.outputs

    # ----- looking -----
    async def probe(
        self, host: str, datastore_paths: list[str], sample_seconds: float, budget: Budget
    ) -> ProbeOutcome:
        """Everything monitoring needs, the commands side by side (one round trip of wall time)."""
        s = self.session(host, budget)
        started = time.monotonic()
        sample = sample_seconds or 1.0
        top_seconds = 2 * math.ceil(sample) + QUERY_SECONDS

        async def cpuinfo() -> str:
            # Read over SFTP: no command, and the model name is only decoration.
            try:
                data = await self.runner.read_file(
                    s.host, "/proc/cpuinfo", timeout=s.file_limit("sftp"), limit=8192
                )
            except OnexenError:
                return ""
            return (data or b"").decode(errors="replace")

        async def datastores() -> list[common_pb2.DatastoreUsage]:
            if not datastore_paths:
                return []
            result = await s.run(commands.df(datastore_paths, timeout=QUERY_SECONDS))
            # df fails for a missing directory but still reports the others.
            found = parse.df(result.stdout)
            out = []
            for path in datastore_paths:
                if path in found:
                    total, used, free = found[path]
                    last = path.rstrip("/").rsplit("/", 1)[-1]
                    out.append(
                        common_pb2.DatastoreUsage(
                            path=path,
                            datastore_id=int(last) if last.isdigit() else -1,
                            total_mib=total,
                            used_mib=used,
                            free_mib=free,
                        )
                    )
            return out

        async def disk_files() -> dict[str, int]:
            if not datastore_paths:
                return {}
            # find exits 1 for an unreadable or missing directory and still lists the rest.
            result = await s.run(commands.disk_files(datastore_paths, timeout=QUERY_SECONDS))
            return parse.disk_files(result.stdout)

        info, listing, details, top, model, spaces, sizes = await _all(
            s.run_ok(commands.xl_info(s.host, timeout=QUERY_SECONDS)),
            s.run_ok(commands.xl_list(s.host, timeout=QUERY_SECONDS)),
            s.run_ok(commands.xl_list_long(s.host, timeout=QUERY_SECONDS)),
            s.run_ok(commands.xentop(s.host, sample, timeout=top_seconds)),
            cpuinfo(),
            datastores(),
            disk_files(),
        )
        sampled_at = time.time()
        try:
            long_entries = parse.xl_list_long(details.stdout)
        except ValueError as exc:
            raise command_failed(
                details, f"xl list -l on Xen host {s.host.name} printed no JSON ({exc})"
            ) from exc
        found = parse.domains(parse.xl_list(listing.stdout), long_entries, parse.xentop(top.stdout))
        parse.apply_disk_sizes(found, sizes)
        return ProbeOutcome(
            host_info=parse.host_info(info.stdout, model),
            domains=found,
            datastores=spaces,
            sampled_at=sampled_at,
            duration=time.monotonic() - started,
            outputs=s.outputs,
        )

    async def get_domain(self, host: str, domain: str, budget: Budget) -> common_pb2.Domain:
        s = self.session(host, budget)
        details, listing = await _all(
            s.run_ok(commands.xl_list_long(s.host, domain, timeout=QUERY_SECONDS), domain),
            s.run_ok(commands.xl_list(s.host, domain, timeout=QUERY_SECONDS), domain),
        )
        try:
            entries = parse.xl_list_long(details.stdout)
        except ValueError as exc:
            raise command_failed(details, f"xl list -l {domain} printed no JSON ({exc})") from exc
        found = parse.domains(parse.xl_list(listing.stdout), entries, {})
        match = next((d for d in found if d.name == domain), None)
        if match is None:
            raise DomainNotFound(s.host.name, domain)
        return match

    async def network_step(
        self, host: str, driver: str, step: str, argument: str, message: bytes, budget: Budget
    ) -> Result:
        s = self.session(host, budget)
        command = commands.network_step(s.host, driver, step, argument, message, timeout=NETWORK_STEP_SECONDS)
        result = await s.run(command)
        if result.exit_code in (126, 127):
            raise FailedPrecondition(
                f"Xen host {s.host.name} has no runnable {command.argv[0]}: are OpenNebula's remotes"
                f" (vnm/{driver}) copied to {s.host.remote_dir}?",
                reason="NETWORK_STEP_MISSING",
                metadata={
                    "host": s.host.name,
                    "command": result.command,
                    "stderr": parse.redact(result.stderr),
                },
            )
        if not result.ok:
            raise command_failed(result, f"network step {driver}/{step} failed on Xen host {s.host.name}")
        return result


async def _all(*steps: Awaitable[Any]) -> list[Any]:
    """Side by side, like gather, but the first failure is raised only once every step ended
    (none is left running unwatched)."""
    done = await asyncio.gather(*steps, return_exceptions=True)
    for item in done:
        if isinstance(item, BaseException):
            raise item
    return done


def _busy(result: Result, domain: str, target: str) -> DeviceBusy:
    if target.startswith("hd"):
        why = "an emulated IDE disk cannot be unplugged while the guest runs"
    else:
        why = "it is probably mounted or in use inside the guest (a root disk can never be detached)"
    stderr = parse.redact(result.stderr)
    return DeviceBusy(
        f"the guest kernel of {domain} did not release {target}: {why}; release it in the guest and retry",
        host=result.host,
        command=result.command,
        exit_code=result.exit_code,
        stderr=stderr,
        metadata={"domain": domain, "device": target},
    )
