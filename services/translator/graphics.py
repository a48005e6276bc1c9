"""GRAPHICS and INPUT → VNC or SPICE settings and the USB tablet.

Only the first GRAPHICS and the first INPUT count, as upstream. VNC works on
every type (HVM and PV through xl's top-level vnc keys, PVH through a vfb);
SPICE only on HVM. Xen numbers VNC displays from port 5900, so a VNC PORT below
5900 is refused; SPICE takes the port as is. LISTEN must be an address or a host
name without ':' (xl reads `host:display` in vnclisten).
"""

from __future__ import annotations

import re

from services.translator.resolve import IPV4, Findings, Resolver, Sourced, control_problem
from services.translator.xlconfig import DomainType, SpiceSpec, VncSpec, spec_field_problem

__all__ = ["VNC_BASE_PORT", "plan_graphics", "plan_usb_tablet"]

VNC_BASE_PORT = 5900
_PORT = re.compile(r"\s*([0-9]{1,5})\s*\Z")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\Z")
_KEYMAP = re.compile(r"[A-Za-z0-9_-]+\Z")


def _listen(item: Sourced | None, findings: Findings) -> str | None:
    if item is None:
        return None
    value = item.value.strip()
    if IPV4.match(value) or (_HOSTNAME.match(value) and len(value) <= 253):
        return value
    findings.refuse(
        item.path,
        f"LISTEN {item.value!r} must be an IPv4 address (e.g. 0.0.0.0) or a host name: "
        "xl reads anything after ':' as a display number",
    )
    return None


def _port(item: Sourced, low: int, findings: Findings, hint: str) -> int | None:
    match = _PORT.match(item.value)
    port = int(match.group(1)) if match else None
    if port is None or not low <= port <= 65535:
        findings.refuse(item.path, f"PORT {item.value!r} must be a port number from {low} to 65535{hint}")
        return None
    return port


def _passwd(item: Sourced | None, vfb: bool, findings: Findings) -> str | None:
    if item is None:
        return None
    problem = spec_field_problem(item.value) if vfb else control_problem(item.value)
    if problem:
        where = " (a PVH VM's VNC settings are a vfb spec)" if vfb else ""
        findings.refuse(item.path, f"the password {problem}{where}")
        return None
    return item.value


def plan_graphics(
    resolver: Resolver, dtype: DomainType, findings: Findings
) -> tuple[VncSpec | None, SpiceSpec | None]:
    graphics = resolver.template.vector_exact("GRAPHICS")
    if graphics is None:
        return None, None
    path = "TEMPLATE/GRAPHICS"
    kind = (graphics.get_exact("TYPE") or "").strip().upper()
    listen = _listen(Resolver.own(graphics, path, "LISTEN"), findings)
    port_item = Resolver.own(graphics, path, "PORT")
    passwd_item = Resolver.own(graphics, path, "PASSWD")
    if kind == "VNC":
        display = None
        if port_item is not None:
            hint = f": Xen numbers VNC displays from {VNC_BASE_PORT} (display = PORT - {VNC_BASE_PORT})"
            port = _port(port_item, VNC_BASE_PORT, findings, hint)
            display = None if port is None else port - VNC_BASE_PORT
        keymap_item = Resolver.own(graphics, path, "KEYMAP")
        keymap = None
        if keymap_item is not None:
            keymap = keymap_item.value.strip()
            if not _KEYMAP.match(keymap):
                findings.refuse(
                    keymap_item.path, f"KEYMAP {keymap_item.value!r} is not a keymap name such as en-us"
                )
                keymap = None
        passwd = _passwd(passwd_item, dtype == "pvh", findings)
        return VncSpec(listen=listen, display=display, passwd=passwd, keymap=keymap), None
    if kind == "SPICE" and dtype == "hvm":
        if port_item is None:
            findings.refuse(f"{path}/PORT", "SPICE needs a PORT")
            return None, None
        port = _port(port_item, 1, findings, "")
        passwd = _passwd(passwd_item, False, findings)
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
