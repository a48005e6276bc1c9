"""oned's VM_MAD line protocol (spec §1.3, §1.5): requests in, replies and LOG lines out. Pure.

In:  `<ACTION> <VMID> <base64 driver message>` (4.x/5.x), `<ACTION>  <VMID> <b64>` (6.x, an
     empty status field, hence two spaces), `DRIVER_CANCEL <VMID>`, `INIT`, `FINALIZE`.
     Parsed by whitespace, never by offsets.
Out: `<ACTION> SUCCESS|FAILURE <VMID> <info>` and `LOG <I|E|D|W> <VMID> <text>`, one line each.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Literal

from adapter.common.lineio import one_line

INIT = "INIT"
FINALIZE = "FINALIZE"
DRIVER_CANCEL = "DRIVER_CANCEL"

# Every action name oned has ever sent a VM_MAD (spec §1.3), and the ones this driver runs.
SUPPORTED = frozenset(
    {
        "DEPLOY",
        "SHUTDOWN",
        "CANCEL",
        "SAVE",
        "RESTORE",
        "MIGRATE",
        "REBOOT",
        "RESET",
        "ATTACHDISK",
        "DETACHDISK",
        "ATTACHNIC",
        "DETACHNIC",
        "UPDATECONF",
        "UPDATESG",
        "CLEANUP",
    }
)
KNOWN = SUPPORTED | frozenset(
    {
        "POLL",
        "SNAPSHOTCREATE",
        "SNAPSHOTREVERT",
        "SNAPSHOTDELETE",
        "DISKSNAPSHOTCREATE",
        "DISKSNAPSHOTREVERT",
        "RESIZEDISK",
        "CHECKPOINT",
        "RESIZE",
        "BACKUP",
        "UPDATENIC",
        "BACKUPCANCEL",
    }
)

# An action token we may echo back in a reply: what oned's action names look like.
_ACTION_TOKEN = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
_VM_ID = re.compile(r"-?[0-9]{1,10}")
# How long a reply's info may get: oned stores it in the VM's USER_TEMPLATE/ERROR.
MAX_INFO_CHARS = 4000

Severity = Literal["I", "E", "D", "W"]
Result = Literal["SUCCESS", "FAILURE"]


@dataclass(frozen=True)
class Request:
    """A well-formed action request: the driver message is still base64 text."""

    action: str
    vm_id: int
    payload: str


@dataclass(frozen=True)
class Control:
    """INIT, FINALIZE or DRIVER_CANCEL (with the VM id it cancels)."""

    command: str
    vm_id: int | None = None


@dataclass(frozen=True)
class Malformed:
    """A line that cannot run. With an action and an id the driver answers FAILURE for
    them; without, it can only LOG the problem."""

    why: str
    action: str | None = None
    vm_id: int | None = None


Parsed = Request | Control | Malformed | None


def parse_line(line: str) -> Parsed:
    """What one input line asks; None for a blank line."""
    tokens = line.split()
    if not tokens:
        return None
    head = tokens[0]
    action = head if _ACTION_TOKEN.fullmatch(head) else None
    vm_id = int(tokens[1]) if len(tokens) > 1 and _VM_ID.fullmatch(tokens[1]) else None
    if head in (INIT, FINALIZE):
        return Control(head)
    if head == DRIVER_CANCEL:
        if vm_id is None:
            return Malformed(f"DRIVER_CANCEL needs a VM id, got {_shown(line)}")
        return Control(DRIVER_CANCEL, vm_id)
    if action is None:
        return Malformed(f"not a driver request (unknown action token): {_shown(line)}")
    if vm_id is None:
        return Malformed(f"{action} without a numeric VM id: {_shown(line)}", action=action)
    if len(tokens) < 3:
        return Malformed(
            f"{action} needs a base64 driver message after the VM id", action=action, vm_id=vm_id
        )
    if len(tokens) > 3:
        return Malformed(
            f"{action} has {len(tokens) - 3} unexpected field(s) after the driver message",
            action=action,
            vm_id=vm_id,
        )
    return Request(action, vm_id, tokens[2])


def decode_payload(payload: str) -> str:
    """The driver message XML; raises ValueError with a readable reason."""
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the driver message is not valid base64") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the driver message is not UTF-8 text") from None


def _shown(line: str, limit: int = 80) -> str:
    text = one_line(line)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def info_text(info: str) -> str:
    """A reply's info: one line, bounded, and never read by oned as "no info".

    oned ignores an info that is empty or starts with `-` (spec §1.5); a lone `-` is
    what "nothing to say" looks like.
    """
    text = one_line(info)
    if not text:
        return "-"
    if text.startswith("-") and text != "-":
        text = "error: " + text
    return text if len(text) <= MAX_INFO_CHARS else text[: MAX_INFO_CHARS - 5] + "[...]"


def reply_line(action: str, result: Result, vm_id: int, info: str = "-") -> str:
    return f"{action} {result} {vm_id} {info_text(info)}"


def severity(text: str) -> Severity:
    """A LOG severity; anything unknown is info, as oned reads it."""
    if text == "E":
        return "E"
    if text == "D":
        return "D"
    if text == "W":
        return "W"
    return "I"


def log_line(severity: Severity, vm_id: int | None, text: str) -> str:
    """A LOG line; without a VM id (`-`) oned writes it to oned.log instead of a VM log."""
    shown = one_line(text) or "-"
    return f"LOG {severity} {'-' if vm_id is None else vm_id} {shown}"
