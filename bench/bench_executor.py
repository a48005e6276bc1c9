"""Executor against the upstream way: actions per second and latency on 1, 10 and 50 Xen hosts.

The hosts are simulated (simxen: real sshd, simulated xl). The same action runs both ways on
the same hosts with the same number of actions in flight:

- executor: the SetCredit RPC through an in-process ExecutorService (gRPC, pooled SSH
  session per host, `timeout ... sudo -n xl sched-credit -d D -w W` on a channel);
- upstream: one new `ssh host sudo -n xl sched-credit -d D -w W` process per action, as
  OpenNebula's driver does (it adds a script upload on top, which is left out here).

Both end on the same xl command, so the simulated xl's own cost (simxen's fork server and its
workers, about 1 ms of CPU: `simulated_xl_cpu_ms`) is in both figures; `transport_*` isolates
what each way adds around a command (`true`). (A real xl spends a few ms of its Xen host's CPU,
not of the driver's machine; here both share two cores, so a costlier xl would pull the two
ways' figures towards each other: the README works out by how much.) The executor's sessions
are opened by one warm-up action per host before timing (they live as long as the service).

Both ways are CPU-bound on a small machine, and other work on it (a VM lab, a build) comes and
goes: so the two ways take turns, in `--rounds` alternating batches, and each figure sums its
way's batches. Each way's CPU per action is measured too, whoever spent it (this process with
the executor and the gRPC client, the ssh processes, every sshd process and session, the
commands they run, the hosts' fork servers): `*_cpu_ms_per_action` and their ratio, the
figure that other load on the machine changes least. It is split into the driver's side (this
process and the ssh processes: what the machine running oned or the executor spends,
`*_driver_cpu_ms_per_action`, `*_driver_cpu_ratio`) and the hosts' side (sshd and what runs
under it: in a deployment, the Xen hosts' own CPU).

Writes bench/results/executor.json: a flat object of named numbers plus a `machine`
description.

    python bench/bench_executor.py [--actions 400] [--rounds 4] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "executor"))

import grpc  # noqa: E402
from executor_hosts import clean_dir, inventory_for, start_hosts, stop_hosts  # noqa: E402

from onexen.runtime.config import ServiceConfig  # noqa: E402
from onexen.runtime.logging import configure_logging  # noqa: E402
from onexen.runtime.server import started_server  # noqa: E402
from onexen.v1 import executor_pb2, executor_pb2_grpc  # noqa: E402
from services.executor.servicer import servicers, ssh_actions  # noqa: E402
from services.executor.ssh import HostConnection  # noqa: E402
from simxen.host import SimHost  # noqa: E402

HOST_COUNTS = (1, 10, 50)
DOMAINS_PER_HOST = 4
SEQUENTIAL = 30
TARGET_RATIO = 10.0
UPSTREAM_SHARE = 4  # the upstream way runs a quarter as many actions (it is ten times slower)
_TICKS = os.sysconf("SC_CLK_TCK")


def in_flight(hosts: int) -> int:
    # One host: its 8 channels. More hosts: about OpenNebula's default of 15 driver threads.
    return 8 if hosts == 1 else 16


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def hosts_of(jobs: list[tuple[SimHost, str, int]]) -> list[SimHost]:
    return list({job[0].name: job[0] for job in jobs}.values())


def jobs_for(hosts: list[SimHost], count: int) -> list[tuple[SimHost, str, int]]:
    return [
        (hosts[i % len(hosts)], f"bench-{(i // len(hosts)) % DOMAINS_PER_HOST}", 256 + i % 512)
        for i in range(count)
    ]


class Tally:
    """One way's batches: latencies of the actions that succeeded, failures, wall and CPU time
    (the driver's side: this process and its ssh processes; the hosts' side: their sshd and
    everything under it, and the simulated xl)."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.failures = 0
        self.wall = 0.0
        self.driver_cpu = 0.0
        self.host_cpu = 0.0

    def figures(self) -> dict[str, float]:
        done = len(self.latencies)
        actions = max(done + self.failures, 1)
        return {
            "actions_per_second": round(done / self.wall, 2) if self.wall else 0.0,
            "median_ms": round(statistics.median(self.latencies) * 1000, 1) if done else 0.0,
            "p99_ms": round(percentile(self.latencies, 0.99) * 1000, 1) if done else 0.0,
            "failed": self.failures,
            "seconds": round(self.wall, 2),
            "cpu_ms_per_action": round((self.driver_cpu + self.host_cpu) / actions * 1000, 2),
            "driver_cpu_ms_per_action": round(self.driver_cpu / actions * 1000, 2),
            "host_cpu_ms_per_action": round(self.host_cpu / actions * 1000, 2),
        }


