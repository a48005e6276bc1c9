"""Protocol lines in a form a newcomer can read: base64 payloads decoded and summed up. Pure.

explain_vmm("DEPLOY 7 PFZNTV9E...")
# DEPLOY 7 [driver message: HOST=xen1 REMOTE_DEPLOYMENT_FILE=/.../deployment.0 TM_COMMAND="CONTEXT ..."]
explain_im("STATE_VM SUCCESS 0 1795669423 eNoL...")
# STATE_VM SUCCESS host 0 @1795669423 [SYNC_STATE=yes MISSING_STATE=POWEROFF; one-7 (7) RUNNING]
"""

from __future__ import annotations

import base64
import binascii
import re

from adapter.im.protocol import decode_payload, read_action
from adapter.vmm.message import MessageError, read_message

_ENVELOPE = (
    "HOST",
    "MIGR_HOST",
    "DEPLOY_ID",
    "LOCAL_DEPLOYMENT_FILE",
    "REMOTE_DEPLOYMENT_FILE",
    "CHECKPOINT_FILE",
    "TM_COMMAND",
    "DISK_TARGET_PATH",
    "SECURITY_GROUP_ID",
)
_VECTOR = re.compile(r"VM = \[ (.*) \]")
_PAIR = re.compile(r'([A-Z_]+)="((?:[^"\\]|\\.)*)"')


def _short(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def explain_vmm(line: str) -> str:
    """A VM_MAD request with its driver message summed up; other lines as they are."""
    tokens = line.split()
    if len(tokens) != 3 or not tokens[1].isdigit():
        return line
    try:
        message = read_message(base64.b64decode(tokens[2], validate=True).decode())
    except (binascii.Error, ValueError, MessageError):
        return line
    fields = {
        "HOST": message.host,
        "MIGR_HOST": message.migr_host,
        "DEPLOY_ID": message.deploy_id,
        "LOCAL_DEPLOYMENT_FILE": message.local_deployment_file,
        "REMOTE_DEPLOYMENT_FILE": message.remote_deployment_file,
        "CHECKPOINT_FILE": message.checkpoint_file,
        "TM_COMMAND": message.tm_command.splitlines()[0] if message.tm_command else "",
        "DISK_TARGET_PATH": message.disk_target_path,
        "SECURITY_GROUP_ID": message.security_group_id,
    }
    shown = " ".join(f'{key}="{_short(fields[key])}"' for key in _ENVELOPE if fields[key])
    return (
        f"{tokens[0]} {tokens[1]} [driver message, {len(tokens[2])} bytes of base64: {shown} + the VM's XML]"
    )


def _vms(data: str, key: str) -> list[str]:
    out = []
    for match in _VECTOR.finditer(data):
        pairs = dict(_PAIR.findall(match.group(1)))
        name = pairs.get("DEPLOY_ID", "?")
        owner = f"{name} ({pairs['ID']})" if pairs.get("ID", "-1") != "-1" else f"{name} (wild)"
        value = pairs.get(key, "")
        if key == "MONITOR" and value:
            figures = dict(_PAIR.findall(base64.b64decode(value).decode(errors="replace")))
            value = f"CPU {figures.get('CPU', '?')}% MEMORY {figures.get('MEMORY', '?')} KiB"
        elif key == "IMPORT_TEMPLATE":
            value = "importable" if value else "not importable"
        out.append(f"{owner} {value}".strip())
    return out


def summary(kind: str, data: str) -> str:
    """One line for a monitord message's payload."""
    if kind == "STATE_VM":
        head = [line for line in data.splitlines() if line.startswith(("SYNC_STATE", "MISSING_STATE"))]
        return (
            "; ".join([" ".join(head), *_vms(data, "STATE")] if head else _vms(data, "STATE")) or "no change"
        )
    if kind == "MONITOR_VM":
        return "; ".join(_vms(data, "MONITOR")) or "no VMs"
    if kind in ("SYSTEM_HOST", "MONITOR_HOST"):
        keys = dict(
            line.split("=", 1)
            for line in data.splitlines()
            if "=" in line and not line.startswith(("VM", "DS "))
        )
        wanted = (
            ("TOTALCPU", "TOTALMEMORY", "HOSTNAME", "XEN_VERSION")
            if kind == "SYSTEM_HOST"
            else ("USEDCPU", "FREECPU", "USEDMEMORY", "FREEMEMORY")
        )
        text = " ".join(f"{k}={keys[k]}" for k in wanted if k in keys)
        if kind == "SYSTEM_HOST":
            wild = _vms(data, "IMPORT_TEMPLATE")
            text += "; wild VMs: " + (", ".join(wild) if wild else "none")
        return text
    if kind == "BEACON_HOST":
        return f"beacon {data.strip()}"
    return _short(data, 200)


def explain_im(line: str) -> str:
    """A monitord line with its base64(zlib) payload decoded and summed up."""
    tokens = line.split()
    if len(tokens) < 4 or not tokens[2].lstrip("-").isdigit():
        return line
    kind, status, oid, ts = tokens[:4]
    try:
        data = decode_payload(tokens[4]) if len(tokens) > 4 else ""
    except ValueError:
        return line
    if kind in ("START_MONITOR", "STOP_MONITOR") and status == "-":
        try:
            start = read_action(data, int(oid))
        except ValueError:
            return line
        periods = " ".join(f"{k.removesuffix('_seconds').upper()}={v}" for k, v in start.periods.items())
        return f"{kind} host {oid} [host {start.host_name}; PROBES_PERIOD {periods or 'defaults'}]"
    if kind == "START_MONITOR" and data.startswith("<MONITOR_MESSAGES>"):
        parts = re.findall(r"<(SYSTEM_HOST|MONITOR_HOST|STATE_VM|MONITOR_VM)>([^<]*)<", data)
        shown = "; ".join(f"{k}: {summary(k, base64.b64decode(v).decode())}" for k, v in parts)
        return f"{kind} {status} host {oid} [first report: {shown}]"
    text = summary(kind, data) if status == "SUCCESS" else _short(data, 200)
    return f"{kind} {status} host {oid} @{ts} [{text}]"
