"""onemonitord's IM_MAD line protocol (spec §4.5.1). Pure.

    <TYPE> <STATUS> <OID> <TIMESTAMP> <PAYLOAD>      PAYLOAD = base64(zlib(data)), no newlines

monitord sends `INIT`, `FINALIZE`, `START_MONITOR - <hid> 0 <p>` and `STOP_MONITOR - <hid> 0 <p>`,
whose payload holds the host's XML and monitord's configuration (`MONITOR_CONFIGURATION`).
The driver answers `START_MONITOR SUCCESS|FAILURE <hid> <ts> <p>` (and STOP_MONITOR alike) and
sends the monitoring messages (SYSTEM_HOST, MONITOR_HOST, MONITOR_VM, STATE_VM, BEACON_HOST)
in the same form.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field

from adapter.common.lineio import one_line

INIT = "INIT"
FINALIZE = "FINALIZE"
START_MONITOR = "START_MONITOR"
STOP_MONITOR = "STOP_MONITOR"

DEFAULT_PORT = 4124
# PROBES_PERIOD keys of monitord.conf, as AddHost's ProbePeriods field names.
PERIOD_KEYS = {
    "BEACON_HOST": "beacon_host_seconds",
    "SYSTEM_HOST": "system_host_seconds",
    "MONITOR_HOST": "monitor_host_seconds",
    "STATE_VM": "state_vm_seconds",
    "MONITOR_VM": "monitor_vm_seconds",
    "SYNC_STATE_VM": "sync_state_vm_seconds",
}
_TYPE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
_ID = re.compile(r"-?[0-9]{1,10}")
_DTD = re.compile(r"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


@dataclass(frozen=True)
class Message:
    """One protocol message; `data` is the decoded payload text."""

    type: str
    status: str
    oid: int
    timestamp: int
    data: str = ""


@dataclass(frozen=True)
class Control:
    command: str  # INIT or FINALIZE


@dataclass(frozen=True)
class Malformed:
    why: str
    type: str | None = None
    oid: int | None = None


def encode_payload(data: str) -> str:
    return base64.b64encode(zlib.compress(data.encode("utf-8"), 9)).decode("ascii")


def decode_payload(payload: str) -> str:
    """The payload's text; raises ValueError. Plain base64 (no zlib) is accepted too."""
    if payload in ("", "-"):
        return ""
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the payload is not valid base64") from None
    with contextlib.suppress(zlib.error):
        raw = zlib.decompress(raw)
    return raw.decode("utf-8", errors="replace")


def message_line(message: Message) -> str:
    return (
        f"{message.type} {message.status or '-'} {message.oid} {message.timestamp}"
        f" {encode_payload(message.data)}"
    )


def parse_line(line: str) -> Message | Control | Malformed | None:
    tokens = line.split()
    if not tokens:
        return None
    head = tokens[0]
    if head in (INIT, FINALIZE):
        return Control(head)
    if not _TYPE.fullmatch(head):
        return Malformed(f"not a monitord message: {_shown(line)}")
    if len(tokens) < 3 or not _ID.fullmatch(tokens[2]):
        return Malformed(f"{head} without a numeric host id: {_shown(line)}", type=head)
    oid = int(tokens[2])
    timestamp = int(tokens[3]) if len(tokens) > 3 and _ID.fullmatch(tokens[3]) else 0
    try:
        data = decode_payload(tokens[4]) if len(tokens) > 4 else ""
    except ValueError as exc:
        return Malformed(str(exc), type=head, oid=oid)
    return Message(head, tokens[1], oid, timestamp, data)


def _shown(line: str, limit: int = 80) -> str:
    text = one_line(line)
    return repr(text if len(text) <= limit else text[:limit] + "...")


# ----------------------------------------------------------------------------- START_MONITOR


@dataclass(frozen=True)
class Network:
    """monitord's NETWORK section: where agents push to, and its public key (PEM text)."""

    address: str = "0.0.0.0"
    monitor_address: str = "auto"
    port: int = DEFAULT_PORT
    pubkey: str = ""


@dataclass(frozen=True)
class HostStart:
    """What START_MONITOR/STOP_MONITOR carry about the host and monitord's settings."""

    host_id: int
    host_name: str
    im_mad: str = ""
    periods: dict[str, int] = field(default_factory=dict)  # ProbePeriods field -> seconds
    network: Network = field(default_factory=Network)
    configuration: str = ""  # MONITOR_CONFIGURATION as XML text


class ActionError(ValueError):
    """The START/STOP_MONITOR payload cannot be read; the text says why."""


def _text(root: ET.Element, path: str) -> str:
    element = root.find(path)
    return (element.text or "").strip() if element is not None else ""


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def read_action(data: str, oid: int) -> HostStart:
    """The host and configuration of a START_MONITOR/STOP_MONITOR payload."""
    if _DTD.search(data):
        raise ActionError("the payload holds a DTD, which monitord never writes: refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ActionError(f"the payload is not well-formed XML ({exc})") from None
    host = root if root.tag == "HOST" else root.find(".//HOST")
    if host is None:
        raise ActionError("the payload has no <HOST> element")
    host_id = _number(_text(host, "ID"))
    name = _text(host, "NAME")
    if not name:
        raise ActionError("the payload's HOST has no NAME")
    config = root if root.tag == "MONITOR_CONFIGURATION" else root.find(".//MONITOR_CONFIGURATION")
    periods: dict[str, int] = {}
    network = Network()
    text = ""
    if config is not None:
        for key, name_of_field in PERIOD_KEYS.items():
            value = _number(_text(config, f"PROBES_PERIOD/{key}"))
            if value:
                periods[name_of_field] = value
        port = _number(_text(config, "NETWORK/PORT"))
        network = Network(
            address=_text(config, "NETWORK/ADDRESS") or "0.0.0.0",
            monitor_address=_text(config, "NETWORK/MONITOR_ADDRESS") or "auto",
            port=port if port is not None and 0 < port < 65536 else DEFAULT_PORT,
            pubkey=_text(config, "NETWORK/PUBKEY"),
        )
        text = ET.tostring(config, encoding="unicode")
    return HostStart(
        host_id=host_id if host_id is not None else oid,
        host_name=name,
        im_mad=_text(host, "IM_MAD"),
        periods=periods,
        network=network,
        configuration=text,
    )
