"""The allow-list: every command line the executor ever runs on a Xen host is built here. Pure.

Builders take values that validate.py already checked and return a `Command`: an argv tuple
whose program is one of a fixed few (xl with an allow-listed verb, xentop, df, an OpenNebula
network step) and a time limit. `Command.line()` is the only place an argv becomes a string:
every word is quoted, the whole is wrapped in coreutils `timeout` so a hung `xl` is killed on
the host (paramiko's own timeout leaves the remote process running), and privileged programs
go through `sudo -n` (never prompting: a missing sudoers line fails at once instead of hanging).
"""

from __future__ import annotations

import math
import posixpath
import re
import shlex
from dataclasses import dataclass, replace

from services.executor.inventory import HostSettings

# Seconds the remote `timeout` waits after its TERM before it sends KILL.
KILL_AFTER = 5
# `timeout` exits 124 when the command timed out, 137 when KILL was needed.
TIMEOUT_EXIT_CODES = frozenset({124, 137})
# A command needs at least this long; shorter budgets are refused before anything runs.
MIN_TIMEOUT = 0.5

XL_VERBS = frozenset(
    {
        "info",
        "list",
        "create",
        "destroy",
        "shutdown",
        "reboot",
        "save",
        "restore",
        "migrate",
        "block-attach",
        "block-detach",
        "block-list",
        "network-attach",
        "network-detach",
        "network-list",
        "sched-credit",
    }
)
NETWORK_STEPS = frozenset({"pre", "post", "clean", "update_sg"})


class NotAllowed(ValueError):
    """A builder was asked for something outside the allow-list: a bug in the caller."""


@dataclass(frozen=True)
class Command:
    name: str  # how errors and logs name it: `xl create`, `xentop`, `vnm/802.1Q/pre`
    argv: tuple[str, ...]
    timeout: float
    privileged: bool = False
    stdin: bytes | None = None

    def line(self) -> str:
        """The remote command line: `timeout --kill-after=5 T [sudo -n] argv...`, each word quoted."""
        words = ["timeout", f"--kill-after={KILL_AFTER}", format_seconds(self.timeout)]
        if self.privileged:
            words += ["sudo", "-n"]
        words += self.argv
        return " ".join(shlex.quote(w) for w in words)

    def with_timeout(self, timeout: float) -> Command:
        return replace(self, timeout=timeout)


def format_seconds(seconds: float) -> str:
    # One decimal, rounded up: timeout(1) takes fractions, and never less than asked.
    return f"{math.ceil(max(seconds, MIN_TIMEOUT) * 10) / 10:g}"


def wait_limit(command: Command) -> float:
    """How long the local side waits for a command before it gives up on the host itself."""
    return command.timeout + KILL_AFTER + 2.0


def xl(host: HostSettings, verb: str, *args: str, timeout: float) -> Command:
    if verb not in XL_VERBS:
        raise NotAllowed(f"xl {verb} is not in the executor's allow-list")
    for arg in args:
        if arg.startswith("-") and not _XL_OPTION.fullmatch(arg):
            raise NotAllowed(f"xl {verb}: option {arg!r} is not in the allow-list")
    return Command(f"xl {verb}", (host.xm_path, verb, *args), timeout, privileged=host.use_sudo)


# The only options the builders pass; a validated value never starts with "-".
_XL_OPTION = re.compile(r"-(?:l|F|s|d|w|c|p|e)")


def xl_info(host: HostSettings, *, timeout: float) -> Command:
    return xl(host, "info", timeout=timeout)


def xl_list(host: HostSettings, domain: str | None = None, *, timeout: float) -> Command:
    return xl(host, "list", *([domain] if domain else []), timeout=timeout)


def xl_list_long(host: HostSettings, domain: str | None = None, *, timeout: float) -> Command:
    return xl(host, "list", "-l", *([domain] if domain else []), timeout=timeout)


def xentop(host: HostSettings, sample_seconds: float, *, timeout: float) -> Command:
    # -f: full names (without it xentop cuts them at 10 characters, "one-123456" and up);
    # two iterations because the first one always shows 0.0 CPU% (NOTES item 8).
    # xentop reads -d with atoi(): whole seconds only, and 0 would mean no interval at all.
    delay = max(1, math.ceil(sample_seconds))
    argv = (host.xentop_path, "-b", "-f", "-i", "2", "-d", str(delay))
    return Command("xentop", argv, timeout, privileged=host.use_sudo)


def create(host: HostSettings, config_path: str, *, timeout: float) -> Command:
    return xl(host, "create", config_path, timeout=timeout)


def destroy(host: HostSettings, domain: str, *, timeout: float) -> Command:
    return xl(host, "destroy", domain, timeout=timeout)


def shutdown(host: HostSettings, domain: str, *, timeout: float) -> Command:
    # -F: an ACPI power button for a guest without PV drivers, which would otherwise be
    # refused ("PV control interface not available").
    return xl(host, "shutdown", "-F", domain, timeout=timeout)


def reboot(host: HostSettings, domain: str, *, force: bool = False, timeout: float) -> Command:
    # -F: fall back to an ACPI reset when the guest has no PV drivers (xen4's "reset").
    return xl(host, "reboot", *(["-F"] if force else []), domain, timeout=timeout)


def save(host: HostSettings, domain: str, checkpoint: str, *, timeout: float) -> Command:
    return xl(host, "save", domain, checkpoint, timeout=timeout)


