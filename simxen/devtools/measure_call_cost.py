"""What one simulated ``xl``/``xentop`` call costs: CPU (user+sys of the child processes) and wall.

    python -m simxen.devtools.measure_call_cost [--calls 50] [--ssh] [--workdir DIR]

Makes a throwaway host with one guest (so device lists and ``list -l`` have something to print),
then runs each common verb ``--calls`` times through the host's ``bin/xl`` (as ``host.run_xl``
does) and, with ``--ssh``, through ``ssh host sudo -n xl ...`` (one ssh process per call, as the
executor's baseline does).  CPU comes from ``getrusage(RUSAGE_CHILDREN)`` (every process a call
started: the sh wrapper and python; over SSH the ssh client) plus, over SSH, the growth of the
sshd listener's cutime+cstime (the session processes it reaped: sshd's session, the user's shell,
sudo, xl), so it does not depend on how busy the machine is.

Each verb is measured twice: through the fork server (``bin/xl``, see simxen.zygote; its CPU adds
the server's own, its workers' and that of the children it forked and reaped) and through the Python wrapper
that runs without a server (``bin/.xl.py-wrapper``: one interpreter start per call).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from simxen import zygote
from simxen.host import SimHost, wrapper_python

GUEST_CONFIG: dict[str, Any] = {
    "c_info": {"type": "pv", "name": "bench1"},
    "b_info": {"max_memkb": 131072, "target_memkb": 131072, "kernel": "/boot/vmlinuz", "type.pv": {}},
    "disks": [{"pdev_path": "/dev/null", "vdev": "xvda", "format": "raw", "readwrite": 1}],
    "nics": [{"mac": "00:16:3e:00:00:01", "bridge": "xenbr0"}],
}

CALLS: list[tuple[str, list[str]]] = [
    ("xl list", ["xl", "list"]),
    ("xl list -l", ["xl", "list", "-l"]),
    ("xl info", ["xl", "info"]),
    ("xl sched-credit -d bench1", ["xl", "sched-credit", "-d", "bench1"]),
    ("xl domid bench1", ["xl", "domid", "bench1"]),
    ("xl block-list bench1", ["xl", "block-list", "bench1"]),
    ("xl network-list bench1", ["xl", "network-list", "bench1"]),
    ("xentop -b -i 1", ["xentop", "-b", "-i", "1"]),
]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _reaped_cpu(pid: int | None, own: bool = False) -> float:
    """CPU of the children ``pid`` has reaped (cutime + cstime of /proc/PID/stat), with ``own``
    also its own (utime + stime)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[13]) + int(fields[14]) + (int(fields[11]) + int(fields[12]) if own else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def _server_cpu(pid: int | None) -> dict[int, float]:
    """CPU of the fork server (its own and its reaped children's) and of its live children (the
    workers), by pid."""
    if pid is None:
        return {}
    found = {pid: _reaped_cpu(pid, own=True)}
    for child, _ in zygote.children(pid):
        with contextlib.suppress(OSError):  # ended meanwhile: in the server's reaped figure
            found[child] = _reaped_cpu(child, own=True)
    return found


def measure(
    argv: list[str], calls: int, sshd_pid: int | None = None, zygote_pid: int | None = None
) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per call, averaged over ``calls`` sequential calls."""
    cpu0, wall0 = _cpu(), time.perf_counter()
    srv0 = _reaped_cpu(sshd_pid)
    server0 = _server_cpu(zygote_pid)
    for _ in range(calls):
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True)
        if proc.returncode != 0:
            raise SystemExit(f"{argv} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    wall = time.perf_counter() - wall0
    server = _server_cpu(zygote_pid)
    cpu = _cpu() - cpu0 + _reaped_cpu(sshd_pid) - srv0
    cpu += sum(t - server0.get(p, 0.0) for p, t in server.items())  # a new worker counts from zero
    return cpu / calls, wall / calls


def add_guest(host: SimHost) -> None:
    from simxen.model import Disk, Nic

    facts = host.store.facts()
    with host.store.transaction(facts=facts) as state:
        dom = state.build_domain(
            {k: v for k, v in GUEST_CONFIG.items() if k not in ("disks", "nics")}, time.time(), facts
        )
        dom.disks = [
            Disk(devid=51712, vdev="xvda", spec=dict(GUEST_CONFIG["disks"][0]), evtch=10, ring_ref=522)
        ]
        dom.nics = [Nic(devid=0, spec=dict(GUEST_CONFIG["nics"][0]), rref_tx=520, rref_rx=521, evtch=11)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--ssh", action="store_true", help="also measure one `ssh host sudo -n ...` per call")
    ap.add_argument("--workdir", type=Path, help="where to make the host (default: a temporary dir)")
    args = ap.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="simxen-cost-"))
    host = SimHost.start(workdir, "cost1") if args.ssh else SimHost.prepare(workdir, "cost1")
    try:
        add_guest(host)
        zygote_pid = host.zygote_pid
        deadline = time.monotonic() + 10
        while zygote_pid is not None and not zygote.answering(host.bin_dir) and time.monotonic() < deadline:
            time.sleep(0.02)
        if zygote_pid is None or not zygote.answering(host.bin_dir):
            print("no fork server (no gcc?): bin/xl runs the Python wrapper")
            zygote_pid = None
        python = wrapper_python()
        cpu, wall = measure([python, "-I", "-S", "-c", "pass"], args.calls)
        print(f"{python} -I -S -c pass: {cpu * 1e3:.1f} ms CPU, {wall * 1e3:.1f} ms wall (the floor)")
        print(
            f"{'call':28} {'path':8} {'local cpu':>10} {'local wall':>11}"
            + (f" {'ssh cpu':>9} {'ssh wall':>9}" if args.ssh else "")
        )
        for label, argv in CALLS:
            ways: list[tuple[str, str, int | None]] = (
                [("server", argv[0], zygote_pid)] if zygote_pid is not None else []
            )
            if (host.bin_dir / zygote.fallback_name(argv[0])).exists():
                ways.append(("python", zygote.fallback_name(argv[0]), None))
            for way, tool, pid in ways:
                local = [str(host.bin_dir / tool), *argv[1:]]
                measure(local, 2)  # warm the page cache and __pycache__
                cpu, wall = measure(local, args.calls, zygote_pid=pid)
                line = f"{label:28} {way:8} {cpu * 1e3:8.1f}ms {wall * 1e3:9.1f}ms"
                if args.ssh:
                    # `sudo -n xl ...` as the executor runs it; the wrapper by its path
                    remote = host.ssh_argv("sudo", "-n", *(argv if way == "server" else local))
                    measure(remote, 2, host.sshd_pid)
                    scpu, swall = measure(remote, args.calls, host.sshd_pid, pid)
                    line += f" {scpu * 1e3:7.1f}ms {swall * 1e3:7.1f}ms"
                print(line, flush=True)
    finally:
        host.stop()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
