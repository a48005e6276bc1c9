"""GRAPHICS and INPUT → VNC or SPICE settings and the USB tablet.

Only the first GRAPHICS and the first INPUT count, as upstream. VNC works on
every type (HVM and PV through xl's top-level vnc keys, PVH through a vfb);
SPICE only on HVM. Xen numbers VNC displays from port 5900, so a VNC PORT below
5900 is refused; SPICE takes the port as is. LISTEN must be an address or a host
name without ':' (xl reads `host:display` in vnclisten).
"""

from __future__ import annotations

import functools
import re

from services.translator.resolve import IPV4, Findings, Resolver, control_problem
from services.translator.xlconfig import DomainType, SpiceSpec, VncSpec, spec_field_problem

__all__ = ["VNC_BASE_PORT", "plan_graphics", "plan_usb_tablet"]

VNC_BASE_PORT = 5900
_PORT = re.compile(r"\s*([0-9]{1,5})\s*\Z")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\Z")
_KEYMAP = re.compile(r"[A-Za-z0-9_-]+\Z")


@functools.lru_cache(maxsize=256)
def _listen_value(raw: str) -> str | None:
    """LISTEN as vnclisten or spicehost take it (stripped), or None when it cannot be one;
    pure, so cached: a cloud listens on a few addresses."""
    value = raw.strip()
    if IPV4.match(value) or (_HOSTNAME.match(value) and len(value) <= 253):
        return value
    return None


def _listen(raw: str | None, path: str, findings: Findings) -> str | None:
    if not raw:
        return None
    value = _listen_value(raw)
    if value is not None:
        return value
    findings.refuse(
        f"{path}/LISTEN",
        f"LISTEN {raw!r} must be an IPv4 address (e.g. 0.0.0.0) or a host name: "
        "xl reads anything after ':' as a display number",
    )
    return None


def _port(raw: str, path: str, low: int, findings: Findings, hint: str) -> int | None:
    # Each VM has its own port: parsed every time, not cached.
    if raw.isascii() and raw.isdigit() and len(raw) <= 5:
        port: int | None = int(raw)  # what _PORT reads, without the regex
    else:
        match = _PORT.match(raw)
        port = int(match.group(1)) if match else None
    if port is None or not low <= port <= 65535:
        findings.refuse(f"{path}/PORT", f"PORT {raw!r} must be a port number from {low} to 65535{hint}")
        return None
    return port


def _passwd(raw: str | None, path: str, vfb: bool, findings: Findings) -> str | None:
    if not raw:
        return None
    problem = spec_field_problem(raw) if vfb else control_problem(raw)
    if problem:
        where = " (a PVH VM's VNC settings are a vfb spec)" if vfb else ""
        findings.refuse(f"{path}/PASSWD", f"the password {problem}{where}")
        return None
    return raw


@functools.lru_cache(maxsize=256)
def _keymap(raw: str) -> str | None:
    """KEYMAP as written (stripped), or None when it is not a keymap name; pure, so cached."""
    keymap = raw.strip()
    return keymap if _KEYMAP.match(keymap) else None


_VNC_HINT = f": Xen numbers VNC displays from {VNC_BASE_PORT} (display = PORT - {VNC_BASE_PORT})"


def plan_graphics(
    resolver: Resolver, dtype: DomainType, findings: Findings
) -> tuple[VncSpec | None, SpiceSpec | None]:
    graphics = resolver.template.vector_exact("GRAPHICS")
    if graphics is None:
        return None, None
    path = "TEMPLATE/GRAPHICS"
    get = graphics.get_exact
    kind = (get("TYPE") or "").strip().upper()
    listen = _listen(get("LISTEN"), path, findings)
    port_raw = get("PORT")
    passwd_raw = get("PASSWD")
    if kind == "VNC":
        display = None
        if port_raw:
            port = _port(port_raw, path, VNC_BASE_PORT, findings, _VNC_HINT)
            display = None if port is None else port - VNC_BASE_PORT
        keymap_raw = get("KEYMAP")
        keymap = None
        if keymap_raw:
            keymap = _keymap(keymap_raw)
            if keymap is None:
                findings.refuse(f"{path}/KEYMAP", f"KEYMAP {keymap_raw!r} is not a keymap name such as en-us")
        passwd = _passwd(passwd_raw, path, dtype == "pvh", findings)
        return VncSpec(listen, display, passwd, keymap), None
    if kind == "SPICE" and dtype == "hvm":
        if not port_raw:
            findings.refuse(f"{path}/PORT", "SPICE needs a PORT")
            return None, None
        port = _port(port_raw, path, 1, findings, "")
        passwd = _passwd(passwd_raw, path, False, findings)
        return None, (SpiceSpec(port=port, host=listen, passwd=passwd) if port else None)
    findings.warn(
        f"{path}/TYPE",
        f"graphics type {graphics.get('TYPE')!r} is not supported on a {dtype} VM (only VNC, and SPICE "
        "on HVM): ignored",
    )
    return None, None


def plan_usb_tablet(resolver: Resolver, dtype: DomainType, findings: Findings) -> bool:
    device = resolver.template.vector_exact("INPUT")
    if device is None:
        return False
    kind = (device.get_exact("TYPE") or "").strip().lower()
    bus = (device.get_exact("BUS") or "").strip().lower()
    if kind != "tablet" or bus != "usb":
        findings.warn("TEMPLATE/INPUT", "not supported, only a usb tablet: ignored")
        return False
    if dtype != "hvm":
        findings.warn("TEMPLATE/INPUT", f"a usb tablet needs an HVM VM, this one is {dtype}: ignored")
        return False
    return True
