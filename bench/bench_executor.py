"""Executor against the upstream way: actions per second and latency on 1, 10 and 50 Xen hosts.

The hosts are simulated (simxen: real sshd, simulated xl). The same action runs both ways on
the same hosts with the same number of actions in flight:

- executor: the SetCredit RPC through an in-process ExecutorService (gRPC, pooled SSH
  session per host, `timeout ... sudo -n xl sched-credit -d D -w W` on a channel);
- upstream: one new `ssh host sudo -n xl sched-credit -d D -w W` process per action, as
  OpenNebula's driver does (it adds a script upload on top, which is left out here).

Both end on the same xl command, so the simulated xl's own cost (a Python process, ~0.1 s of
CPU) is in both figures; `transport_*` isolates what each way adds around a command (`true`).
The executor's sessions are opened by one warm-up action per host before timing (they live
as long as the service). Writes bench/results/executor.json: a flat object of named numbers
plus a `machine` description.

    python bench/bench_executor.py [--actions 120] [--quick]
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
SEQUENTIAL = 20
TARGET_RATIO = 10.0


def in_flight(hosts: int) -> int:
    # One host: its 8 channels. More hosts: about OpenNebula's default of 15 driver threads.
    return 8 if hosts == 1 else 16


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def jobs_for(hosts: list[SimHost], count: int) -> list[tuple[SimHost, str, int]]:
    return [
        (hosts[i % len(hosts)], f"bench-{(i // len(hosts)) % DOMAINS_PER_HOST}", 256 + i % 512)
        for i in range(count)
    ]


async def timed_batch(jobs: list[Any], concurrency: int, one: Any) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    gate = asyncio.Semaphore(concurrency)

    async def run(job: Any) -> None:
        nonlocal failures
        async with gate:
            started = time.perf_counter()
            ok = await one(job)
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(run(job) for job in jobs))
    wall = time.perf_counter() - started
    return {
        "actions_per_second": round(len(latencies) / wall, 2),
        "median_ms": round(statistics.median(latencies) * 1000, 1) if latencies else 0.0,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else 0.0,
        "failed": failures,
        "seconds": round(wall, 2),
    }


async def executor_way(stub: executor_pb2_grpc.ExecutorServiceStub, jobs: list[Any], concurrency: int) -> Any:
    async def one(job: tuple[SimHost, str, int]) -> bool:
        host, domain, weight = job
        try:
            await stub.SetCredit(
                executor_pb2.SetCreditRequest(host=host.name, domain=domain, weight=weight), timeout=60
            )
        except grpc.aio.AioRpcError:
            return False
        return True

    return await timed_batch(jobs, concurrency, one)


async def upstream_way(jobs: list[Any], concurrency: int) -> Any:
    async def one(job: tuple[SimHost, str, int]) -> bool:
        host, domain, weight = job
        argv = host.ssh_argv("sudo", "-n", "/usr/sbin/xl", "sched-credit", "-d", domain, "-w", str(weight))
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        await proc.communicate()
        return proc.returncode == 0

    return await timed_batch(jobs, concurrency, one)


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


def simulated_xl_figures(host: SimHost, samples: int = 10) -> dict[str, float]:
    """One simulated `xl sched-credit` run locally, without SSH: the floor under both ways."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    walls = []
    for _ in range(samples):
        started = time.perf_counter()
        host.run_xl("sched-credit", "-d", "bench-0", "-w", "256")
        walls.append(time.perf_counter() - started)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
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


async def run(actions_per_way: int, counts: tuple[int, ...]) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine()}
    work = Path(tempfile.mkdtemp(prefix="bench-executor-"))
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
            mine = await executor_way(stub, jobs_for(one, SEQUENTIAL), 1)
            theirs = await upstream_way(jobs_for(one, SEQUENTIAL), 1)
            results["sequential_executor_median_ms"] = mine["median_ms"]
            results["sequential_upstream_median_ms"] = theirs["median_ms"]
            results["sequential_median_latency_ratio"] = round(
                theirs["median_ms"] / max(mine["median_ms"], 1e-9), 2
            )
            for count in counts:
                subset = hosts[:count]
                concurrency = in_flight(count)
                await executor_way(stub, jobs_for(subset, count), concurrency)  # warm-up: sessions
                mine = await executor_way(stub, jobs_for(subset, actions_per_way), concurrency)
                theirs = await upstream_way(jobs_for(subset, actions_per_way // 2), concurrency)
                prefix = f"hosts_{count}"
                results[f"{prefix}_in_flight"] = concurrency
                for way, figures in (("executor", mine), ("upstream", theirs)):
                    for key, value in figures.items():
                        results[f"{prefix}_{way}_{key}"] = value
                results[f"{prefix}_throughput_ratio"] = round(
                    mine["actions_per_second"] / max(theirs["actions_per_second"], 1e-9), 2
                )
                results[f"{prefix}_median_latency_ratio"] = round(
                    theirs["median_ms"] / max(mine["median_ms"], 1e-9), 2
                )
                print(f"{count:3d} hosts: executor {mine}  upstream {theirs}", flush=True)
        runner.close()
    finally:
        stop_hosts(hosts)
        shutil.rmtree(work, ignore_errors=True)
    results["target_ratio"] = TARGET_RATIO
    results["actions_per_way"] = actions_per_way
    results["seconds_total"] = round(time.perf_counter() - started, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=120, help="timed executor actions per host count")
    parser.add_argument("--quick", action="store_true", help="1 and 10 hosts, fewer actions (a smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "executor.json")
    args = parser.parse_args()
    configure_logging("warning", "console")
    counts = (1, 10) if args.quick else HOST_COUNTS
    actions = 40 if args.quick else args.actions
    results = asyncio.run(run(actions, counts))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
