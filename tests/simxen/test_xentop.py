"""The simulated xentop in batch mode: format, CPU percentages, growing counters."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from simxen_fixtures import block

from simxen.host import SimHost
from simxen.xentop import USAGE

HEADER = block("xentop.txt", "xentop -b -i 2 -d 1").output.splitlines()[0]


def rows(text: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in text.splitlines() if line != HEADER}


def test_two_iterations_first_at_zero_percent(local_host: SimHost) -> None:
    local_host.add_wild_domain("busy", memory_mb=128)
    local_host.set_load("busy", 0.5)
    time.sleep(0.25)  # past its boot, when a new guest keeps its vCPU fully busy
    p = local_host.run_xentop("-b", "-i", "2", "-d", "0.3")
    assert p.returncode == 0 and p.stderr == ""
    lines = p.stdout.splitlines()
    assert [lines[0], lines[3]] == [HEADER, HEADER] and len(lines) == 6
    assert [line.split()[3] for line in lines[1:3]] == ["0.0", "0.0"]
    second = rows("\n".join(lines[3:]))
    assert float(second["Domain-0"][3]) == pytest.approx(10.0, abs=1.5)  # 5 % of 2 vCPUs
    assert float(second["busy"][3]) == pytest.approx(50.0, abs=5.0)
    assert second["busy"][1] == "-----r"  # xentop's order: d s b c p r


def test_cpu_seconds_grow_between_calls(local_host: SimHost) -> None:
    local_host.add_wild_domain("busy", vcpus=4)
    local_host.set_load("busy", 1.0)
    first = int(rows(local_host.run_xentop("-b", "-i", "1").stdout)["busy"][2])
    time.sleep(0.3)  # four busy vCPUs: at least 1.2 CPU seconds
    second = int(rows(local_host.run_xentop("-b", "-i", "1").stdout)["busy"][2])
    assert second >= first + 1


def test_full_output_with_devices(local_host: SimHost, domu_cfg: Path, tmp_path: Path) -> None:
    assert local_host.run_xl("create", str(domu_cfg)).returncode == 0
    disk = tmp_path / "disk.img"
    disk.write_text("")
    assert local_host.run_xl("block-attach", "domu1", f"file:{disk},xvdb,w").returncode == 0
    time.sleep(0.5)
    out = local_host.run_xentop("-b", "-i", "1", "-f", "-x", "-n", "-v", "-r").stdout.splitlines()
    assert out[0] == HEADER and out[3] == HEADER  # -r: a header before each domain
    assert re.fullmatch(r"VCPUs\(sec\):   0: +\d+s  1: +\d+s", out[2])
    assert re.fullmatch(r"VCPUs\(sec\):   0: +\d+s", out[5])
    assert re.fullmatch(
        r"Net0 RX: +\d+bytes +\d+pkts +0err +0drop  TX: +\d+bytes +\d+pkts +0err +0drop", out[6]
    )
    assert re.fullmatch(
        r"VBD BlkBack 51728 \[ca:10\]  OO: +0   RD: +\d+   WR: +\d+   RSECT: +\d+   WSECT: +\d+", out[7]
    )
    domu1 = rows(out[4])["domu1"]
    assert (domu1[9], domu1[12]) == ("1", "1")  # NETS, VBDS


def test_crashed_and_paused_flags(local_host: SimHost) -> None:
    local_host.add_wild_domain("c")
    local_host.add_wild_domain("p")
    local_host.crash("c")
    local_host.pause_guest("p")
    got = rows(local_host.run_xentop("-b", "-i", "1").stdout)
    assert (got["c"][1], got["p"][1]) == ("---c--", "----p-")


def test_interactive_mode_and_usage(local_host: SimHost) -> None:
    p = local_host.run_xentop()
    assert (p.returncode, p.stderr) == (1, "Error opening terminal: unknown.\n")
    p = local_host.run_xentop("-h")
    assert (p.returncode, p.stdout) == (0, USAGE.format(prog="/usr/lib/xen-4.17/bin/xentop"))
    p = local_host.run_xentop("--bogus")
    assert (p.returncode, p.stderr) == (0, "/usr/lib/xen-4.17/bin/xentop: unrecognized option '--bogus'\n")