def _proc_ticks(pid: int) -> tuple[int, int]:
    """(parent pid, user + system ticks of the process and of its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return -1, 0
    return int(fields[1]), sum(int(f) for f in fields[11:15])


def host_cpu_seconds(hosts: list[SimHost], *, sshd: bool = True) -> dict[int, int]:
    """CPU ticks of every sshd process of these hosts (listeners, sessions and what they run,
    live or reaped) and of their fork servers (their workers, and the calls they forked), by pid."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent, _ = _proc_ticks(int(entry))
            children.setdefault(parent, []).append(int(entry))
    ticks: dict[int, int] = {}
    roots = [pid for h in hosts for pid in (h.sshd_pid if sshd else None, h.zygote_pid) if pid is not None]
    while roots:
        pid = roots.pop()
        ticks[pid] = _proc_ticks(pid)[1]
        roots += children.get(pid, [])
    return ticks


def machine_cpu_seconds(hosts: list[SimHost]) -> tuple[float, dict[int, int]]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)  # the upstream way's ssh processes
    mine = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    return mine, host_cpu_seconds(hosts)


async def timed_batch(
    jobs: list[Any], concurrency: int, one: Any, tally: Tally, hosts: list[SimHost]
) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def run(job: Any) -> None:
        async with gate:
            started = time.perf_counter()
            ok = await one(job)
            if ok:
                tally.latencies.append(time.perf_counter() - started)
            else:
                tally.failures += 1

    mine, theirs = machine_cpu_seconds(hosts)
    started = time.perf_counter()
    await asyncio.gather(*(run(job) for job in jobs))
    tally.wall += time.perf_counter() - started
    mine_after, theirs_after = machine_cpu_seconds(hosts)
    # A process that ended meanwhile is in its parent's reaped figure (sshd sessions in the
    # listener's, calls in the fork server's); a new one counts from zero.
    host_ticks = sum(t - theirs.get(pid, 0) for pid, t in theirs_after.items())
    tally.driver_cpu += mine_after - mine
    tally.host_cpu += host_ticks / _TICKS


async def executor_way(
    stub: executor_pb2_grpc.ExecutorServiceStub, jobs: list[Any], concurrency: int, tally: Tally | None = None
) -> Tally:
    async def one(job: tuple[SimHost, str, int]) -> bool:
        host, domain, weight = job
        try:
            await stub.SetCredit(
                executor_pb2.SetCreditRequest(host=host.name, domain=domain, weight=weight), timeout=60
            )
        except grpc.aio.AioRpcError:
            return False
        return True

    tally = tally or Tally()
    await timed_batch(jobs, concurrency, one, tally, hosts_of(jobs))
    return tally


async def upstream_way(jobs: list[Any], concurrency: int, tally: Tally | None = None) -> Tally:
    async def one(job: tuple[SimHost, str, int]) -> bool:
        host, domain, weight = job
        argv = host.ssh_argv("sudo", "-n", "/usr/sbin/xl", "sched-credit", "-d", domain, "-w", str(weight))
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        await proc.communicate()
        return proc.returncode == 0

    tally = tally or Tally()
    await timed_batch(jobs, concurrency, one, tally, hosts_of(jobs))
    return tally


