"""The decoded driver message, `<VMM_DRIVER_ACTION_DATA>` (spec §1.4), as a typed view. Pure.

Only what the pipelines read is exposed: the envelope fields, and from the VM the
NICs (their VN_MADs for the network steps), the disk or NIC being (de)attached
(`ATTACH="YES"`) and the last history record. A document with a DTD is refused
before parsing: oned never sends one, and that is how entity expansion gets in.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

ROOT = "VMM_DRIVER_ACTION_DATA"
_DTD = re.compile(r"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


class MessageError(ValueError):
    """The driver message cannot be read; the text says why, for the FAILURE line."""


@dataclass(frozen=True)
class Device:
    """A DISK, NIC or NIC_ALIAS vector of the VM template: upper-case keys, text values."""

    kind: str
    values: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default).strip()

    @property
    def attaching(self) -> bool:
        return self.get("ATTACH").upper() == "YES"


@dataclass(frozen=True)
class History:
    seq: str
    hostname: str
    vm_mad: str
    tm_mad: str
    ds_id: str


@dataclass(frozen=True)
class DriverMessage:
    host: str
    migr_host: str
    deploy_id: str
    local_deployment_file: str
    remote_deployment_file: str
    checkpoint_file: str
    tm_command: str
    tm_command_rollback: str
    disk_target_path: str
    security_group_id: str
    net_drv: str  # 4.x only: the host's single VN_MAD
    migr_net_drv: str
    vm_xml: str  # the <VM> element as text ("" when absent)
    vm_id: int | None
    disks: tuple[Device, ...]
    nics: tuple[Device, ...]  # NIC and NIC_ALIAS, in template order
    context_target: str
    history: History | None

    def network_drivers(self) -> list[str]:
        """Each distinct VN_MAD of the VM's NICs, in order (4.x: the host's NET_DRV)."""
        drivers = list(dict.fromkeys(n.get("VN_MAD") for n in self.nics if n.get("VN_MAD")))
        if not drivers and self.net_drv:
            drivers = [self.net_drv]
        return drivers

    def attaching_disk(self) -> Device | None:
        return next((d for d in self.disks if d.attaching), None)

    def attaching_nic(self) -> Device | None:
        return next((n for n in self.nics if n.attaching), None)


def _text(root: ET.Element, path: str) -> str:
    element = root.find(path)
    return (element.text or "").strip() if element is not None else ""


def _devices(template: ET.Element | None, *kinds: str) -> tuple[Device, ...]:
    if template is None:
        return ()
    return tuple(
        Device(child.tag, {grand.tag.upper(): grand.text or "" for grand in child})
        for child in template
        if child.tag in kinds
    )


def _history(vm: ET.Element | None) -> History | None:
    if vm is None:
        return None
    records = vm.findall("HISTORY_RECORDS/HISTORY")
    if not records:
        return None
    last = records[-1]
    return History(
        seq=_text(last, "SEQ"),
        hostname=_text(last, "HOSTNAME"),
        # 4.x names them VMMMAD / TMMAD.
        vm_mad=_text(last, "VM_MAD") or _text(last, "VMMMAD"),
        tm_mad=_text(last, "TM_MAD") or _text(last, "TMMAD"),
        ds_id=_text(last, "DS_ID"),
    )


def _element_text(element: ET.Element | None) -> str:
    if element is None:
        return ""
    # tostring() also writes the text that follows the element in its parent.
    tail, element.tail = element.tail, None
    try:
        return ET.tostring(element, encoding="unicode")
    finally:
        element.tail = tail


def parse_xml(text: str, what: str) -> ET.Element:
    if _DTD.search(text):
        raise MessageError(f"the {what} holds a DTD, which oned never writes: refused")
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise MessageError(f"the {what} is not well-formed XML ({exc})") from None


def read_message(text: str) -> DriverMessage:
    root = parse_xml(text, "driver message")
    if root.tag != ROOT:
        raise MessageError(f"the driver message's root element is <{root.tag}>, not <{ROOT}>")
    vm = root.find("VM")
    template = vm.find("TEMPLATE") if vm is not None else None
    vm_id_text = _text(vm, "ID") if vm is not None else ""
    return DriverMessage(
        host=_text(root, "HOST"),
        migr_host=_text(root, "MIGR_HOST"),
        deploy_id=_text(root, "DEPLOY_ID"),
        local_deployment_file=_text(root, "LOCAL_DEPLOYMENT_FILE"),
        remote_deployment_file=_text(root, "REMOTE_DEPLOYMENT_FILE"),
        checkpoint_file=_text(root, "CHECKPOINT_FILE"),
        tm_command=_text(root, "TM_COMMAND"),
        tm_command_rollback=_text(root, "TM_COMMAND_ROLLBACK"),
        disk_target_path=_text(root, "DISK_TARGET_PATH"),
        security_group_id=_text(root, "SECURITY_GROUP_ID"),
        net_drv=_text(root, "NET_DRV"),
        migr_net_drv=_text(root, "MIGR_NET_DRV"),
        vm_xml=_element_text(vm),
        vm_id=int(vm_id_text) if vm_id_text.isdigit() else None,
        disks=_devices(template, "DISK"),
        nics=_devices(template, "NIC", "NIC_ALIAS"),
        context_target=_text(template, "CONTEXT/TARGET") if template is not None else "",
        history=_history(vm),
    )
