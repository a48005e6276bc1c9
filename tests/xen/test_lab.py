"""The Xen lab's own tests: its pure parts (fast), and a smoke test of a running lab (`xen`)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest
from xenlabkit import cli, preflight
from xenlabkit.client import ConnectionLost, Dom0, connect
from xenlabkit.diagnose import host_report, telling_lines
from xenlabkit.errors import Refused
from xenlabkit.recipe import Image
from xenlabkit.run import Lab, dom0_known_hosts, outside_known_hosts, plan_hosts, qemu_argv
from xenlabkit.state import HostInfo, LabInfo, Peer

GUEST = "/var/lib/xenlab/guest"

# ---------------------------------------------------------------- pure parts (no QEMU)


def test_qemu_command_line_carries_the_tcg_facts_and_stays_on_loopback(tmp_path: Path) -> None:
    first, second = plan_hosts(tmp_path, 2, [40001, 40002], 40100)
    argv = qemu_argv(second, Image(tmp_path / "image"))
    line = " ".join(argv)
    cpu = argv[argv.index("-cpu") + 1].split(",")
    assert cpu[0] == "Opteron_G3" and {"+svm", "+npt", "-rdtscp"} <= set(cpu)  # no XSAVE, see run.CPU
    assert argv[argv.index("-accel") + 1] == "tcg,thread=multi,tb-size=256"
    assert "sched=credit" in argv[argv.index("-append") + 1]
    assert "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:40002-:22" in argv
    assert "socket,id=n1,connect=127.0.0.1:40100" in argv
    assert f"-pidfile {second.pidfile} -daemonize" in line
    assert first.link == ("listen", 40100) and (first.peer, second.peer) == ("xen2", "xen1")


def test_host_keys_are_known_before_any_connection(tmp_path: Path) -> None:
    plans = plan_hosts(tmp_path, 2, [40001, 40002], 40100)
    keys = {"xen1": "ssh-ed25519 AAAA1 c1", "xen2": "ssh-ed25519 AAAA2 c2"}
    assert outside_known_hosts(plans, keys) == (
        "[127.0.0.1]:40001 ssh-ed25519 AAAA1\n[127.0.0.1]:40002 ssh-ed25519 AAAA2\n"
    )
    inside = dom0_known_hosts(plans, keys, plans[0]).splitlines()
    assert inside == [
        "xen1,169.254.100.1,localhost,127.0.0.1 ssh-ed25519 AAAA1",
        "xen2,169.254.100.2 ssh-ed25519 AAAA2",
    ]


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        (lambda: preflight.check_arch("aarch64"), "arch"),
        (lambda: preflight.check_memory(5 * preflight.GIB, 2), "memory"),
        (lambda: preflight.check_disk(Path("/x"), preflight.GIB, 6 * preflight.GIB, "building"), "disk"),
        (lambda: preflight.check_root(1000, ["qemu-system-x86"]), "root"),
    ],
)
def test_refusals_say_why_in_one_line(check: Callable[[], None], reason: str) -> None:
    with pytest.raises(Refused) as refusal:
        check()
    assert refusal.value.reason == reason and "\n" not in str(refusal.value)


def test_machines_that_can_run_it_are_not_refused() -> None:
    preflight.check_arch("x86_64")
    preflight.check_memory(6 * preflight.GIB, 2)
    preflight.check_root(1000, [])
    assert preflight.mem_available("MemTotal: 8 kB\nMemAvailable:    2048 kB\n") == 2048 * 1024


def test_a_refusal_is_exit_77_and_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(**_: object) -> None:
        raise Refused("memory", "1.0 GiB of memory available, the lab needs 6 GiB")

    monkeypatch.setattr(preflight, "check_machine", refuse)
    assert cli.main(["check"]) == 77
    assert (
        capsys.readouterr().err
        == "xenlab: cannot run here (memory): 1.0 GiB of memory available, the lab needs 6 GiB\n"
    )


def test_description_round_trips(tmp_path: Path) -> None:
    host = HostInfo("xen1", "127.0.0.1", 40001, "oneadmin", "/k", "/kh", "ssh-ed25519 A", "/s", 42, "/r",
                    "169.254.100.1", Peer("xen2", "169.254.100.2"))  # fmt: skip
    info = LabInfo("/r", "/i", "abc", "/k", "/kh", "now", {"xen1": host}, ready=True)
    again = LabInfo.from_json(info.to_json())
    assert again == info and json.loads(info.to_json())["hosts"]["xen1"]["peer"]["address"] == "169.254.100.2"


def test_down_never_kills_a_process_that_is_not_its_qemu(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "xenlab.json")
    assert lab.down() == 0  # nothing started: nothing to do
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (lab.run_dir / "xen1").mkdir(parents=True)
        (lab.run_dir / "xen1" / "qemu.pid").write_text(f"{bystander.pid}\n")
        assert lab.down() == 0
        assert bystander.poll() is None
        assert not (lab.run_dir / "xen1" / "qemu.pid").exists()
    finally:
        bystander.kill()
        bystander.wait()


def _dead_host(tmp_path: Path, serial: str) -> HostInfo:
    (tmp_path / "serial.log").write_text(serial)
    (tmp_path / "qemu.log").write_text("qemu-system-x86_64: terminating on signal 15\n")
    return HostInfo(
        name="xen1", address="127.0.0.1", port=1, user="oneadmin", key="k", known_hosts="kh",
        host_key="h", serial_log=str(tmp_path / "serial.log"), qemu_pid=2**22 + 1, run_dir=str(tmp_path),
    )  # fmt: skip


def test_a_lost_host_is_reported_with_what_it_printed_last(tmp_path: Path) -> None:
    chatter = [f"[   {n}.000000] boot chatter {n}" for n in range(3000)]
    panic = "[ 4242.000000] Kernel panic - not syncing: Attempted to kill init!"
    report = host_report(_dead_host(tmp_path, "\n".join([*chatter[:2500], panic, *chatter[2500:]])))
    assert report.splitlines()[0] == f"xen1: QEMU pid {2**22 + 1} GONE"
    assert panic in report and chatter[-1] in report and "boot chatter 1000\n" not in report
    assert "terminating on signal 15" in report


def test_only_telling_serial_lines_are_picked() -> None:
    text = "ok\n(XEN) FATAL TRAP: vector = 6\nfine\nsshd[1]: error: Mismatched MAC\n[ 1.0] oom-kill:x"
    assert telling_lines(text) == [
        "(XEN) FATAL TRAP: vector = 6", "sshd[1]: error: Mismatched MAC", "[ 1.0] oom-kill:x"
    ]  # fmt: skip


# ---------------------------------------------------------------- the running lab


@pytest.mark.xen
def test_a_dropped_connection_is_explained_and_replaced(xenlab: LabInfo) -> None:
    dom0 = Dom0(xenlab.hosts["xen1"])
    try:
        with pytest.raises(ConnectionLost) as lost:
            dom0.run("kill -9 $PPID; sleep 30")  # the connection's own sshd process
        text = str(lost.value)
        assert f"QEMU pid {xenlab.hosts['xen1'].qemu_pid} alive" in text, text
        assert "a new SSH connection works" in text, text
        assert dom0.check("echo back") == "back\n"
    finally:
        dom0.close()


@pytest.mark.xen
def test_xl_info_as_oneadmin_through_sudo(xenlab_ssh: Callable[..., Dom0]) -> None:
    info = xenlab_ssh("xen1").check("sudo -n xl info")
    assert re.search(r"^xen_scheduler\s+: credit$", info, re.M), info
    assert re.search(r"^xen_version\s+: 4\.17\.", info, re.M), info


@pytest.mark.xen
def test_an_unknown_host_key_is_refused(xenlab: LabInfo, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException):
        connect(xenlab.hosts["xen1"], "oneadmin", known_hosts=str(empty))


@pytest.mark.xen
def test_dom0_has_the_guest_material_and_opennebula_dirs(xenlab_ssh: Callable[..., Dom0]) -> None:
    dom0 = xenlab_ssh("xen1")
    names = set(dom0.check(f"ls {GUEST}").split())
    assert {"vmlinuz", "initrd.cpio.gz", "pv.cfg", "pvh.cfg", "hvm.cfg", "stubborn.cfg"} <= names
    assert {"disk1.img", "disk2.img"} <= names
    dom0.check("test -w /var/lib/one/datastores/0 && test -w /var/tmp/one")
    assert dom0.check("sudo -n xl list").startswith("Name")
    assert dom0.run("sudo -n id").rc != 0  # sudo is for xl and xentop only


@pytest.mark.xen
def test_pv_guest_create_and_destroy(xenlab_ssh: Callable[..., Dom0]) -> None:
    dom0, root = xenlab_ssh("xen1"), xenlab_ssh("xen1", user="root")
    dom0.run("sudo -n xl destroy xenlab-pv")  # a leftover from an interrupted run
    dom0.check(f"sudo -n xl create {GUEST}/pv.cfg")
    try:
        assert "xenlab-pv" in dom0.check("sudo -n xl list xenlab-pv")
        deadline = time.monotonic() + 120
        console = "/var/log/xen/console/guest-xenlab-pv.log"
        while "XENLAB-DOMU-UP" not in root.run(f"cat {console}").stdout:
            assert time.monotonic() < deadline, root.run(f"tail -20 {console}").stdout
            time.sleep(2)
    finally:
        dom0.check("sudo -n xl destroy xenlab-pv")
    assert dom0.run("sudo -n xl list xenlab-pv").rc == 1


@pytest.mark.xen
def test_lab_hosts_reach_each_other_as_oneadmin(xenlab: LabInfo, xenlab_ssh: Callable[..., Dom0]) -> None:
    host = xenlab.hosts["xen1"]
    if host.peer is None:
        pytest.skip("one-host lab")
    out = xenlab_ssh("xen1").check(f"ssh -o BatchMode=yes {host.peer.name} sudo -n xl info")
    assert re.search(rf"^host\s+: {host.peer.name}$", out, re.M), out
