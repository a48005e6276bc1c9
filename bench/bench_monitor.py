"""Monitor at scale: one instance watching thousands of hosts; and end to end over real SSH.

Scale (default): one Monitor (engine + MonitorService gRPC server, in this process) watches
`--hosts` hosts of `--vms` VMs each at monitord's default periods. Probes are answered by
a fast in-process stand-in for ExecutorService/Probe: each answer is decoded from the bytes
of a realistic ProbeResponse (26 domains with their `xl list -l` JSON, disks and NICs), as
gRPC would decode the executor's answer in the monitor's process, then patched (CPU time,
counters, injected states) and returned after `--probe-latency` seconds of non-CPU wait.
Meanwhile `--changes` VMs a second are paused at random on random hosts; a Watch client in
a separate process (subscribed to every host over gRPC) notes when each state change
arrives. Measured over `--seconds` after `--warmup`:

- the monitor process's CPU share (cores) and RSS, with the stand-in's own patching time
  reported separately (the decoding is the monitor's cost: a real monitor pays it too);
- the delay from the probe that saw a change to the event at the Watch client, and from
  the change itself to the event.

End to end (unless `--no-e2e`, or sshd is missing): `--e2e-hosts` simulated Xen hosts
(simxen: real sshd) with `--e2e-vms` guests each, the executor as its own process, the
monitor in this process through gRPC; same change injection and delays, plus probe
durations, both processes' CPU and the whole machine's. A simulated probe runs an sshd
session and a Python process per command on the "host", so the hosts' CPU, not the
monitor's, bounds how often 50 of them can be probed on a small machine: `--e2e-state-vm`
sets STATE_VM (10 s).

Set BENCH_MONITOR_KEEP=<path> to keep the Watch client's raw arrivals for inspection.

    python bench/bench_monitor.py [--quick] [--no-e2e] [--no-scale]

Writes bench/results/monitor.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from onexen.runtime.config import ServiceConfig  # noqa: E402
from onexen.runtime.logging import configure_logging  # noqa: E402
from onexen.runtime.server import started_server  # noqa: E402
from onexen.v1 import common_pb2, executor_pb2, monitor_pb2, monitor_pb2_grpc  # noqa: E402
from services.monitor.engine import HostConfig, Monitor, Settings  # noqa: E402
from services.monitor.schedule import Periods  # noqa: E402

SUSPENDED = common_pb2.VM_STATE_SUSPENDED
PAUSED = common_pb2.DOMAIN_STATE_PAUSED
TARGET_CORES = 1.0
TARGET_RSS_MB = 500
TARGET_PROBE_TO_EVENT_S = 1.0


# ----------------------------------------------------------------------------- the stand-in


def domain_json(name: str, domid: int, vm_id: int) -> str:
    """A guest's `xl list -l` object, shaped like what the executor forwards (indent=4)."""
    entry = {
        "domid": domid,
        "config": {
            "c_info": {
                "type": "hvm",
                "name": name,
                "uuid": f"5f0c{vm_id:08x}-aaaa-4bbb-8ccc-{domid:012x}",
                "run_hotplug_scripts": "True",
            },
            "b_info": {
                "max_vcpus": 2,
                "avail_vcpus": [0, 1],
                "max_memkb": 2097152,
                "target_memkb": 2097152,
                "video_memkb": 8192,
                "shadow_memkb": 18432,
                "sched_params": {"sched": "credit", "weight": 512, "cap": 0},
                "claim_mode": "True",
                "type.hvm": {"firmware": "bios", "boot": "c", "vnc": {"enable": "True", "listen": "0.0.0.0"}},
                "arch_arm": {},
                "arch_x86": {"msr_relaxed": "False"},
            },
            "disks": [
                {
                    "pdev_path": f"/var/lib/one/datastores/0/{vm_id}/disk.{i}",
                    "vdev": f"xvd{'ab'[i]}",
                    "backend": "qdisk",
                    "format": "raw",
                    "readwrite": 1,
                }
                for i in range(2)
            ],
            "nics": [
                {
                    "devid": 0,
                    "mac": f"02:00:0a:00:{vm_id // 256 % 256:02x}:{vm_id % 256:02x}",
                    "bridge": "br0",
                    "ip": f"10.0.{vm_id // 256 % 256}.{vm_id % 256}",
                    "nictype": "vif_ioemu",
                }
            ],
            "on_reboot": "restart",
            "on_soft_reset": "soft_reset",
        },
    }
    return json.dumps(entry, indent=4)


