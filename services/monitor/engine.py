"""The monitor itself: hosts under watch, one probe loop each, their latest figures, events.

Every host has a task that sleeps until its schedule says, takes a slot of the global
semaphore (`max_concurrent_probes`), asks the executor for one Probe and turns the answer
into events. A per-host lock makes sure one host is never probed twice at once, even
when AddHost asks for a fresh report while the loop is due.

What a probe yields (see schedule.py for when):
- on every probe, a STATE_VM report when any VM changed state (or a full SYNC_STATE);
- MONITOR_VM, MONITOR_HOST, BEACON_HOST and SYSTEM_HOST when due; SYSTEM_HOST also when
  the set of wild VMs changed, once the translator has their import templates (an import
  that failed is retried at each BEACON_HOST).
State changes are published before anything that waits on another service.

First contact (AddHost, or the first answer after a host error) produces the full report
monitord's START_MONITOR expected: SYSTEM_HOST, MONITOR_HOST, MONITOR_VM and a SYNC_STATE.
A failed probe yields one HOST_ERROR event with the reason and a STATE_VM report with every
VM UNKNOWN; the loop keeps probing at the same cadence, so the host recovers by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from onexen.runtime.errors import DeadlineExceeded, Internal, NotFound, OnexenError
from onexen.runtime.logging import get_logger
from onexen.v1 import common_pb2, executor_pb2, monitor_pb2
from services.monitor import compute
from services.monitor.hub import DEFAULT_QUEUE_EVENTS, Hub, Subscription
from services.monitor.probe_client import Importer, Prober
from services.monitor.schedule import HostSchedule, Periods, Report
from services.monitor.states import (
    DEFAULT_MISSING_AFTER,
    DOMAIN0_NAME,
    STATE_OF,
    Seen,
    VmTable,
    state_from_flags,
    vm_id_of,
)

_log = get_logger(__name__)

MONITORED = monitor_pb2.HOST_HEALTH_MONITORED
ERROR = monitor_pb2.HOST_HEALTH_ERROR
PENDING = monitor_pb2.HOST_HEALTH_PENDING

_VM_WINDOW = "vm"
_HOST_WINDOW = "host"


@dataclass(frozen=True)
class Settings:
    max_concurrent_probes: int = 256
    probe_timeout: float = 30.0
    # Probes after the first take a short xentop sample: CPU% comes from CPU-time deltas.
    sample_seconds: float = 0.1
    # The first probe of a host takes a full sample, so its first report has CPU% too.
    first_sample_seconds: float = 1.0
    import_timeout: float = 10.0
    dom0_min_memory_mib: int = compute.DEFAULT_DOM0_MIN_MEMORY_MIB
    jitter: float = 0.1
    watch_queue_events: int = DEFAULT_QUEUE_EVENTS

    def __post_init__(self) -> None:
        if self.max_concurrent_probes < 1:
            raise ValueError("max_concurrent_probes must be at least 1")
        if self.probe_timeout <= 0 or self.import_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if not 0 < self.sample_seconds <= 60 or not 0 < self.first_sample_seconds <= 60:
            raise ValueError("sample seconds must lie within (0, 60]")


@dataclass(frozen=True)
class HostConfig:
    host_id: int
    host_name: str
    periods: Periods = field(default_factory=Periods)
    datastore_location: str = ""
    missing_after: int = DEFAULT_MISSING_AFTER
    monitor_configuration: str = ""

    @classmethod
    def from_request(cls, request: monitor_pb2.AddHostRequest) -> HostConfig:
        return cls(
            host_id=request.host_id,
            host_name=request.host_name.strip(),
            periods=Periods.from_proto(request.periods),
            datastore_location=request.datastore_location.strip(),
            missing_after=request.missing_after or DEFAULT_MISSING_AFTER,
            monitor_configuration=request.monitor_configuration,
        )


@dataclass
class Stats:
    """Counters for the benchmark and for logs; wall seconds unless named otherwise."""

    probes: int = 0
    failures: int = 0
    probe_seconds: float = 0.0  # time inside Probe calls, summed
    slot_wait_seconds: float = 0.0  # time waiting for a probe slot, summed
    lag_seconds_max: float = 0.0  # how late a probe started against its schedule
    process_seconds: float = 0.0  # CPU time turning answers into events, summed
    events: int = 0


class _Host:
    """Everything the monitor holds about one host."""

    def __init__(self, config: HostConfig, settings: Settings, rng: random.Random) -> None:
        self.config = config
        self.schedule = HostSchedule(config.periods, jitter=settings.jitter, rng=rng)
        self.table = VmTable(config.missing_after)
        self.cpu = compute.CpuWindows((_VM_WINDOW, _HOST_WINDOW))
        self.health: monitor_pb2.HostHealth.ValueType = PENDING
        self.error = ""
        self.error_at = 0.0
        self.last_probe = 0.0
        self.system: monitor_pb2.MonitorEvent | None = None
        self.usage: monitor_pb2.MonitorEvent | None = None
        self.monitoring: monitor_pb2.MonitorEvent | None = None
        self.monitoring_index: dict[str, int] = {}
        # Each VM's Domain without its config JSON, serialized: a few hundred bytes a VM
        # instead of keeping whole probe answers alive.
        self.domains: dict[str, bytes] = {}
        self.templates: dict[str, tuple[str, str]] = {}  # wild VM name -> (uuid, import template)
        self.wild_names: frozenset[str] = frozenset()
        self.lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None
        self.next_at = 0.0
        # Bound once: an unbound structlog proxy binds anew on every call, even a filtered one.
        self.log = _log.bind(host=config.host_name, host_id=config.host_id)

    def reconfigure(self, config: HostConfig, settings: Settings, rng: random.Random) -> None:
        self.config = config
        self.schedule = HostSchedule(config.periods, jitter=settings.jitter, rng=rng)
        self.table.missing_after = config.missing_after

    @property
    def id(self) -> int:
        return self.config.host_id

    @property
    def name(self) -> str:
        return self.config.host_name


class Monitor:
    def __init__(
        self,
        prober: Prober,
        importer: Importer | None = None,
        settings: Settings | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._prober = prober
        self._importer = importer
        self._rng = rng or random.Random()
        self._hosts: dict[int, _Host] = {}
        self._slots = asyncio.Semaphore(self.settings.max_concurrent_probes)
        self.hub = Hub(self.settings.watch_queue_events)
        self.stats = Stats()

    # ----------------------------------------------------------------- hosts

    @property
    def host_ids(self) -> list[int]:
        return sorted(self._hosts)

    async def add_host(self, config: HostConfig) -> list[monitor_pb2.MonitorEvent]:
        """Watch a host (or refresh one already watched) and return its first full report."""
        host = self._hosts.get(config.host_id)
        if host is not None and host.name != config.host_name:
            self._forget(host)
            host = None
        if host is None:
            host = _Host(config, self.settings, self._rng)
            self._hosts[config.host_id] = host
            _log.info("host_added", host=config.host_name, host_id=config.host_id, **config.periods.as_dict())
        else:
            host.reconfigure(config, self.settings, self._rng)
            _log.info("host_refreshed", host=config.host_name, host_id=config.host_id)
        async with host.lock:
            host.schedule.reset()
            events = await self._probe(host)
        if self._hosts.get(config.host_id) is host:
            if host.task is not None:
                host.task.cancel()
            # A clean context: the loop must not log every later probe under this call's request id.
            host.task = asyncio.create_task(
                self._loop(host), name=f"monitor-host-{host.id}", context=contextvars.Context()
            )
        return events

    async def remove_host(self, host_id: int) -> bool:
        """Stop watching; False when the host was not watched (STOP_MONITOR is idempotent)."""
        host = self._hosts.get(host_id)
        if host is None:
            return False
        task = self._forget(host)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        _log.info("host_removed", host=host.name, host_id=host_id)
        return True

    def _forget(self, host: _Host) -> asyncio.Task[None] | None:
        if self._hosts.get(host.id) is host:
            del self._hosts[host.id]
        task, host.task = host.task, None
        if task is not None:
            task.cancel()
        return task

    async def close(self) -> None:
        tasks = [t for h in list(self._hosts.values()) if (t := self._forget(h)) is not None]
        self._hosts.clear()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _host(self, host_id: int) -> _Host:
        host = self._hosts.get(host_id)
        if host is None:
            raise NotFound(
                f"host {host_id} is not watched: AddHost it first",
                reason="HOST_NOT_WATCHED",
                metadata={"host_id": str(host_id)},
            )
        return host

    # ----------------------------------------------------------------- probing

    async def _loop(self, host: _Host) -> None:
        loop = asyncio.get_running_loop()
        while True:
            delay = host.next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            async with host.lock:
                lag = loop.time() - host.next_at
                if lag > self.stats.lag_seconds_max:
                    self.stats.lag_seconds_max = lag
                await self._probe(host)

    async def _probe(self, host: _Host) -> list[monitor_pb2.MonitorEvent]:
        """One probe of `host` and its events (published, and returned). Hold host.lock."""
        loop = asyncio.get_running_loop()
        first = host.schedule.first_contact
        sample = self.settings.first_sample_seconds if first else self.settings.sample_seconds
        paths = [host.config.datastore_location] if host.config.datastore_location else []
        queued = loop.time()
        started = queued
        try:
            async with self._slots:
                started = loop.time()
                try:
                    # The gRPC deadline bounds the call; this bounds a stand-in that ignores it.
                    async with asyncio.timeout(self.settings.probe_timeout + 5):
                        response = await self._prober.probe(
                            host.name, paths, sample, self.settings.probe_timeout
                        )
                except TimeoutError:
                    raise DeadlineExceeded(
                        f"probe of {host.name} took longer than {self.settings.probe_timeout:g} s"
                    ) from None
        except OnexenError as exc:
            events = self._failed(host, exc, loop.time() - started)
        except Exception as exc:  # a bug must not end the host's loop
            host.log.exception("probe_bug")
            events = self._failed(host, Internal(f"unexpected {type(exc).__name__}"), loop.time() - started)
        else:
            duration = loop.time() - started
            events = await self._succeeded(host, response, first, duration)
        finally:
            self.stats.probes += 1
            self.stats.slot_wait_seconds += started - queued
            self.stats.probe_seconds += loop.time() - started
            host.next_at = host.schedule.next_probe(loop.time())
        return events

    def _publish(self, host: _Host, events: list[monitor_pb2.MonitorEvent]) -> None:
        if events and self._hosts.get(host.id) is host:
            self.stats.events += len(events)
            self.hub.publish(host.id, events)

    def _failed(self, host: _Host, exc: OnexenError, duration: float) -> list[monitor_pb2.MonitorEvent]:
        self.stats.failures += 1
        reason = f"{exc.message} [{exc.reason}]"
        now = time.time()
        events: list[monitor_pb2.MonitorEvent] = []
        if host.health != ERROR or host.error != reason:
            events.append(compute.event(host.id, now, host_error=monitor_pb2.HostError(reason=reason)))
            unknown = host.table.unreachable()
            if unknown is not None:
                events.append(compute.event(host.id, now, vm_state=unknown))
            host.log.warning(
                "host_error", error=exc.message, reason=exc.reason, duration_ms=round(duration * 1000, 1)
            )
            host.error_at = now
        else:
            host.log.debug("probe_failed", reason=exc.reason, duration_ms=round(duration * 1000, 1))
        host.health = ERROR
        host.error = reason
        # Whatever the host says next is a first contact again: full sample, full report.
        host.schedule.reset()
        self._publish(host, events)
        return events

    async def _succeeded(
        self, host: _Host, response: executor_pb2.ProbeResponse, first: bool, duration: float
    ) -> list[monitor_pb2.MonitorEvent]:
        tick = time.thread_time()
        loop_now = asyncio.get_running_loop().time()
        at = response.sampled_at or time.time()
        due = host.schedule.due(loop_now)
        was = host.health
        host.health = MONITORED
        host.error = ""
        host.last_probe = at

        observe = host.cpu.observe
        dom0: common_pb2.Domain | None = None
        seen: list[Seen] = []
        guests: list[common_pb2.Domain] = []
        # Every field read from a protobuf message makes a new Python object: read each once.
        for domain in response.domains:
            name = domain.name
            domid = domain.domid
            observe(name, domid, domain.cpu_seconds, at)
            if domid == 0 or name == DOMAIN0_NAME:
                dom0 = domain
                continue
            guests.append(domain)
            state = STATE_OF.get(domain.state)
            if state is None:
                state = state_from_flags(domain.flags)
            seen.append(Seen(name, domid, state))
        outcome = host.table.observe(seen, at, sync=Report.SYNC_STATE_VM in due)

        state_events: list[monitor_pb2.MonitorEvent] = []
        if outcome.report is not None:
            state_events.append(compute.event(host.id, at, vm_state=outcome.report))

        wild = {s.name: d for s, d in zip(seen, guests, strict=True) if vm_id_of(s.name) < 0}
        wild_names = frozenset(wild)
        # A wild VM whose import failed (translator down) is retried with each beacon.
        retry_imports = Report.BEACON_HOST in due and any(not t for _, t in host.templates.values())
        system_due = Report.SYSTEM_HOST in due or wild_names != host.wild_names or retry_imports
        # Import needs each wild domain's config JSON; grab it before the copies below drop it.
        to_import: dict[str, tuple[str, str]] = {}
        if system_due:
            for name, domain in wild.items():
                uuid, template = host.templates.get(name, ("", ""))
                if not template or uuid != domain.uuid:
                    to_import[name] = (domain.uuid, domain.config_json)

        # Keep a copy of each Domain whose figures GetVm/ListVms show: all of them with
        # MONITOR_VM, otherwise the new ones and those whose state changed.
        if Report.MONITOR_VM in due:
            refresh = guests
        else:
            fresh = {*outcome.added, *outcome.changed}
            refresh = [d for d in guests if d.name in fresh] if fresh else []
        for domain in refresh:
            domain.ClearField("config_json")
            host.domains[domain.name] = domain.SerializeToString()
        for name in outcome.removed:
            host.domains.pop(name, None)

        other: list[monitor_pb2.MonitorEvent] = []
        if Report.MONITOR_HOST in due or Report.MONITOR_VM in due:
            # xentop's own CPU% is only a real figure on the full first sample.
            fallback = {d.name: d.cpu_percent if first else 0.0 for d in response.domains}
        if Report.MONITOR_HOST in due:
            cpu_host = host.cpu.take(_HOST_WINDOW, fallback)
            usage = compute.host_usage(
                response.host_info, response.domains, cpu_host, dom0, self.settings.dom0_min_memory_mib
            )
            host.usage = compute.event(host.id, at, usage=usage)
            other.append(host.usage)
        if Report.MONITOR_VM in due:
            cpu_vm = host.cpu.take(_VM_WINDOW, fallback)
            monitoring = compute.event(host.id, at)
            monitoring.vm_monitoring.SetInParent()
            vms = monitoring.vm_monitoring.vms
            for domain in guests:
                name = domain.name
                compute.fill_vm_monitoring(vms.add(), domain, vm_id_of(name), cpu_vm.get(name, 0.0))
            host.monitoring = monitoring
            host.monitoring_index = {s.name: i for i, s in enumerate(seen)}
            other.append(monitoring)
        # A first report is START_MONITOR's answer, which never carried a beacon.
        if Report.BEACON_HOST in due and not first:
            other.append(compute.event(host.id, at, beacon=monitor_pb2.Beacon()))
        host.schedule.produced(due, loop_now)

        if was != MONITORED:
            host.log.info("host_monitored", vms=len(host.table))
        host.log.debug(
            "probe",
            duration_ms=round(duration * 1000, 1),
            domains=len(response.domains),
            reports=sorted(r.value for r in due),
            state_changes=len(outcome.report.vms) if outcome.report is not None else 0,
        )
        self.stats.process_seconds += time.thread_time() - tick

        if not system_due:
            events = state_events + other
            self._publish(host, events)
            return events
        if not first:
            # State changes must not wait for the translator.
            self._publish(host, state_events + other)
        system = await self._system(host, response, wild_names, to_import, at)
        if first:
            events = [system, *other, *state_events]
            self._publish(host, events)
            return events
        self._publish(host, [system])
        return [*state_events, *other, system]

    async def _system(
        self,
        host: _Host,
        response: executor_pb2.ProbeResponse,
        wild_names: frozenset[str],
        to_import: dict[str, tuple[str, str]],
        at: float,
    ) -> monitor_pb2.MonitorEvent:
        if to_import:
            names = list(to_import)
            results = await asyncio.gather(*(self._import(host, name, to_import[name][1]) for name in names))
            for name, template in zip(names, results, strict=True):
                host.templates[name] = (to_import[name][0], template)
        for name in [n for n in host.templates if n not in wild_names]:
            del host.templates[name]
        host.wild_names = wild_names
        wild_vms = [
            monitor_pb2.WildVm(
                deploy_id=name, vm_name=name, import_template=host.templates.get(name, ("", ""))[1]
            )
            for name in sorted(wild_names)
        ]
        system = compute.system_host(
            response.host_info, response.datastores, host.config.datastore_location, wild_vms
        )
        host.system = compute.event(host.id, at, system=system)
        return host.system

    async def _import(self, host: _Host, name: str, domain_json: str) -> str:
        """The import template, or "" (retried at the next BEACON_HOST) when the translator fails."""
        if self._importer is None or not domain_json:
            return ""
        try:
            return await self._importer.import_template(domain_json, self.settings.import_timeout)
        except OnexenError as exc:
            host.log.warning("import_failed", domain=name, error=exc.message, reason=exc.reason)
            return ""

    # ----------------------------------------------------------------- reading

    def host_status(self, host_id: int) -> monitor_pb2.HostStatus:
        host = self._host(host_id)
        status = monitor_pb2.HostStatus(
            host_id=host.id, host_name=host.name, health=host.health, error=host.error
        )
        if host.system is not None:
            status.system.CopyFrom(host.system.system)
        if host.usage is not None:
            status.usage.CopyFrom(host.usage.usage)
        if host.last_probe:
            status.last_probe.CopyFrom(compute.timestamp(host.last_probe))
        return status

    def _vm_status(self, host: _Host, deploy_id: str) -> monitor_pb2.VmStatus:
        entry = host.table.get(deploy_id)
        assert entry is not None
        status = monitor_pb2.VmStatus(
            vm_id=entry.vm_id,
            deploy_id=entry.deploy_id,
            state=entry.state,
            wild=entry.wild,
            last_seen=compute.timestamp(entry.last_seen),
        )
        blob = host.domains.get(deploy_id)
        if blob is not None:
            status.domain.ParseFromString(blob)
        index = host.monitoring_index.get(deploy_id)
        if host.monitoring is not None and index is not None:
            status.monitoring.CopyFrom(host.monitoring.vm_monitoring.vms[index])
        return status

    def vms(self, host_id: int) -> list[monitor_pb2.VmStatus]:
        host = self._host(host_id)
        return [self._vm_status(host, e.deploy_id) for e in sorted(host.table, key=lambda e: e.deploy_id)]

    def vm(self, host_id: int, *, vm_id: int | None = None, deploy_id: str = "") -> monitor_pb2.VmStatus:
        host = self._host(host_id)
        entry = host.table.get(deploy_id) if deploy_id else None
        if entry is None and not deploy_id and vm_id is not None:
            entry = host.table.by_vm_id(vm_id)
        if entry is None:
            what = f"domain {deploy_id!r}" if deploy_id else f"VM {vm_id}"
            raise NotFound(
                f"{what} is not on host {host_id} ({host.name})",
                reason="VM_NOT_FOUND",
                metadata={"host_id": str(host_id), "deploy_id": deploy_id, "vm_id": str(vm_id)},
            )
        return self._vm_status(host, entry.deploy_id)

    def snapshot(self, host_id: int | None = None) -> list[monitor_pb2.MonitorEvent]:
        """The full sync a new (or resynced) Watch stream starts with."""
        if host_id is not None:
            hosts = [self._hosts[host_id]] if host_id in self._hosts else []
        else:
            hosts = [self._hosts[i] for i in sorted(self._hosts)]
        events: list[monitor_pb2.MonitorEvent] = []
        for host in hosts:
            if host.health == ERROR:
                events.append(
                    compute.event(host.id, host.error_at, host_error=monitor_pb2.HostError(reason=host.error))
                )
                events.append(
                    compute.event(host.id, host.error_at, vm_state=host.table.unreachable_sync_report())
                )
            elif host.health == MONITORED:
                events.extend(e for e in (host.system, host.usage, host.monitoring) if e is not None)
                events.append(compute.event(host.id, host.last_probe, vm_state=host.table.sync_report()))
        return events

    @contextlib.contextmanager
    def watch(self, host_id: int | None) -> Iterator[Subscription]:
        """Subscribe to live events; take `snapshot()` before the first await to miss nothing."""
        sub = self.hub.subscribe(host_id)
        try:
            yield sub
        finally:
            self.hub.unsubscribe(sub)