def transport_figures(host: SimHost, samples: int = 20) -> dict[str, float]:
    """What each way adds around one command, with a command that costs nothing (`true`)."""
    inventory = inventory_for([host], Path(tempfile.gettempdir()))
    conn = HostConnection(inventory.host(host.name))
    try:
        conn.run("true", name="true", wait=10)  # the session, made once
        pooled = []
        for _ in range(samples):
            started = time.perf_counter()
            conn.run("timeout --kill-after=5 10 true", name="true", wait=10)
            pooled.append(time.perf_counter() - started)
    finally:
        conn.close()
    spawned = []
    for _ in range(samples):
        started = time.perf_counter()
        subprocess.run(host.ssh_argv("true"), capture_output=True, check=False)
        spawned.append(time.perf_counter() - started)
    return {
        "transport_pooled_channel_median_ms": round(statistics.median(pooled) * 1000, 2),
        "transport_ssh_process_median_ms": round(statistics.median(spawned) * 1000, 2),
        "transport_latency_ratio": round(statistics.median(spawned) / statistics.median(pooled), 1),
    }


def simulated_xl_figures(host: SimHost, samples: int = 30) -> dict[str, float]:
    """One simulated `xl sched-credit` run locally, without SSH: the floor under both ways.

    Its CPU is the client's and the host's fork server's (which runs the call in one of its
    workers, or in a child), a new weight each time as in the timed runs (a changed weight is a
    state write)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = host_cpu_seconds([host], sshd=False)
    walls = []
    for i in range(samples):
        started = time.perf_counter()
        host.run_xl("sched-credit", "-d", "bench-0", "-w", str(300 + i))
        walls.append(time.perf_counter() - started)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_after = host_cpu_seconds([host], sshd=False)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    used += sum(t - server_before.get(pid, 0) for pid, t in server_after.items()) / _TICKS
    return {
        "simulated_xl_cpu_ms": round(used / samples * 1000, 1),
        "simulated_xl_local_median_ms": round(statistics.median(walls) * 1000, 1),
        # Both ways are CPU-bound on these cores: no way can beat this many actions per second.
        "simulated_xl_ceiling_actions_per_second": round((os.cpu_count() or 1) / (used / samples), 1),
    }


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    load = os.getloadavg()[0]
    return (
        f"{model or platform.processor()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f" ({platform.python_implementation()}), Linux {platform.release()}, {ssh},"
        f" load average {load:.1f} at start; simulated hosts on the same machine"
    )


def ratios(prefix: str, mine: dict[str, float], theirs: dict[str, float]) -> dict[str, float]:
    return {
        f"{prefix}_throughput_ratio": round(
            mine["actions_per_second"] / max(theirs["actions_per_second"], 1e-9), 2
        ),
        f"{prefix}_median_latency_ratio": round(theirs["median_ms"] / max(mine["median_ms"], 1e-9), 2),
        f"{prefix}_cpu_ratio": round(theirs["cpu_ms_per_action"] / max(mine["cpu_ms_per_action"], 1e-9), 2),
        # What a driver's machine spends, the Xen hosts' share left out (theirs in a deployment).
        f"{prefix}_driver_cpu_ratio": round(
            theirs["driver_cpu_ms_per_action"] / max(mine["driver_cpu_ms_per_action"], 1e-9), 2
        ),
    }


def default_workdir() -> str | None:
    """tmpfs when there is one: the simulated hosts' files (state rewritten by each simulated xl
    call, sshd logs) then cost neither way a disk journal's work; else the temporary dir."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