def template_response(vms: int) -> bytes:
    """One host's ProbeResponse with Domain-0 and `vms` guests, serialized."""
    info = common_pb2.HostInfo(
        hostname="xen",
        arch="x86_64",
        model_name="Intel(R) Xeon(R) Silver 4110 CPU @ 2.10GHz",
        nr_cpus=32,
        nr_nodes=2,
        cores_per_socket=8,
        threads_per_core=2,
        cpu_mhz=2095.078,
        total_memory_mib=130757,
        free_memory_mib=60000,
        xen_version="4.17.5",
        xen_scheduler="credit",
        raw={"xen_commandline": "dom0_mem=4096M,max:4096M", "nr_cpus": "32", "free_memory": "60000"},
    )
    domains = [
        common_pb2.Domain(
            name="Domain-0",
            domid=0,
            flags="r-----",
            state=common_pb2.DOMAIN_STATE_RUNNING,
            vcpus=8,
            memory_kib=4 << 20,
            max_memory_kib=4 << 20,
            cpu_seconds=1000.0,
            config_json=json.dumps({"domid": 0, "config": {"c_info": {"name": "Domain-0"}}}, indent=4),
        )
    ]
    for i in range(vms):
        vm_id = 100 + i
        domains.append(
            common_pb2.Domain(
                name=f"one-{vm_id}",
                domid=i + 1,
                uuid=f"5f0c{vm_id:08x}-aaaa-4bbb-8ccc-{i + 1:012x}",
                flags="-b----",
                state=common_pb2.DOMAIN_STATE_BLOCKED,
                vcpus=2,
                memory_kib=2097152,
                max_memory_kib=2098176,
                cpu_seconds=100.0,
                cpu_percent=3.0,
                net_rx_bytes=1 << 20,
                net_tx_bytes=1 << 19,
                block_read_ops=1000,
                block_write_ops=500,
                block_read_bytes=1 << 24,
                block_write_bytes=1 << 23,
                disks=[
                    common_pb2.DomainDisk(
                        vdev=f"xvd{'ab'[d]}",
                        pdev_path=f"/var/lib/one/datastores/0/{vm_id}/disk.{d}",
                        format="raw",
                        readwrite=True,
                        size_bytes=(10 << 30) if d == 0 else (1 << 20),
                    )
                    for d in range(2)
                ],
                nics=[common_pb2.DomainNic(devid=0, mac="02:00:0a:00:00:01", bridge="br0", vifname="vif1.0")],
                config_json=domain_json(f"one-{vm_id}", i + 1, vm_id),
            )
        )
    datastores = [
        common_pb2.DatastoreUsage(
            path="/var/lib/one/datastores",
            datastore_id=-1,
            total_mib=1 << 20,
            used_mib=1 << 18,
            free_mib=3 << 18,
        )
    ]
    return executor_pb2.ProbeResponse(
        host_info=info, domains=domains, datastores=datastores
    ).SerializeToString()


@dataclass
class Change:
    host_id: int
    deploy_id: str
    changed_at: float
    seen_at: float | None = None  # when the stand-in returned the first answer showing it


