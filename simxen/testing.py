"""Helpers for tests anywhere in the project: simulated hosts as context managers, SSH clients.

    from simxen.testing import sim_host, two_sim_hosts, ssh_client, ssh_run

    with sim_host(tmp_path) as host:
        client = ssh_client(host)            # paramiko, RejectPolicy + the host's known_hosts
        rc, out, err = ssh_run(client, "sudo -n xl list")

pytest fixtures built on these live in tests/simxen/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simxen import xlparse
from simxen.host import SimHost

if TYPE_CHECKING:
    import paramiko

REQUIREMENTS_HINT = "apt-get install -y openssh-server xen-utils-4.17 gcc"


def sshd_available() -> bool:
    return os.access("/usr/sbin/sshd", os.X_OK) and os.access("/usr/bin/ssh-keygen", os.X_OK)


def parser_available() -> bool:
    """The real xl and a built shim (``xl create`` needs them)."""
    return xlparse.available()


@contextlib.contextmanager
def sim_host(workdir: Path | str, name: str = "xen1", port: int = 0, **facts: Any) -> Iterator[SimHost]:
    """A running simulated host, stopped (with everything its sshd started) on exit."""
    host = SimHost.start(workdir, name, port, **facts)
    try:
        yield host
    finally:
        host.stop()


@contextlib.contextmanager
def two_sim_hosts(
    workdir: Path | str, names: Sequence[str] = ("xen1", "xen2"), **facts: Any
) -> Iterator[tuple[SimHost, SimHost]]:
    """Two hosts in one workdir: they trust each other and reach each other by name."""
    first = SimHost.start(workdir, names[0], **facts)
    try:
        second = SimHost.start(workdir, names[1], **facts)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


@contextlib.contextmanager
def prepared_host(workdir: Path | str, name: str = "xen1", **facts: Any) -> Iterator[SimHost]:
    """A host without sshd: state dir and bin/ wrappers for local ``host.run_xl(...)``."""
    host = SimHost.prepare(workdir, name, **facts)
    try:
        yield host
    finally:
        host.stop()  # its fork server (simxen.zygote)


def ssh_client(
    host: SimHost,
    *,
    known_hosts: Path | str | None = None,
    timeout: float = 10.0,
) -> paramiko.SSHClient:
    """A connected paramiko client that verifies the host key (RejectPolicy)."""
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts if known_hosts is not None else host.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            host.address,
            port=host.port,
            username=host.user,
            key_filename=str(host.key_path),
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
    except BaseException:
        client.close()
        raise
    return client


def ssh_run(client: paramiko.SSHClient, command: str, *, timeout: float = 60.0) -> tuple[int, str, str]:
    """Run ``command``; read stdout and stderr together until exit (never the exit status first)."""
    transport = client.get_transport()
    if transport is None:
        raise RuntimeError("SSH client is not connected")
    chan = transport.open_session(timeout=timeout)
    try:
        chan.exec_command(command)
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        drained_by: float | None = None  # after the exit status, wait a little for the last output
        sel = selectors.DefaultSelector()
        sel.register(chan, selectors.EVENT_READ)
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command!r} did not finish within {timeout} s")
            sel.select(timeout=0.1)
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            if chan.exit_status_ready():
                if drained_by is None:
                    drained_by = time.monotonic() + 2.0
                if (chan.eof_received or time.monotonic() > drained_by) and not (
                    chan.recv_ready() or chan.recv_stderr_ready()
                ):
                    break
        rc = chan.recv_exit_status()
        return rc, out.decode(errors="replace"), err.decode(errors="replace")
    finally:
        chan.close()