def restore(host: HostSettings, checkpoint: str, *, timeout: float) -> Command:
    return xl(host, "restore", checkpoint, timeout=timeout)


def sched_credit(
    host: HostSettings, domain: str, weight: int | None, cap: int | None, *, timeout: float
) -> Command:
    args = ["-d", domain]
    if weight is not None:
        args += ["-w", str(weight)]
    if cap is not None:
        args += ["-c", str(cap)]
    return xl(host, "sched-credit", *args, timeout=timeout)


def block_attach(
    host: HostSettings,
    domain: str,
    *,
    prefix: str,
    source: str,
    vdev: str,
    readonly: bool,
    cdrom: bool,
    timeout: float,
) -> Command:
    # Upstream's positional spec, one word each: `raw:/path xvdb w` (xl joins the words).
    words = [f"{prefix}:{source}", vdev, "r" if readonly or cdrom else "w"]
    if cdrom:
        words.append("devtype=cdrom")
    return xl(host, "block-attach", domain, *words, timeout=timeout)


def block_detach(host: HostSettings, domain: str, vdev: str, *, timeout: float) -> Command:
    return xl(host, "block-detach", domain, vdev, timeout=timeout)


def block_list(host: HostSettings, domain: str, *, timeout: float) -> Command:
    return xl(host, "block-list", domain, timeout=timeout)


def network_attach(
    host: HostSettings,
    domain: str,
    *,
    mac: str,
    bridge: str,
    model: str = "",
    ip: str = "",
    script: str = "",
    vifname: str = "",
    timeout: float,
) -> Command:
    # One key=value word each: a single comma-joined spec makes xl keep only the MAC and
    # silently drop the rest (NOTES item 1).
    words = [f"bridge={bridge}", f"mac={mac}"]
    words += [f"{key}={value}" for key, value in (("model", model), ("ip", ip), ("script", script)) if value]
    if vifname:
        words.append(f"vifname={vifname}")
    return xl(host, "network-attach", domain, *words, timeout=timeout)


def network_detach(host: HostSettings, domain: str, devid: int, *, timeout: float) -> Command:
    return xl(host, "network-detach", domain, str(devid), timeout=timeout)


def network_list(host: HostSettings, domain: str, *, timeout: float) -> Command:
    return xl(host, "network-list", domain, timeout=timeout)


def migrate(host: HostSettings, domain: str, destination: HostSettings, *, timeout: float) -> Command:
    """`xl migrate -s "<transport>" DOMAIN ADDRESS`, the transport built from the destination's inventory.

    xl runs `exec <transport> <address> xl migrate-receive` through /bin/sh. The receiving end
    must be `sudo -n <xl> migrate-receive` with the destination's own xl path, so the transport
    is a `sh -c '...'` (or upstream's `su - USER -c '...'`) whose script is the whole ssh
    command: the words xl appends become the script's unused positional parameters.
    """
    address, _ = destination.migration_target
    return xl(host, "migrate", "-s", migration_transport(host, destination), domain, address,
              timeout=timeout)  # fmt: skip


def migration_transport(source: HostSettings, destination: HostSettings) -> str:
    ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    address, port = destination.migration_target
    ssh += ["-p", str(port), "-l", destination.user]
    if source.migration_key:
        ssh += ["-i", source.migration_key, "-o", "IdentitiesOnly=yes"]
    if source.migration_known_hosts:
        ssh += ["-o", f"UserKnownHostsFile={source.migration_known_hosts}"]
    ssh.append(address)
    ssh += ["sudo", "-n"] if destination.use_sudo else []
    ssh += [destination.xm_path, "migrate-receive"]
    script = " ".join(shlex.quote(w) for w in ssh)
    if source.migration_via_su:
        # xl runs as root under sudo: upstream hands the ssh to the executor's user (oneadmin),
        # whose key the destination trusts, rather than root's.
        return f"su - {shlex.quote(source.user)} -c {shlex.quote(script)}"
    return f"sh -c {shlex.quote(script)}"


def df(paths: list[str], *, timeout: float) -> Command:
    # MiB, one line per path named by the path itself (a missing one is left out).
    return Command("df", ("df", "-B1M", "--output=file,size,used,avail", "--", *paths), timeout)


def disk_files(paths: list[str], *, timeout: float) -> Command:
    # The system datastores hold `<ds>/<vmid>/disk.<n>` (DATASTORE_LOCATION/<ds>/<vmid>/disk.<n>
    # from the location itself); -L so a disk linked from an image datastore counts at its target.
    # Allocated 512-byte blocks (%b) too: OpenNebula's DISK_SIZE is the space a disk takes.
    return Command(
        "find disks",
        ("find", "-L", *paths, "-maxdepth", "3", "-type", "f", "-name", "disk.*", "-printf", r"%p\t%s\t%b\n"),
        timeout,
    )


def network_step(
    host: HostSettings, driver: str, step: str, argument: str, message: bytes, *, timeout: float
) -> Command:
    if step not in NETWORK_STEPS:
        raise NotAllowed(f"network step {step!r} is not one of {sorted(NETWORK_STEPS)}")
    script = posixpath.join(host.remote_dir, "vnm", driver, step)
    name = f"vnm/{driver}/{step}"
    return Command(name, (script, *([argument] if argument else [])), timeout, stdin=message)