async def run(
    actions_per_way: int, counts: tuple[int, ...], rounds: int, workdir: str | None
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-executor-", dir=workdir))
    results: dict[str, Any] = {"machine": f"{machine()} (their files in {work.parent})"}
    started = time.perf_counter()
    hosts = start_hosts(work / "hosts", [f"xen{i}" for i in range(max(counts))])
    results["hosts_start_seconds"] = round(time.perf_counter() - started, 1)
    try:
        for host in hosts:
            for d in range(DOMAINS_PER_HOST):
                host.add_wild_domain(f"bench-{d}", memory_mb=16)
        results.update(simulated_xl_figures(hosts[0]))
        results.update(transport_figures(hosts[0]))
        inventory = inventory_for(hosts, clean_dir(work / "datastores"))
        actions, runner = ssh_actions(inventory, threads=400)
        config = ServiceConfig(service="executor", port=0, grace_seconds=0.5, log_level="warning")
        async with (
            started_server(config, servicers(inventory, actions)) as server,
            grpc.aio.insecure_channel(server.target) as channel,
        ):
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            # One action at a time: latency without queueing for the CPU.
            one = hosts[:1]
            await executor_way(stub, jobs_for(one, 1), 1)
            mine, theirs = Tally(), Tally()
            for _ in range(rounds):
                await executor_way(stub, jobs_for(one, SEQUENTIAL // rounds), 1, mine)
                await upstream_way(jobs_for(one, SEQUENTIAL // rounds), 1, theirs)
            results["sequential_executor_median_ms"] = mine.figures()["median_ms"]
            results["sequential_upstream_median_ms"] = theirs.figures()["median_ms"]
            results["sequential_median_latency_ratio"] = round(
                theirs.figures()["median_ms"] / max(mine.figures()["median_ms"], 1e-9), 2
            )
            for count in counts:
                subset = hosts[:count]
                concurrency = in_flight(count)
                await executor_way(stub, jobs_for(subset, count), concurrency)  # warm-up: sessions
                mine, theirs = Tally(), Tally()
                # The two ways take turns, so that load from elsewhere falls on both alike.
                for _ in range(rounds):
                    await executor_way(stub, jobs_for(subset, actions_per_way // rounds), concurrency, mine)
                    upstream_jobs = jobs_for(subset, actions_per_way // UPSTREAM_SHARE // rounds)
                    await upstream_way(upstream_jobs, concurrency, theirs)
                prefix = f"hosts_{count}"
                results[f"{prefix}_in_flight"] = concurrency
                for way, tally in (("executor", mine), ("upstream", theirs)):
                    for key, value in tally.figures().items():
                        results[f"{prefix}_{way}_{key}"] = value
                results.update(ratios(prefix, mine.figures(), theirs.figures()))
                print(f"{count:3d} hosts: executor {mine.figures()}  upstream {theirs.figures()}", flush=True)
        runner.close()
    finally:
        stop_hosts(hosts)
        shutil.rmtree(work, ignore_errors=True)
    results["target_ratio"] = TARGET_RATIO
    results["actions_per_way"] = actions_per_way
    results["upstream_actions"] = actions_per_way // UPSTREAM_SHARE // rounds * rounds
    results["rounds"] = rounds
    results["load_average_end"] = round(os.getloadavg()[0], 1)
    results["seconds_total"] = round(time.perf_counter() - started, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=400, help="timed executor actions per host count")
    parser.add_argument("--rounds", type=int, default=4, help="turns each way takes per host count")
    parser.add_argument("--quick", action="store_true", help="1 and 10 hosts, fewer actions (a smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "executor.json")
    parser.add_argument(
        "--workdir", default=default_workdir(), help="where the simulated hosts live (default: /dev/shm)"
    )
    args = parser.parse_args()
    configure_logging("warning", "console")
    counts = (1, 10) if args.quick else HOST_COUNTS
    actions = 80 if args.quick else args.actions
    rounds = 2 if args.quick else max(1, args.rounds)
    results = asyncio.run(run(actions, counts, rounds, args.workdir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
