"""Fault and event injection, through the Python API and the onexen-simxen CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from simxen import inject
from simxen.host import SimHost


def test_fail_once_then_work(local_host: SimHost) -> None:
    local_host.fail("list", rc=3, stderr="libxl: error: xenstore gone", count=1)
    p = local_host.run_xl("list")
    assert (p.returncode, p.stdout, p.stderr) == (3, "", "libxl: error: xenstore gone\n")
    assert local_host.run_xl("list").returncode == 0


def test_fail_only_matching_arguments_until_cleared(local_host: SimHost) -> None:
    local_host.fail("list", rc=1, match="-l")
    assert local_host.run_xl("list").returncode == 0
    assert local_host.run_xl("list", "-l").returncode == 1
    assert local_host.run_xl("list", "-l").returncode == 1
    local_host.clear_faults("list")
    assert local_host.run_xl("list", "-l").returncode == 0


def test_slow_and_hang(local_host: SimHost) -> None:
    local_host.slow("info", 0.5, count=1)
    start = time.monotonic()
    assert local_host.run_xl("info").returncode == 0
    assert time.monotonic() - start >= 0.5
    local_host.hang("xentop", count=1)
    with pytest.raises(subprocess.TimeoutExpired):
        local_host.run_xentop("-b", "-i", "1", timeout=0.6)
    assert local_host.run_xentop("-b", "-i", "1").returncode == 0


def test_crash_pause_poweroff_and_wild_guests(local_host: SimHost) -> None:
    local_host.add_wild_domain("wild1", memory_mb=64, vcpus=2)
    local_host.add_wild_domain("wild2")
    local_host.add_wild_domain("wild3")
    out = local_host.run_xl("list").stdout
    assert "wild1                                        1    64     2" in out
    local_host.crash("wild1")
    local_host.pause_guest("wild2")
    local_host.guest_poweroff("wild3")
    states = {d["name"]: d["state"] for d in local_host.domains()}
    assert (states["wild1"], states["wild2"], states["wild3"]) == ("---sc-", "--p---", "--ps--")
    time.sleep(0.4)
    assert "wild3" not in {d["name"] for d in local_host.domains()}
    with pytest.raises(inject.NoSuchDomain):
        local_host.crash("nosuch")


def test_cli_fault_and_event(local_host: SimHost) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "simxen", *args], capture_output=True, text=True, timeout=30
        )

    sd = str(local_host.state_dir)
    assert (
        cli(
            "fault", "--state-dir", sd, "add", "create", "--fail", "3", "--stderr", "boom", "--count", "2"
        ).returncode
        == 0
    )
    assert json.loads(cli("fault", "--state-dir", sd, "list").stdout)["count"] == 2
    assert cli("event", "--state-dir", sd, "wild", "hand-made").stdout == "1\n"
    assert cli("event", "--state-dir", sd, "crash", "hand-made").returncode == 0
    domains = json.loads(cli("domains", "--state-dir", sd).stdout)
    assert [(d["name"], d["state"]) for d in domains] == [("Domain-0", "r-----"), ("hand-made", "---sc-")]
    assert local_host.run_xl("create", "/dev/null").returncode == 3
    assert cli("fault", "--state-dir", sd, "clear").returncode == 0
    assert cli("event", "--state-dir", sd, "crash", "nosuch").returncode == 1


def test_twenty_parallel_creates_get_distinct_domids(local_host: SimHost, tmp_path: Path) -> None:
    for i in range(20):
        (tmp_path / f"g{i}.cfg").write_text(f'name = "g{i}"\ntype = "pv"\nkernel = "/k"\nmemory = 32\n')
    with ThreadPoolExecutor(20) as pool:
        results = list(
            pool.map(lambda i: local_host.run_xl("create", str(tmp_path / f"g{i}.cfg")), range(20))
        )
    assert [r.returncode for r in results] == [0] * 20
    listed = local_host.run_xl("list").stdout.splitlines()[2:]
    ids = sorted(int(line.split()[1]) for line in listed)
    assert ids == list(range(1, 21))
    assert sorted(line.split()[0] for line in listed) == sorted(f"g{i}" for i in range(20))
