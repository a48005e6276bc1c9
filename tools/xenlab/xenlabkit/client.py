"""SSH to a lab dom0 from Python tests (paramiko; the CLI itself never imports this module)."""

from __future__ import annotations

from dataclasses import dataclass

import paramiko

from .state import HostInfo


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str


def connect(host: HostInfo, user: str, known_hosts: str | None = None) -> paramiko.SSHClient:
    """A connection that accepts only the host key written in the lab's known_hosts (RejectPolicy)."""
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts or host.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        host.address,
        port=host.port,
        username=user,
        key_filename=host.key,
        look_for_keys=False,
        allow_agent=False,
        timeout=15,
    )
    return client


class Dom0:
    """One SSH connection to a lab dom0, as `user` (oneadmin by default; root for diagnostics)."""

    def __init__(self, host: HostInfo, user: str = "oneadmin") -> None:
        self.host = host
        self.user = user
        self.client = connect(host, user)

    def run(self, command: str, timeout: float = 120) -> Result:
        _, stdout, stderr = self.client.exec_command(command, timeout=timeout)
        out = stdout.read().decode(errors="replace")
        err = stderr.read().decode(errors="replace")
        return Result(stdout.channel.recv_exit_status(), out, err)

    def check(self, command: str, timeout: float = 120) -> str:
        """stdout of a command that must succeed."""
        result = self.run(command, timeout)
        assert result.rc == 0, (
            f"{self.host.name}: `{command}` exit {result.rc}: {result.stderr or result.stdout}"
        )
        return result.stdout

    def close(self) -> None:
        self.client.close()