class StandIn:
    """ExecutorService/Probe for `hosts` hosts named h<id>, from one template."""

    def __init__(self, hosts: int, vms: int, latency: float) -> None:
        self.template = template_response(vms)
        self.vms = vms
        self.latency = latency
        self.started = time.time()
        self.paused: dict[int, set[int]] = {}
        self.pending: dict[int, list[tuple[int, Change]]] = {}
        self.changes: list[Change] = []
        self.patch_seconds = 0.0
        self.decode_seconds = 0.0
        self.probes = 0
        self.loads = [0.02 + 0.5 * random.random() for _ in range(vms + 1)]

    def pause(self, host_id: int, index: int) -> Change | None:
        paused = self.paused.setdefault(host_id, set())
        if index in paused:
            return None
        paused.add(index)
        change = Change(host_id, f"one-{100 + index}", time.time())
        self.pending.setdefault(host_id, []).append((index, change))
        self.changes.append(change)
        return change

    async def probe(
        self, host: str, datastore_paths: Sequence[str], sample_seconds: float, timeout: float
    ) -> executor_pb2.ProbeResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        host_id = int(host[1:])
        t0 = time.perf_counter()
        response = executor_pb2.ProbeResponse.FromString(self.template)
        t1 = time.perf_counter()
        now = time.time()
        elapsed = now - self.started
        loads = self.loads
        for i, domain in enumerate(response.domains):
            domain.cpu_seconds += round(loads[i] * elapsed, 1)
            domain.net_rx_bytes += int(elapsed) * 2048
            domain.net_tx_bytes += int(elapsed) * 1024
        for index in self.paused.get(host_id, ()):
            domain = response.domains[index + 1]
            domain.state = PAUSED
            domain.flags = "--p---"
        response.sampled_at = now
        pending = self.pending.pop(host_id, None)
        if pending:
            returned = time.time()
            for _, change in pending:
                change.seen_at = returned
        self.decode_seconds += t1 - t0
        self.patch_seconds += time.perf_counter() - t1
        self.probes += 1
        return response


# ----------------------------------------------------------------------------- the Watch client


def watch_client(target: str, out: Path, seconds: float) -> None:
    """Child process: watch every host, note when each non-sync state change arrives."""
    arrivals: list[tuple[int, str, int, float]] = []
    counts: dict[str, int] = {}
    # (arrival, arrival - event timestamp) of every live event: shows a backlog building up.
    lateness: list[tuple[float, float]] = []
    synced = False
    with grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20)]) as channel:
        call = monitor_pb2_grpc.MonitorServiceStub(channel).Watch(monitor_pb2.WatchRequest())
        timer = threading.Timer(seconds, call.cancel)
        timer.start()
        with contextlib.suppress(grpc.RpcError):
            for response in call:
                now = time.time()
                event = response.event
                kind = event.WhichOneof("payload") or ""
                counts[kind] = counts.get(kind, 0) + 1
                if kind == "vm_state":
                    report = event.vm_state
                    if not report.sync:
                        synced = True
                        arrivals.extend((event.host_id, vm.deploy_id, vm.state, now) for vm in report.vms)
                    elif synced:
                        # A periodic SYNC_STATE supersedes the changes still queued before it.
                        arrivals.extend(
                            (event.host_id, vm.deploy_id, vm.state, now)
                            for vm in report.vms
                            if vm.state == SUSPENDED
                        )
                if synced:
                    lateness.append((now, now - event.timestamp.seconds - event.timestamp.nanos / 1e9))
        timer.cancel()
    out.write_text(
        json.dumps({"arrivals": arrivals, "counts": counts, "lateness": lateness, "ended_at": time.time()})
    )


def spawn_watch_client(target: str, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, "--watch-client", target, "--out", str(out), "--seconds", str(seconds)],
        stdin=subprocess.DEVNULL,
    )


def arrivals_of(path: Path) -> tuple[dict[tuple[int, str, int], float], dict[str, Any]]:
    """The first arrival of each (host, VM, state), and what else the client counted."""
    data = json.loads(path.read_text())
    first: dict[tuple[int, str, int], float] = {}
    for host_id, deploy_id, state, at in data["arrivals"]:
        first.setdefault((host_id, deploy_id, state), at)
    lateness = sorted(late for _, late in data["lateness"]) or [0.0]
    return first, {
        "counts": data["counts"],
        "ended_at": data["ended_at"],
        "live_event_lateness_p99_s": round(lateness[int(0.99 * (len(lateness) - 1))], 3),
        "live_event_lateness_max_s": round(lateness[-1], 3),
    }


