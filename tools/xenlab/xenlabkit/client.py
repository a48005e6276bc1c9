"""SSH to a lab dom0 from Python tests (paramiko; the CLI itself never imports this module)."""

from __future__ import annotations

from dataclasses import dataclass

import paramiko

from .diagnose import host_report
from .state import HostInfo

# Run over a fresh root connection when a connection died: what dom0 itself saw.
DOM0_LOOK = "dmesg | tail -n 15; tail -n 15 /var/log/sshd.log"  # sshd -E: recipe/dom0/etc/xenlab/rc.sh


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


class ConnectionLost(Exception):
    """The SSH connection to a dom0 died under a command. The message says what the lab knows:
    whether QEMU still runs, what Xen and dom0 printed last (so a CI log explains itself)."""


class Dom0:
    """One SSH connection to a lab dom0, as `user` (oneadmin by default; root for diagnostics).

    A connection that died is replaced at the next command; the command it died under fails with
    ConnectionLost (never re-run: it may have had its effect)."""

    def __init__(self, host: HostInfo, user: str = "oneadmin") -> None:
        self.host = host
        self.user = user
        self.client = connect(host, user)

    def run(self, command: str, timeout: float = 120) -> Result:
        if not self._connected():
            self.client.close()
            self.client = connect(self.host, self.user)
        try:
            _, stdout, stderr = self.client.exec_command(command, timeout=timeout)
            out = stdout.read().decode(errors="replace")
            err = stderr.read().decode(errors="replace")
            rc = stdout.channel.recv_exit_status()
        except (EOFError, OSError, paramiko.SSHException) as exc:
            if self._connected():
                raise  # the command timed out or failed on a live connection
            raise ConnectionLost(self._lost_report(command, exc)) from exc
        if rc == -1 and not self._connected():  # paramiko's "closed without an exit status"
            raise ConnectionLost(self._lost_report(command, EOFError("closed without an exit status")))
        return Result(rc, out, err)

    def _connected(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    def _lost_report(self, command: str, exc: BaseException) -> str:
        head = f"{self.host.name}: SSH connection lost ({type(exc).__name__}: {exc}) under `{command[:120]}`"
        return "\n".join([head, host_report(self.host), self._dom0_view()])

    def _dom0_view(self) -> str:
        try:
            client = connect(self.host, "root")
        except Exception as exc:  # any failure is itself the diagnosis
            return f"--- {self.host.name}: a new SSH connection failed too: {type(exc).__name__}: {exc}"
        try:
            _, stdout, _ = client.exec_command(DOM0_LOOK, timeout=30)
            text = stdout.read().decode(errors="replace").rstrip()
            return f"--- {self.host.name}: a new SSH connection works; dom0's dmesg and sshd's log:\n{text}"
        except Exception as exc:
            return f"--- {self.host.name}: reconnected, but reading dom0's logs failed: {exc}"
        finally:
            client.close()

    def check(self, command: str, timeout: float = 120) -> str:
        """stdout of a command that must succeed."""
        result = self.run(command, timeout)
        assert result.rc == 0, (
            f"{self.host.name}: `{command}` exit {result.rc}: {result.stderr or result.stdout}"
        )
        return result.stdout

    def close(self) -> None:
        self.client.close()
