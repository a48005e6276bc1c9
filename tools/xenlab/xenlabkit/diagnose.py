"""What to say when a lab host stops answering: is its QEMU alive, what did Xen and dom0 print last.

A test that loses its SSH connection to a dom0 fails with this report instead of a bare EOFError,
so a CI log (which keeps only the tail of the output) tells a dead QEMU from a dom0 panic from
one dropped connection.
"""

from __future__ import annotations

import re
from pathlib import Path

from .run import PANIC, is_our_qemu
from .state import HostInfo
from .util import tail

SERIAL_LINES = 25
# Lines of the serial log that explain a failure; the rest is boot chatter.
TELLING = re.compile(
    PANIC.pattern + r"|BUG:|WARNING:|segfault|Out of memory|oom-kill|Killed process|"
    r"(?i:error)|watchdog|soft lockup|hung task|Call Trace|rcu.*stall|\breboot|Mismatched MAC",
)


def qemu_state(host: HostInfo) -> str:
    overlay = Path(host.run_dir) / "overlay.qcow2"
    return f"QEMU pid {host.qemu_pid} " + ("alive" if is_our_qemu(host.qemu_pid, overlay) else "GONE")


def telling_lines(text: str, limit: int = SERIAL_LINES) -> list[str]:
    return [line for line in text.splitlines() if TELLING.search(line)][-limit:]


def host_report(host: HostInfo) -> str:
    """Several lines: QEMU's state, the serial log's telling lines if any, its last 10 lines, and
    QEMU's own log."""
    serial = tail(Path(host.serial_log), 2000)
    telling = telling_lines(serial)
    lines = [f"{host.name}: {qemu_state(host)}"]
    if telling:
        lines.append(f"--- {host.name} serial log, lines that explain failures (last {len(telling)}):")
        lines += telling
    lines.append(f"--- {host.name} serial log, last 10 lines:")
    lines += serial.splitlines()[-10:]
    qemu_log = tail(Path(host.run_dir) / "qemu.log", 10).strip()
    if qemu_log:
        lines += [f"--- {host.name} qemu.log:", qemu_log]
    return "\n".join(lines)
