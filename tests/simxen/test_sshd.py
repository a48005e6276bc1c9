"""Simulated hosts reached over real SSH: host-key checking, environment, restart, migration."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import pytest
from simxen_fixtures import FAST, block

from simxen import testing
from simxen.host import SimHost, _descendants

pytestmark = pytest.mark.slow


def test_paramiko_with_known_hosts_runs_sudo_xl_info(sim_host: SimHost) -> None:
    client = testing.ssh_client(sim_host)
    try:
        rc, out, err = testing.ssh_run(client, "sudo -n xl info")
        assert (rc, err) == (0, "")
        assert (
            out.startswith("host                   : xen1\n") and "xen_version            : 4.17.5\n" in out
        )
        rc, out, _ = testing.ssh_run(client, "timeout --kill-after=5 30 sudo -n xl list")
        assert rc == 0 and out.splitlines()[0].startswith("Name ")
        rc, out, _ = testing.ssh_run(client, "command -v xl xentop sudo; echo $SIMXEN_STATE")
        expected = [sim_host.xl_path, sim_host.xentop_path, sim_host.sudo_path, sim_host.state_dir]
        assert out.split() == [str(p) for p in expected]
        rc, out, err = testing.ssh_run(client, "xl list nosuchdom")
        assert (rc, out, err) == (1, "", "nosuchdom is an invalid domain identifier (rc=-6)\n")
    finally:
        client.close()


def test_an_unknown_host_key_is_refused(sim_host: SimHost, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException):
        testing.ssh_client(sim_host, known_hosts=empty)
    # same address and port, but another host's keys: a changed host key
    other = SimHost.prepare(tmp_path / "other", "impostor")
    other._prepare_keys()
    wrong = tmp_path / "wrong_known_hosts"
    keys = [(other.host_dir / f"ssh_host_{k}_key.pub").read_text().split()[:2] for k in ("ed25519", "rsa")]
    wrong.write_text("".join(f"[127.0.0.1]:{sim_host.port} {kind} {blob}\n" for kind, blob in keys))
    with pytest.raises(paramiko.BadHostKeyException):
        testing.ssh_client(sim_host, known_hosts=wrong)


def test_openssh_client_with_strict_checking(sim_host: SimHost) -> None:
    p = subprocess.run(
        sim_host.ssh_argv("xl", "domid", "Domain-0"), capture_output=True, text=True, timeout=30
    )
    assert (p.returncode, p.stdout) == (0, "0\n")


def test_restart_keeps_state_and_keys(sim_host: SimHost) -> None:
    sim_host.add_wild_domain("survivor")
    old_pid = sim_host.sshd_pid
    sim_host.restart_sshd()
    assert sim_host.sshd_pid not in (None, old_pid)
    client = testing.ssh_client(sim_host)
    try:
        rc, out, _ = testing.ssh_run(client, "xl domid survivor")
        assert (rc, out) == (0, "1\n")
    finally:
        client.close()


def test_stop_ends_every_process_it_started(tmp_path: Path, xl_parser: Path) -> None:
    host = SimHost.start(tmp_path / "hosts", "xen9", **FAST)
    host.hang("list")
    client = testing.ssh_client(host)
    try:
        chan = client.get_transport().open_session()  # type: ignore[union-attr]
        chan.exec_command("xl list")
        pid = host.sshd_pid
        assert pid is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(_runs_xl(host, p) for p in _descendants(pid)):
            time.sleep(0.1)
        started = _descendants(pid)
        assert any(_runs_xl(host, p) for p in started)
        host.stop()
        assert all(not _cmdline(p) for p in [*started, pid])
    finally:
        client.close()
        host.stop()


def test_stop_also_ends_sessions_accepted_before_a_restart(tmp_path: Path, xl_parser: Path) -> None:
    host = SimHost.start(tmp_path / "hosts", "xen8", **FAST)
    host.hang("list")
    client = testing.ssh_client(host)
    try:
        chan = client.get_transport().open_session()  # type: ignore[union-attr]
        chan.exec_command("xl list")
        old_listener = host.sshd_pid
        assert old_listener is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(_runs_xl(host, p) for p in _descendants(old_listener)):
            time.sleep(0.1)
        started = _descendants(old_listener)
        assert any(_runs_xl(host, p) for p in started)
        host.restart_sshd()
        assert host.sshd_pid is not None and not set(started) & set(_descendants(host.sshd_pid))
        assert all(_cmdline(p) for p in started)  # the restart left the session alone...
        host.stop()
        assert all(not _cmdline(p) for p in started)  # ...and stop() ended it all the same
    finally:
        client.close()
        host.stop()


def test_sessions_have_their_own_empty_home(sim_host: SimHost) -> None:
    client = testing.ssh_client(sim_host)
    try:
        rc, out, _ = testing.ssh_run(client, 'echo "$HOME"; ls -A "$HOME" | wc -l; cd && pwd')
        assert (rc, out.split()) == (0, [str(sim_host.home_dir), "0", str(sim_host.home_dir)])
    finally:
        client.close()


def _runs_xl(host: SimHost, pid: int) -> bool:
    """The Python wrapper's interpreter, or the fork server's client (bin/xl itself)."""
    cmdline = _cmdline(pid)
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = ""
    return "simxen.xl" in cmdline or (bool(cmdline) and exe == str(host.xl_path.resolve()))


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return ""
    return "" if stat[stat.rfind(")") + 2] == "Z" else raw.replace(b"\0", b" ").decode()


def test_migration_between_two_hosts(two_sim_hosts: tuple[SimHost, SimHost], domu_cfg: Path) -> None:
    xen1, xen2 = two_sim_hosts
    assert xen1.run_xl("create", str(domu_cfg)).returncode == 0
    client = testing.ssh_client(xen1)
    try:
        rc, out, err = testing.ssh_run(client, "xl migrate domu1 xen2")
        assert (rc, out) == (0, "")
        ref = block("xl_migrate_two_hosts.txt", "xl migrate -s 'ssh -o StrictHostKeyChecking=no "
                    "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR' domu1 169.254.100.2")  # fmt: skip
        mfn = re.compile(r"mfn 0x[0-9a-f]+|domain \d+,")
        assert sorted(mfn.sub("X", line) for line in err.splitlines()) == sorted(
            mfn.sub("X", line) for line in ref.output.splitlines()
        )
        assert xen1.run_xl("list", "domu1").returncode == 1
        assert xen2.run_xl("domid", "domu1").stdout == "1\n"

        # the way back, with an explicit ssh command as OpenNebula passes one
        client2 = testing.ssh_client(xen2)
        try:
            rc, _, err = testing.ssh_run(client2, "sudo -n xl migrate -s 'ssh -o LogLevel=ERROR' domu1 xen1")
            assert rc == 0 and err.endswith("Migration successful.\n")
        finally:
            client2.close()
        assert xen1.run_xl("domid", "domu1").stdout == "2\n"

        # a destination that cannot be reached: the domain stays where it is
        rc, _, err = testing.ssh_run(client, "xl migrate domu1 nosuchhost")
        lines = err.splitlines()
        assert rc == 1
        assert lines[-2] == (
            "libxl: error: libxl_utils.c:505:libxl_read_exactly: file/stream truncated reading banner "
            "from migration receiver stream"
        )
        assert re.fullmatch(
            r"libxl: info: libxl_exec.c:117:libxl_report_child_exitstatus: migration transport process "
            r"\[\d+\] exited with error status 255",
            lines[-1],
        )
        assert xen1.run_xl("domid", "domu1").stdout == "2\n"
    finally:
        client.close()


def test_migration_to_the_same_host_renames_around_the_handshake(sim_host: SimHost, domu_cfg: Path) -> None:
    assert sim_host.run_xl("create", str(domu_cfg)).returncode == 0
    client = testing.ssh_client(sim_host)
    try:
        rc, _, err = testing.ssh_run(client, "xl migrate domu1 xen1")
        assert rc == 0, err
    finally:
        client.close()
    assert sim_host.run_xl("domid", "domu1").stdout == "2\n"
    assert [d["name"] for d in sim_host.domains()] == ["Domain-0", "domu1"]


def test_cli_up_serves_until_sigterm(tmp_path: Path, xl_parser: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "simxen", "up", "--workdir", str(tmp_path / "cli"), "--name", "xenc",
         "--fact", "nr_cpus=4"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert set(info) >= {"name", "address", "port", "user", "key", "known_hosts", "state_dir", "xl_path"}
        host = SimHost(name="xenc", workdir=tmp_path / "cli", port=info["port"])
        client = testing.ssh_client(host)
        try:
            assert testing.ssh_run(client, "xl info nr_cpus")[1] == "4\n"
        finally:
            client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        with pytest.raises(OSError):
            __import__("socket").create_connection(("127.0.0.1", info["port"]), timeout=1).close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
