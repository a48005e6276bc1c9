"""The SSH layer against real sshd: reuse, reconnection, channel limits, host keys, output, files."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import grpc
import paramiko
import pytest
from executor_hosts import Cluster, start_hosts

from services.executor.errors import (
    AuthenticationFailed,
    HostKeyMismatch,
    HostKeyUnknown,
    HostUnreachable,
    SftpUnavailable,
)
from services.executor.inventory import HostSettings
from services.executor.ssh import HostConnection, fingerprint, known_hosts_name
from simxen.host import SimHost

pytestmark = pytest.mark.slow


def settings(cluster: Cluster, name: str = "xen1", **changes: object) -> HostSettings:
    return replace(cluster.inventory.host(name), **changes)  # type: ignore[arg-type]


def host_fingerprint(host: SimHost) -> str:
    key = paramiko.Ed25519Key.from_private_key_file(str(host.host_dir / "ssh_host_ed25519_key"))
    return fingerprint(key)


@pytest.fixture
def lone_host(tmp_path: Path, cluster: Cluster) -> Iterator[SimHost]:
    """A host of its own, for tests that stop it or restart its sshd."""
    (host,) = start_hosts(tmp_path / "hosts", ["lone"])
    try:
        yield host
    finally:
        host.stop()


def lone_settings(host: SimHost, **changes: object) -> HostSettings:
    base = HostSettings(
        name=host.name,
        address=host.address,
        port=host.port,
        user=host.user,
        key=str(host.key_path),
        known_hosts=str(host.known_hosts_path),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_one_session_serves_many_commands(cluster: Cluster) -> None:
    conn = HostConnection(settings(cluster))
    try:
        results = [conn.run("echo $((6*7))", name="echo", wait=10) for _ in range(20)]
        assert {r.stdout for r in results} == {"42\n"} and conn.connects == 1
        assert all(r.duration < 1.0 for r in results[1:])
    finally:
        conn.close()


def test_big_stdout_and_stderr_together_never_deadlock(cluster: Cluster) -> None:
    conn = HostConnection(settings(cluster))
    try:
        line = "head -c 5000000 /dev/zero | tr '\\0' o; head -c 3000000 /dev/zero | tr '\\0' e >&2; exit 3"
        result = conn.run(line, name="big", wait=30)
        assert (len(result.stdout), len(result.stderr), result.exit_code) == (5_000_000, 3_000_000, 3)
    finally:
        conn.close()


def test_stdin_reaches_the_command(cluster: Cluster) -> None:
    conn = HostConnection(settings(cluster))
    try:
        assert conn.run("wc -c", name="wc", wait=10, stdin=b"x" * 100_000).stdout.strip() == "100000"
    finally:
        conn.close()


def test_quick_commands_in_a_crowd_never_cost_the_session(cluster: Cluster) -> None:
    # A command that ends while its EOF is on the way used to race paramiko's answer to sshd's
    # CLOSE (paramiko#1115): sshd then ended the whole session, and every command on it failed
    # (3 in 1,800 before the fix). Quick commands, many in flight, make that window common.
    conn = HostConnection(settings(cluster))
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda i: conn.run("true", name="true", wait=30), range(1500)))
        assert all(r.ok for r in results)
        assert conn.connects == 1
    finally:
        conn.close()


def test_more_commands_than_sshd_allows_sessions_all_run(cluster: Cluster) -> None:
    # sshd here allows 16 sessions per connection; ask for more channels than that.
    conn = HostConnection(settings(cluster, max_channels=24))
    try:
        with ThreadPoolExecutor(max_workers=40) as pool:
            results = list(pool.map(lambda i: conn.run(f"sleep 0.2; echo {i}", name="x", wait=30), range(40)))
        assert sorted(int(r.stdout) for r in results) == list(range(40))
        assert conn.connects == 1
    finally:
        conn.close()


def test_channels_per_host_are_bounded(cluster: Cluster) -> None:
    conn = HostConnection(settings(cluster, max_channels=3))
    running = 0
    most = 0
    lock = threading.Lock()
    original = conn._open

    def counting_open(*args: object) -> paramiko.Channel:
        nonlocal running, most
        chan = original(*args)  # type: ignore[arg-type]
        with lock:
            running += 1
            most = max(most, running)
        chan_close = chan.close

        def close() -> None:
            nonlocal running
            with lock:
                running -= 1
            chan_close()

        chan.close = close  # type: ignore[method-assign]
        return chan

    conn._open = counting_open  # type: ignore[method-assign]
    try:
        with ThreadPoolExecutor(max_workers=10) as pool:
            list(pool.map(lambda i: conn.run("sleep 0.1", name="x", wait=30), range(10)))
        assert most == 3
    finally:
        conn.close()


def test_an_unreachable_host(cluster: Cluster) -> None:
    conn = HostConnection(settings(cluster, port=1, connect_timeout=2.0))
    with pytest.raises(HostUnreachable, match="refused") as caught:
        conn.run("true", name="true", wait=5)
    assert caught.value.code.name == "UNAVAILABLE" and caught.value.metadata["host"] == "xen1"


def test_sessions_are_remade_after_a_stop_and_survive_an_sshd_restart(lone_host: SimHost) -> None:
    conn = HostConnection(lone_settings(lone_host))
    try:
        assert conn.run("true", name="true", wait=10).ok
        port = lone_host.port
        lone_host.stop()  # kills every session, as a host reboot would
        with pytest.raises(HostUnreachable):
            conn.run("true", name="true", wait=5)
        restarted = SimHost.start(lone_host.workdir, lone_host.name, port)
        assert conn.run("true", name="true", wait=10).ok and conn.connects == 2
        # Restarting the listener leaves established sessions alone (OpenSSH keeps them).
        restarted.restart_sshd()
        assert conn.run("true", name="true", wait=10).ok and conn.connects == 2
        restarted.stop()
    finally:
        conn.close()


def test_a_changed_host_key_is_refused_naming_host_and_fingerprint(cluster: Cluster, tmp_path: Path) -> None:
    xen1, xen2 = cluster.host("xen1"), cluster.host("xen2")
    wrong = tmp_path / "known_hosts"
    # xen2's keys recorded under xen1's name: what a man in the middle (or a reinstall) looks like.
    lines = (xen2.known_hosts_path).read_text().replace(f":{xen2.port} ", f":{xen1.port} ")
    wrong.write_text(lines)
    conn = HostConnection(settings(cluster, known_hosts=str(wrong)))
    with pytest.raises(HostKeyMismatch) as caught:
        conn.run("true", name="true", wait=10)
    error = caught.value
    assert error.code.name == "FAILED_PRECONDITION"
    assert error.metadata["host"] == "xen1"
    assert error.metadata["fingerprint"] == host_fingerprint(xen1)
    assert host_fingerprint(xen1) in error.message and "xen1" in error.message


def test_unknown_hosts_are_refused_unless_accept_new(cluster: Cluster, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    with pytest.raises(HostKeyUnknown, match="accept-new") as caught:
        HostConnection(settings(cluster, known_hosts=str(empty))).run("true", name="true", wait=10)
    assert caught.value.metadata["fingerprint"] == host_fingerprint(cluster.host("xen1"))
    assert not empty.exists()

    learning = HostConnection(settings(cluster, known_hosts=str(empty), host_key_policy="accept-new"))
    assert learning.run("true", name="true", wait=10).ok
    learning.close()
    recorded = empty.read_text()
    assert recorded.startswith("|1|") and recorded.count("\n") == 1  # hashed, like OpenSSH's
    keys = paramiko.HostKeys(str(empty))
    assert keys.lookup(known_hosts_name("127.0.0.1", cluster.host("xen1").port)) is not None
    # Known now: strict checking accepts it, and the file is not written again.
    strict = HostConnection(settings(cluster, known_hosts=str(empty)))
    assert strict.run("true", name="true", wait=10).ok
    strict.close()
    assert empty.read_text() == recorded


def test_accept_new_still_refuses_a_changed_key(cluster: Cluster, tmp_path: Path) -> None:
    xen1, xen2 = cluster.host("xen1"), cluster.host("xen2")
    wrong = tmp_path / "known_hosts"
    wrong.write_text(xen2.known_hosts_path.read_text().replace(f":{xen2.port} ", f":{xen1.port} "))
    conn = HostConnection(settings(cluster, known_hosts=str(wrong), host_key_policy="accept-new"))
    with pytest.raises(HostKeyMismatch):
        conn.run("true", name="true", wait=10)


def test_an_sftp_server_that_will_not_start_is_named_and_the_session_lives_on(lone_host: SimHost) -> None:
    config = lone_host.sshd_config_path
    config.write_text(config.read_text().replace("Subsystem sftp internal-sftp", "Subsystem sftp /bin/false"))
    lone_host.restart_sshd()
    conn = HostConnection(lone_settings(lone_host))
    try:
        with pytest.raises(SftpUnavailable) as failed:
            conn.upload("/var/tmp/onexen-sftp-test/f", b"x", wait=10)
        assert failed.value.code is grpc.StatusCode.UNAVAILABLE, failed.value
        assert "SFTP subsystem of Xen host lone" in str(failed.value), failed.value
        assert conn.run("echo alive", name="echo", wait=10).stdout == "alive\n"
    finally:
        conn.close()


def test_uploads_are_atomic_and_make_directories(cluster: Cluster) -> None:
    conn = HostConnection(settings(cluster))
    target = cluster.datastore / "upload" / "0" / "42" / "deployment.0"
    try:
        conn.upload(str(target), b'name = "one-42"\n', wait=10)
        assert target.read_bytes() == b'name = "one-42"\n'
        assert oct(target.stat().st_mode & 0o777) == "0o644"
        conn.upload(str(target), b"second\n", wait=10)
        assert target.read_bytes() == b"second\n"
        assert os.listdir(target.parent) == ["deployment.0"]  # no temporary files left
        assert conn.read_file(str(target), wait=10) == b"second\n"
        assert conn.read_file(str(target) + ".none", wait=10) is None
        assert conn.rename(str(target), str(target) + ".old", wait=10)
        assert not conn.rename(str(target), str(target) + ".old", wait=10)
    finally:
        conn.close()


def test_commands_run_concurrently_on_one_session(cluster: Cluster) -> None:
    conn = HostConnection(settings(cluster))
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: conn.run("sleep 0.5", name="sleep", wait=10), range(8)))
        assert time.monotonic() - started < 2.5
    finally:
        conn.close()


def test_a_key_the_host_does_not_accept(cluster: Cluster, tmp_path: Path) -> None:
    stranger = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    conn = HostConnection(settings(cluster, key=str(stranger)))
    with pytest.raises(AuthenticationFailed) as caught:
        conn.run("true", name="true", wait=10)
    assert (
        caught.value.code.name == "FAILED_PRECONDITION"
        and caught.value.metadata["user"] == cluster.host("xen1").user
    )


def test_a_session_gone_silent_is_replaced(lone_host: SimHost) -> None:
    conn = HostConnection(lone_settings(lone_host, connect_timeout=1.0))
    try:
        assert conn.run("true", name="true", wait=10).ok
        assert lone_host.sshd_pid is not None
        # Freeze the sshd serving our session: TCP stays up, nothing answers (a host hung or
        # cut off without closing its connections).
        frozen = _children(lone_host.sshd_pid)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            assert conn.run("echo fresh", name="echo", wait=10).stdout == "fresh\n"
            assert conn.connects == 2 and time.monotonic() - started < 5
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
    finally:
        conn.close()


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == parent:
                found.append(int(entry))
    return found
