"""OpenNebula VM + driver defaults → `DomainConfig`: the translation rules, in one place
that calls the per-topic modules (boot, sizing, disks, nics, graphics, features, raw).

Every module records its refusals and warnings in one `Findings`, so a template
with several problems gets them all in one answer.
"""

from __future__ import annotations

from typing import NamedTuple

from onexen.template import Template
from services.translator.boot import boot_order, resolve_os
from services.translator.disks import plan_disks
from services.translator.features import resolve_features
from services.translator.graphics import plan_graphics, plan_usb_tablet
from services.translator.nics import nic_ids, plan_vifs
from services.translator.raw import RawChunk, collect_raw
from services.translator.resolve import Findings, Resolver
from services.translator.sizing import resolve_sizing
from services.translator.vm_xml import VmTemplate
from services.translator.xlconfig import DomainConfig

__all__ = ["Plan", "domain_name", "plan_domain"]


class Plan(NamedTuple):
    config: DomainConfig  # its `raw` holds the text of `raw`, in order
    raw: list[RawChunk]


def domain_name(vm: VmTemplate) -> str:
    return f"one-{vm.id}"


def plan_domain(vm: VmTemplate, defaults: Template, findings: Findings) -> Plan:
    resolver = Resolver(vm.template, defaults)
    os_settings = resolve_os(resolver, findings)
    dtype = os_settings.type
    sizing = resolve_sizing(resolver, dtype, findings)
    disks = plan_disks(vm, resolver, dtype, findings)
    boot = None
    os_vector = vm.template.vector_exact("OS")
    if dtype == "hvm" and os_vector is not None:
        # BOOT has no default, and PV ignores it (5.x Sunstone sets it on every VM).
        boot_item = Resolver.own(os_vector, "TEMPLATE/OS", "BOOT")
        boot = boot_order(boot_item, disks.cdrom_by_id, nic_ids(vm.template.vectors("NIC")), findings)
    vnc, spice = plan_graphics(resolver, dtype, findings)
    features = resolve_features(resolver, dtype, findings)
    if "PCI" in vm.template:
        findings.warn("TEMPLATE/PCI", "PCI passthrough is not translated: the VM starts without it")
    raw = collect_raw(resolver, findings)
    # Positional, in the order of DomainConfig's fields: a call with 24 keywords costs four
    # times as much (tests/translator/test_fast_paths.py pins the order).
    config = DomainConfig(
        domain_name(vm),  # name
        dtype,  # type
        sizing.memory,
        sizing.maxmem,
        sizing.vcpus,
        sizing.maxvcpus,
        sizing.cpu_weight,
        os_settings.kernel,
        os_settings.ramdisk,
        os_settings.cmdline,
        os_settings.bootloader,
        boot,
        disks.specs,
        plan_vifs(resolver, findings),  # vifs
        vnc,
        spice,
        plan_usb_tablet(resolver, dtype, findings),  # usb_tablet
        features.pae,
        features.acpi,
        features.apic,
        features.localtime,
        features.device_model_override,
        features.device_model_version,
        tuple([chunk.text for chunk in raw]) if raw else (),  # raw
    )
    return Plan(config, raw)