# ----------------------------------------------------------------------------- measuring


class LoopWatch:
    """How late the event loop wakes a 50 ms ticker (stalls), and how long GC pauses take."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.gc_pauses: list[float] = []
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif info.get("generation") == 2:
            self.gc_pauses.append(time.perf_counter() - self._gc_started)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            planned = loop.time() + 0.05
            await asyncio.sleep(0.05)
            self.lags.append(loop.time() - planned)

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._tick())

    def stop(self) -> dict[str, float]:
        gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
        lags = sorted(self.lags) or [0.0]
        return {
            "loop_lag_p99_s": round(lags[int(0.99 * (len(lags) - 1))], 3),
            "loop_lag_max_s": round(lags[-1], 3),
            "gc_full_collections": len(self.gc_pauses),
            "gc_full_pause_max_s": round(max(self.gc_pauses, default=0.0), 3),
        }


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                values[key] = int(value.split()[0]) / 1024
    return round(values["VmRSS"], 1), round(values["VmHWM"], 1)


def process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (every process, other work included)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


def percentiles(values: list[float], prefix: str) -> dict[str, float]:
    if not values:
        return {f"{prefix}_count": 0}
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3)

    return {
        f"{prefix}_count": len(ordered),
        f"{prefix}_p50_s": at(0.5),
        f"{prefix}_p95_s": at(0.95),
        f"{prefix}_p99_s": at(0.99),
        f"{prefix}_max_s": round(ordered[-1], 3),
        f"{prefix}_mean_s": round(statistics.fmean(ordered), 3),
    }


def delays(changes: list[Change], arrivals: dict[tuple[int, str, int], float]) -> dict[str, Any]:
    probe_to_event, change_to_event, missed = [], [], []
    for change in changes:
        arrived = arrivals.get((change.host_id, change.deploy_id, SUSPENDED))
        if arrived is None or change.seen_at is None:
            missed.append(change)
            continue
        probe_to_event.append(arrived - change.seen_at)
        change_to_event.append(arrived - change.changed_at)
    return {
        **percentiles(probe_to_event, "probe_to_event"),
        **percentiles(change_to_event, "change_to_event"),
        "changes_without_event": len(missed),
        "changes_without_event_sample": [
            {"host_id": c.host_id, "deploy_id": c.deploy_id, "changed_at": c.changed_at, "seen_at": c.seen_at}
            for c in missed[:5]
        ],
    }


@dataclass
class Injector:
    """Pauses random VMs at a steady rate."""

    rate: float
    pick: Any
    made: list[Any] = field(default_factory=list)

    async def run(self, seconds: float) -> None:
        if self.rate <= 0:
            return
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        interval = 1.0 / self.rate
        while loop.time() < end:
            change = await self.pick()
            if change is not None:
                self.made.append(change)
            await asyncio.sleep(interval)


def service_config() -> ServiceConfig:
    return ServiceConfig(service="monitor", port=0, grace_seconds=0.5, log_level="warning")


def machine() -> str:
    cpus = os.cpu_count()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = -1.0
    python = platform.python_version()
    return f"{platform.machine()}, {cpus} CPUs, Python {python}, load average {load:.1f} at start"


# ----------------------------------------------------------------------------- scale


async def scale(
    hosts: int, vms: int, warmup: float, seconds: float, rate: float, latency: float
) -> dict[str, Any]:
    stand_in = StandIn(hosts, vms, latency)
    monitor = Monitor(stand_in, None, Settings())
    rss_before, _ = rss_mb()
    results: dict[str, Any] = {"hosts": hosts, "vms_per_host": vms, "probe_latency_s": latency}
    async with started_server(service_config(), _servicers(monitor)) as server:
        started = time.perf_counter()
        cpu0 = time.process_time()
        pending = [monitor.add_host(HostConfig(i, f"h{i}", Periods())) for i in range(hosts)]
        for begin in range(0, hosts, 500):
            await asyncio.gather(*pending[begin : begin + 500])
        results["add_hosts_s"] = round(time.perf_counter() - started, 2)
        results["add_hosts_cpu_s"] = round(time.process_time() - cpu0, 2)

        tmp = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
        client = spawn_watch_client(server.target, tmp / "watch.json", warmup + seconds + 10)
        try:
            await asyncio.sleep(warmup)
            stats0 = (monitor.stats.probes, monitor.stats.process_seconds, monitor.stats.events)
            patch0, decode0, wall0, cpu0 = (
                stand_in.patch_seconds,
                stand_in.decode_seconds,
                time.perf_counter(),
                time.process_time(),
            )
            monitor.stats.lag_seconds_max = 0.0
            watch = LoopWatch()
            watch.start()

            async def pick() -> Change | None:
                return stand_in.pause(random.randrange(hosts), random.randrange(vms))

            injector = Injector(rate, pick)
            await injector.run(seconds)
            loop_figures = watch.stop()
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
            patch = stand_in.patch_seconds - patch0
            decode = stand_in.decode_seconds - decode0
            probes = monitor.stats.probes - stats0[0]
            process = monitor.stats.process_seconds - stats0[1]
            events = monitor.stats.events - stats0[2]
            lag = monitor.stats.lag_seconds_max
            await asyncio.sleep(8)  # the last changes reach the client
        finally:
            client.wait(timeout=warmup + seconds + 60)
        arrivals, counts = arrivals_of(tmp / "watch.json")
        if os.environ.get("BENCH_MONITOR_KEEP"):
            shutil.copy(tmp / "watch.json", os.environ["BENCH_MONITOR_KEEP"])
        shutil.rmtree(tmp, ignore_errors=True)
    rss, peak = rss_mb()
    await monitor.close()
    results.update(
        {
            "measured_s": round(wall, 1),
            "cpu_cores": round(cpu / wall, 3),
            "cpu_cores_without_stand_in_patching": round((cpu - patch) / wall, 3),
            "stand_in_patching_cores": round(patch / wall, 3),
            "probe_decode_cores": round(decode / wall, 3),
            "engine_processing_cores": round(process / wall, 3),
            "probes_per_s": round(probes / wall, 1),
            "events_per_s": round(events / wall, 1),
            "engine_processing_per_probe_ms": round(1000 * process / max(1, probes), 3),
            "max_probe_start_lag_s": round(lag, 3),
            **loop_figures,
            "rss_mb": rss,
            "peak_rss_mb": peak,
            "rss_before_hosts_mb": rss_before,
            "watch_events_received": counts["counts"],
            "watch_live_event_lateness_p99_s": counts["live_event_lateness_p99_s"],
            "watch_live_event_lateness_max_s": counts["live_event_lateness_max_s"],
            "watch_client_ended_at": counts["ended_at"],
            "state_changes_injected": len(injector.made),
            **delays(injector.made, arrivals),
        }
    )
    results["within_targets"] = bool(
        results["cpu_cores"] < TARGET_CORES
        and peak < TARGET_RSS_MB
        and results.get("probe_to_event_p99_s", 99) < TARGET_PROBE_TO_EVENT_S
        and results["changes_without_event"] == 0
    )
    return results


def _servicers(monitor: Monitor) -> Any:
    from services.monitor.servicer import servicers

    return servicers(monitor)


# ----------------------------------------------------------------------------- end to end


@dataclass
class RecordingProber:
    """ExecutorProber that notes when each probe of each host started and returned."""

    inner: Any
    calls: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    async def probe(
        self, host: str, datastore_paths: Sequence[str], sample_seconds: float, timeout: float
    ) -> executor_pb2.ProbeResponse:
        started = time.time()
        try:
            response: executor_pb2.ProbeResponse = await self.inner.probe(
                host, datastore_paths, sample_seconds, timeout
            )
            return response
        finally:
            self.calls.setdefault(host, []).append((started, time.time()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def end_to_end(
    hosts: int, vms: int, state_vm: int, warmup: float, seconds: float, rate: float
) -> dict[str, Any]:
    from services.executor.inventory import render_inventory
    from services.monitor.probe_client import ExecutorProber
    from simxen.host import SimHost
    from stack.launcher import ServiceProcess, wait_serving

    workdir = Path(tempfile.mkdtemp(prefix="bench-monitor-e2e-"))
    sims: list[SimHost] = []
    results: dict[str, Any] = {"e2e_hosts": hosts, "e2e_vms_per_host": vms, "e2e_state_vm_s": state_vm}
    process: subprocess.Popen[bytes] | None = None
    try:
        started = time.perf_counter()
        facts: dict[str, Any] = {
            "total_pages": 4 << 20,
            "free_memory_mb": 15000,
            "nr_cpus": 16,
            "cleanup_seconds": 30.0,
        }
        for i in range(hosts):
            sim = SimHost.start(workdir / "hosts", f"xen{i}", **facts)
            sims.append(sim)
            for v in range(vms):
                sim.add_wild_domain(f"one-{i * 1000 + v}", memory_mb=256)
        results["e2e_hosts_start_s"] = round(time.perf_counter() - started, 1)
        inventory = workdir / "inventory.toml"
        inventory.write_text(
            render_inventory(
                {"datastore_roots": [str(workdir)]},
                {
                    s.name: {
                        "address": s.address,
                        "port": s.port,
                        "user": s.user,
                        "key": str(s.key_path),
                        "known_hosts": str(s.known_hosts_path),
                        "XM_PATH": str(s.xl_path),
                        "xentop_path": str(s.xentop_path),
                    }
                    for s in sims
                },
            )
        )
        port = _free_port()
        log = (workdir / "executor.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "services.executor.main", "--port", str(port),
             "--inventory", str(inventory), "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
        )  # fmt: skip
        log.close()
        wait_serving(
            ServiceProcess("executor", f"127.0.0.1:{port}", workdir / "executor.log", process), timeout=60
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        prober = RecordingProber(ExecutorProber(channel))
        monitor = Monitor(prober, None, Settings(probe_timeout=60, max_concurrent_probes=64))
        periods = Periods(state_vm=state_vm)
        async with started_server(service_config(), _servicers(monitor)) as server:
            t0 = time.perf_counter()
            await asyncio.gather(
                *(
                    monitor.add_host(HostConfig(i, s.name, periods, datastore_location=str(workdir)))
                    for i, s in enumerate(sims)
                )
            )
            results["e2e_add_hosts_s"] = round(time.perf_counter() - t0, 1)
            client_out = workdir / "watch.json"
            client = spawn_watch_client(server.target, client_out, warmup + seconds + 2 * state_vm + 20)
            await asyncio.sleep(warmup)
            for calls in prober.calls.values():
                calls.clear()
            monitor_cpu0, executor_cpu0, wall0 = (
                time.process_time(),
                process_cpu_seconds(process.pid),
                time.perf_counter(),
            )
            busy0 = machine_busy_seconds()
            probes0 = monitor.stats.probes
            changed: dict[tuple[int, str], float] = {}
            untouched = [(i, v) for i in range(hosts) for v in range(vms)]
            random.shuffle(untouched)

            async def pick() -> tuple[int, str, float] | None:
                if not untouched:
                    return None
                i, v = untouched.pop()
                name = f"one-{i * 1000 + v}"
                await asyncio.to_thread(sims[i].pause_guest, name)
                changed[(i, name)] = time.time()
                return (i, name, changed[(i, name)])

            injector = Injector(rate, pick)
            await injector.run(seconds)
            wall = time.perf_counter() - wall0
            monitor_cpu = time.process_time() - monitor_cpu0
            executor_cpu = process_cpu_seconds(process.pid) - executor_cpu0
            busy = machine_busy_seconds() - busy0
            probes = monitor.stats.probes - probes0
            await asyncio.sleep(2 * state_vm + 10)
            client.wait(timeout=warmup + seconds + 4 * state_vm + 60)
            arrivals, counts = arrivals_of(client_out)
            durations = [end - start for calls in prober.calls.values() for start, end in calls]
            changes = []
            for (i, name), at in changed.items():
                # The probe that saw it is the last one of that host to return before the event
                # arrived (one in flight when the change was made may be it).
                arrived = arrivals.get((i, name, SUSPENDED))
                ends = [end for _, end in prober.calls.get(sims[i].name, []) if arrived and end <= arrived]
                changes.append(Change(i, name, at, max(ends) if ends else None))
        await monitor.close()
        await channel.close()
        results.update(
            {
                "e2e_measured_s": round(wall, 1),
                "e2e_probes_per_s": round(probes / wall, 2),
                "e2e_monitor_cpu_cores": round(monitor_cpu / wall, 3),
                "e2e_executor_cpu_cores": round(executor_cpu / wall, 3),
                # Everything: simulated hosts (sshd, sudo, simulated xl), the watch client, other work.
                "e2e_machine_busy_cores": round(busy / wall, 3),
                **{f"e2e_{k}": v for k, v in percentiles(durations, "probe_duration").items()},
                "e2e_watch_events_received": counts["counts"],
                "e2e_watch_live_event_lateness_max_s": counts["live_event_lateness_max_s"],
                "e2e_state_changes_injected": len(changes),
                **{f"e2e_{k}": v for k, v in delays(changes, arrivals).items()},
                "e2e_failed_probes": monitor.stats.failures,
            }
        )
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        for sim in sims:
            with contextlib.suppress(Exception):
                sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return results


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--vms", type=int, default=25)
    parser.add_argument("--warmup", type=float, default=40.0, help="seconds after adding the hosts")
    parser.add_argument("--seconds", type=float, default=120.0, help="measured seconds")
    parser.add_argument("--changes", type=float, default=5.0, help="state changes injected per second")
    parser.add_argument("--probe-latency", type=float, default=0.2, help="the stand-in's non-CPU wait")
    parser.add_argument("--quick", action="store_true", help="200 hosts, short windows, no end to end")
    parser.add_argument("--no-scale", action="store_true", help="skip the scale run")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end run over real SSH")
    parser.add_argument("--e2e-hosts", type=int, default=50)
    parser.add_argument("--e2e-vms", type=int, default=10)
    parser.add_argument("--e2e-state-vm", type=int, default=10)
    parser.add_argument("--e2e-seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "monitor.json")
    parser.add_argument("--watch-client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.watch_client:
        watch_client(args.watch_client, args.out, args.seconds)
        return
    configure_logging("warning", "json")
    results: dict[str, Any] = {"machine": machine()}
    if args.quick:
        args.hosts, args.warmup, args.seconds = 200, 10.0, 20.0
    started = time.perf_counter()
    if not args.no_scale:
        results.update(
            asyncio.run(
                scale(args.hosts, args.vms, args.warmup, args.seconds, args.changes, args.probe_latency)
            )
        )
    if not args.no_e2e and not args.quick and shutil.which("sshd", path="/usr/sbin:/usr/bin"):
        results.update(
            asyncio.run(
                end_to_end(
                    args.e2e_hosts,
                    args.e2e_vms,
                    args.e2e_state_vm,
                    2.0 * args.e2e_state_vm,
                    args.e2e_seconds,
                    0.5,
                )
            )
        )
    results["targets"] = {
        "cpu_cores": TARGET_CORES,
        "rss_mb": TARGET_RSS_MB,
        "probe_to_event_s": TARGET_PROBE_TO_EVENT_S,
    }
    results["seconds_total"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
