"""In-process stand-ins for the executor and the translator, and helpers to read events.

`FakeHost` is a scripted Xen host: tests change its domains (pause, crash, remove, add a
wild one, take the host down) and every probe answers with what it holds now, CPU time
growing with the wall clock at each domain's load.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from onexen.runtime.errors import NotFound, OnexenError, Unavailable
from onexen.v1 import common_pb2, executor_pb2, monitor_pb2
from services.monitor.hub import Subscription

RUNNING = common_pb2.DOMAIN_STATE_RUNNING
BLOCKED = common_pb2.DOMAIN_STATE_BLOCKED
PAUSED = common_pb2.DOMAIN_STATE_PAUSED
CRASHED = common_pb2.DOMAIN_STATE_CRASHED
SHUTDOWN = common_pb2.DOMAIN_STATE_SHUTDOWN

FLAGS = {RUNNING: "r-----", BLOCKED: "-b----", PAUSED: "--p---", CRASHED: "---sc-", SHUTDOWN: "---s--"}


@dataclass
class FakeDomain:
    name: str
    domid: int
    state: common_pb2.DomainState.ValueType = BLOCKED
    load: float = 0.25  # CPUs busy: 0.25 -> 25 %
    memory_kib: int = 131072
    cpu_base: float = 0.0
    since: float = field(default_factory=time.time)
    net_rx_kib: int = 4
    net_tx_kib: int = 2
    uuid: str = ""

    def cpu_seconds(self, now: float) -> float:
        busy = 0.0 if self.state in (PAUSED, CRASHED, SHUTDOWN) else self.load
        return round(self.cpu_base + busy * (now - self.since), 1)

    def message(self, now: float) -> common_pb2.Domain:
        config = {"domid": self.domid, "config": {"c_info": {"name": self.name, "uuid": self.uuid}}}
        return common_pb2.Domain(
            name=self.name,
            domid=self.domid,
            uuid=self.uuid,
            flags=FLAGS.get(self.state, "------"),
            state=self.state,
            vcpus=1,
            memory_kib=self.memory_kib,
            max_memory_kib=self.memory_kib,
            cpu_seconds=self.cpu_seconds(now),
            cpu_percent=self.load * 100,
            net_rx_bytes=self.net_rx_kib * 1024,
            net_tx_bytes=self.net_tx_kib * 1024,
            block_read_ops=3,
            block_write_ops=2,
            block_read_bytes=3 * 4096,
            block_write_bytes=2 * 4096,
            config_json=json.dumps(config),
        )


class FakeHost:
    def __init__(self, name: str, *, nr_cpus: int = 2, total_mib: int = 2047, free_mib: int = 1256) -> None:
        self.name = name
        self.info = common_pb2.HostInfo(
            hostname=name,
            arch="x86_64",
            model_name="Fake CPU @ 2.60GHz",
            nr_cpus=nr_cpus,
            cpu_mhz=2596.127,
            total_memory_mib=total_mib,
            free_memory_mib=free_mib,
            xen_version="4.17.5",
            raw={"xen_commandline": "dom0_mem=768M,max:768M sched=credit"},
        )
        self.domains: dict[str, FakeDomain] = {}
        self.down: OnexenError | None = None
        self.delay = 0.0
        self.probes = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.next_domid = 1
        self.add("Domain-0", domid=0, state=RUNNING, load=0.1, memory_kib=786432)

    def add(self, name: str, **kwargs: object) -> FakeDomain:
        domid = kwargs.pop("domid", None)
        if not isinstance(domid, int):
            domid = self.next_domid
            self.next_domid += 1
        domain = FakeDomain(name, domid, uuid=f"uuid-{name}", **kwargs)  # type: ignore[arg-type]
        self.domains[name] = domain
        return domain

    def set_state(self, name: str, state: common_pb2.DomainState.ValueType) -> None:
        domain = self.domains[name]
        now = time.time()
        domain.cpu_base = domain.cpu_seconds(now)
        domain.since = now
        domain.state = state

    def remove(self, name: str) -> None:
        del self.domains[name]

    def response(self, datastore_paths: Sequence[str]) -> executor_pb2.ProbeResponse:
        now = time.time()
        return executor_pb2.ProbeResponse(
            host_info=self.info,
            domains=[d.message(now) for d in self.domains.values()],
            datastores=[
                common_pb2.DatastoreUsage(path=p, datastore_id=-1, total_mib=1000, used_mib=400, free_mib=600)
                for p in datastore_paths
            ],
            sampled_at=now,
        )


class FakeProber:
    """The executor's Probe, answered from FakeHosts."""

    def __init__(self, *hosts: FakeHost) -> None:
        self.hosts = {h.name: h for h in hosts}
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[tuple[str, tuple[str, ...], float]] = []

    async def probe(
        self, host: str, datastore_paths: Sequence[str], sample_seconds: float, timeout: float
    ) -> executor_pb2.ProbeResponse:
        self.requests.append((host, tuple(datastore_paths), sample_seconds))
        fake = self.hosts.get(host)
        if fake is None:
            raise NotFound(f"host {host} is not in the inventory", reason="HOST_NOT_FOUND")
        self.in_flight += 1
        fake.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            if fake.delay:
                await asyncio.sleep(fake.delay)
            fake.probes += 1
            if fake.down is not None:
                raise fake.down
            return fake.response(datastore_paths)
        finally:
            self.in_flight -= 1
            fake.in_flight -= 1


class FakeImporter:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.failing = False

    async def import_template(self, domain_json: str, timeout: float) -> str:
        name = json.loads(domain_json)["config"]["c_info"]["name"]
        self.calls.append(name)
        if self.failing:
            raise Unavailable("translator unreachable")
        return f'NAME = "{name}"\nDEPLOY_ID = "{name}"\n'


def payload(event: monitor_pb2.MonitorEvent) -> str:
    return event.WhichOneof("payload") or ""


def states(event: monitor_pb2.MonitorEvent) -> dict[str, int]:
    return {vm.deploy_id: vm.state for vm in event.vm_state.vms}


class Reader:
    """Reads a subscription in order, keeping what a match left unread."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.buffer: list[monitor_pb2.MonitorEvent] = []
        self.seen: list[monitor_pb2.MonitorEvent] = []
        self.resyncs = 0

    async def next(
        self, match: Callable[[monitor_pb2.MonitorEvent], bool], timeout: float
    ) -> monitor_pb2.MonitorEvent:
        """The next event that `match`es within `timeout` seconds (earlier ones are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while self.buffer:
                event = self.buffer.pop(0)
                self.seen.append(event)
                if match(event):
                    return event
            left = deadline - loop.time()
            if left <= 0:
                shown = [f"{e.host_id}:{payload(e)}" for e in self.seen[-20:]]
                raise AssertionError(f"no matching event within {timeout} s; last seen {shown}")
            try:
                batch = await asyncio.wait_for(self.sub.get(), left)
            except TimeoutError:
                continue
            if batch is None:
                self.resyncs += 1
            else:
                self.buffer.extend(batch)


def state_is(deploy_id: str, state: int) -> Callable[[monitor_pb2.MonitorEvent], bool]:
    return lambda e: payload(e) == "vm_state" and states(e).get(deploy_id) == state
