"""The executor's errors: subclasses of the runtime's table, so each inherits its status code.

Every error names the host; those about a command carry the command line as run, and the
reasons are stable identifiers a client can branch on (ErrorInfo.reason).
"""

from __future__ import annotations

from onexen.runtime.errors import (
    AlreadyExists,
    CommandFailed,
    DeadlineExceeded,
    FailedPrecondition,
    NotFound,
    Unavailable,
)

__all__ = [
    "AuthenticationFailed",
    "CheckpointNotFound",
    "CommandFailed",
    "CommandTimedOut",
    "ConnectionLost",
    "DeviceBusy",
    "DeviceNotFound",
    "DomainExists",
    "DomainNotFound",
    "HostKeyMismatch",
    "HostKeyUnknown",
    "HostUnreachable",
    "SftpUnavailable",
    "ShutdownTimedOut",
]


class HostUnreachable(Unavailable):
    """No SSH session to the host could be made (refused, no route, timed out, banner)."""

    default_reason = "HOST_UNREACHABLE"

    def __init__(self, host: str, address: str, port: int, cause: str) -> None:
        super().__init__(
            f"cannot reach Xen host {host} ({address}:{port}): {cause}",
            metadata={"host": host, "address": f"{address}:{port}", "cause": cause},
        )
        self.host = host


class ConnectionLost(Unavailable):
    """The session died while a command ran: it may or may not have taken effect."""

    default_reason = "CONNECTION_LOST"

    def __init__(self, host: str, command: str, cause: str) -> None:
        super().__init__(
            f"connection to Xen host {host} was lost while running {command!r} ({cause});"
            " the command may or may not have taken effect",
            metadata={"host": host, "command": command, "cause": cause},
        )


class SftpUnavailable(Unavailable):
    """The session is fine but the host's SFTP subsystem would not start: nothing was transferred."""

    default_reason = "SFTP_UNAVAILABLE"

    def __init__(self, host: str, what: str, cause: str) -> None:
        super().__init__(
            f"the SFTP subsystem of Xen host {host} did not start for {what!r} ({cause}): nothing was"
            " transferred; check sshd's `Subsystem sftp` and that its sftp-server runs",
            metadata={"host": host, "command": what, "cause": cause},
        )


class HostKeyMismatch(FailedPrecondition):
    """The host offered a key other than the one known_hosts holds for it."""

    default_reason = "HOST_KEY_MISMATCH"

    def __init__(self, host: str, known_as: str, fingerprint: str, expected: str, known_hosts: str) -> None:
        super().__init__(
            f"host key of Xen host {host} ({known_as}) has CHANGED: it offered {fingerprint}, but"
            f" {known_hosts} holds {expected}. Refusing to connect; if the host was reinstalled,"
            f" remove its old entry (ssh-keygen -R '{known_as}' -f {known_hosts})",
            metadata={
                "host": host,
                "known_as": known_as,
                "fingerprint": fingerprint,
                "expected_fingerprint": expected,
                "known_hosts": known_hosts,
            },
        )


class HostKeyUnknown(FailedPrecondition):
    """The host is not in known_hosts and the policy is to refuse unknown hosts."""

    default_reason = "HOST_KEY_UNKNOWN"

    def __init__(self, host: str, known_as: str, fingerprint: str, known_hosts: str) -> None:
        super().__init__(
            f"Xen host {host} ({known_as}) is not in {known_hosts}; it offered {fingerprint}."
            " Add its key (ssh-keyscan) after checking the fingerprint, or set"
            ' host_key_policy = "accept-new" for it in the inventory',
            metadata={
                "host": host,
                "known_as": known_as,
                "fingerprint": fingerprint,
                "known_hosts": known_hosts,
            },
        )


class AuthenticationFailed(FailedPrecondition):
    default_reason = "SSH_AUTHENTICATION_FAILED"

    def __init__(self, host: str, user: str, cause: str) -> None:
        super().__init__(
            f"Xen host {host} refused the executor's key for user {user}: {cause}",
            metadata={"host": host, "user": user, "cause": cause},
        )


class CommandTimedOut(DeadlineExceeded):
    """A remote command ran past its time limit and was killed on the host (or abandoned)."""

    default_reason = "COMMAND_TIMED_OUT"

    def __init__(self, host: str, command: str, timeout: float, *, killed: bool, stderr: str = "") -> None:
        how = (
            "was killed on the host by timeout(1)"
            if killed
            else "did not answer; the executor stopped waiting (the host's timeout(1) kills it)"
        )
        super().__init__(
            f"{command!r} on Xen host {host} ran past its {timeout:g} s limit and {how}",
            metadata={"host": host, "command": command, "timeout_seconds": f"{timeout:g}", "stderr": stderr},
        )


class ShutdownTimedOut(DeadlineExceeded):
    default_reason = "SHUTDOWN_TIMEOUT"

    def __init__(self, host: str, domain: str, waited: float, why: str) -> None:
        super().__init__(
            f"domain {domain} on Xen host {host} was still running {waited:.0f} s after the shutdown"
            f" request; {why}",
            metadata={"host": host, "domain": domain, "waited_seconds": f"{waited:.1f}"},
        )


class DomainNotFound(NotFound):
    default_reason = "DOMAIN_NOT_FOUND"

    def __init__(self, host: str, domain: str, stderr: str = "") -> None:
        super().__init__(
            f"no domain {domain} on Xen host {host}",
            metadata={"host": host, "domain": domain, "stderr": stderr},
        )


class DomainExists(AlreadyExists):
    default_reason = "DOMAIN_EXISTS"

    def __init__(self, host: str, domain: str, detail: str) -> None:
        super().__init__(
            f"domain {domain} already runs on Xen host {host} {detail}",
            metadata={"host": host, "domain": domain},
        )


class DeviceNotFound(NotFound):
    default_reason = "DEVICE_NOT_FOUND"

    def __init__(self, host: str, domain: str, device: str, stderr: str = "") -> None:
        super().__init__(
            f"domain {domain} on Xen host {host} has no {device}",
            metadata={"host": host, "domain": domain, "device": device, "stderr": stderr},
        )


class DeviceBusy(CommandFailed):
    """A detach the guest kernel did not go along with: the device is still attached."""

    default_reason = "DEVICE_STILL_ATTACHED"


class CheckpointNotFound(NotFound):
    default_reason = "CHECKPOINT_NOT_FOUND"

    def __init__(self, host: str, path: str) -> None:
        super().__init__(
            f"no checkpoint file {path} on Xen host {host}", metadata={"host": host, "path": path}
        )
