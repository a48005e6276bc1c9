"""Import of wild domains: `xl list -l` JSON → an OpenNebula template, and back again."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from translator_helpers import XEN4_DEFAULTS, Attr, vm_xml, xl_json
from vm_strategies import VmCase, actual_json, vm_cases

from onexen.template import Vector, parse
from services.translator.api import import_domain, translate
from services.translator.errors import TranslationError

# `xl list -l domu1` on the Xen 4.17 lab host (spec/xen-4.17/xl_list_l.txt).
DOMU1 = {
    "domid": 1,
    "config": {
        "c_info": {
            "type": "pv",
            "name": "domu1",
            "domid": 4294967295,
            "uuid": "05424b7f-f54e-48c0-87fe-7aa7188e6570",
        },
        "b_info": {
            "max_vcpus": 1,
            "avail_vcpus": [0],
            "max_memkb": 131072,
            "target_memkb": 131072,
            "video_memkb": 0,
            "sched_params": {"sched": "credit", "weight": 256, "cap": 0},
            "claim_mode": "True",
            "kernel": "/root/domu/vmlinuz",
            "cmdline": "console=hvc0 loglevel=4",
            "ramdisk": "/root/domu/initrd.cpio.gz",
            "type.pv": {},
            "arch_arm": {},
            "arch_x86": {"msr_relaxed": "False"},
        },
        "nics": [{"devid": 0, "mac": "00:16:3e:00:00:01", "bridge": "xenbr0", "nictype": "vif"}],
        "on_reboot": "restart",
        "on_soft_reset": "soft_reset",
    },
}


def test_a_running_pv_domain_from_the_lab_host() -> None:
    result = import_domain(json.dumps([DOMU1], indent=4))
    assert (result.deploy_id, result.warnings) == ("domu1", ())
    assert result.template == (
        'NAME = "domu1"\n'
        'CPU = "1"\n'
        'VCPU = "1"\n'
        'MEMORY = "128"\n'
        "OS = [\n"
        '  MACHINE = "pv",\n'
        '  KERNEL = "/root/domu/vmlinuz",\n'
        '  INITRD = "/root/domu/initrd.cpio.gz",\n'
        '  KERNEL_CMD = "console=hvc0 loglevel=4" ]\n'
        "NIC = [\n"
        '  MAC = "00:16:3e:00:00:01",\n'
        '  BRIDGE = "xenbr0",\n'
        '  MODEL = "netfront" ]\n'
        'DEPLOY_ID = "domu1"\n'
        'IMPORT_VM_ID = "domu1"\n'
    )


def test_the_domain_may_be_the_element_the_array_or_only_its_config() -> None:
    for shape in (DOMU1, [DOMU1], DOMU1["config"]):
        assert import_domain(json.dumps(shape)).deploy_id == "domu1"


def test_hvm_domain_with_every_device() -> None:
    config = {
        "c_info": {"type": "hvm", "name": 'win 10 "lab"'},
        "b_info": {
            "max_vcpus": 4,
            "avail_vcpus": [0, 1],
            "max_memkb": 4194304,
            "target_memkb": 2097152,
            "type.hvm": {
                "vnc": {"enable": "True", "listen": "0.0.0.0", "passwd": "pw", "findunused": "False"},
                "keymap": "es",
                "boot": "dcn",
            },
        },
        "disks": [
            {"pdev_path": "/img/win.qcow2", "vdev": "hda", "format": "qcow2", "readwrite": 1},
            {"pdev_path": "/dev/vg/data", "vdev": "sdb", "backend": "phy", "format": "raw"},
            {"pdev_path": "/img/win.iso", "vdev": "hdc", "format": "raw", "removable": 1, "is_cdrom": 1},
        ],
        "nics": [
            {"devid": 0, "mac": "00:16:3e:aa:bb:cc", "bridge": "br0", "model": "e1000", "ip": "10.0.0.9"}
        ],
        "pcidevs": [{"func": 0}],
    }
    result = import_domain(json.dumps({"domid": 7, "config": config}))
    template = parse(result.template)
    assert (template.get("NAME"), template.get("DEPLOY_ID"), template.get("IMPORT_VM_ID")) == (
        'win 10 "lab"',
    ) * 3
    assert [template.get(k) for k in ("CPU", "VCPU", "VCPU_MAX", "MEMORY", "MEMORY_MAX")] == [
        "2",
        "2",
        "4",
        "2048",
        "4096",
    ]
    assert template.vector("OS") == Vector([("MACHINE", "hvm"), ("BOOT", "disk2,disk0,nic0")])
    assert template.vectors("DISK") == [
        Vector([("SOURCE", "/img/win.qcow2"), ("TARGET", "hda"), ("DRIVER", "qcow2"), ("READONLY", "NO")]),
        Vector([("SOURCE", "/dev/vg/data"), ("TARGET", "sdb"), ("DRIVER", "phy:"), ("READONLY", "YES")]),
        Vector(
            [
                ("SOURCE", "/img/win.iso"),
                ("TARGET", "hdc"),
                ("DRIVER", "raw"),
                ("READONLY", "YES"),
                ("TYPE", "CDROM"),
            ]
        ),
    ]
    assert template.vector("NIC") == Vector(
        [("MAC", "00:16:3e:aa:bb:cc"), ("BRIDGE", "br0"), ("IP", "10.0.0.9"), ("MODEL", "e1000")]
    )
    assert template.vector("GRAPHICS") == Vector(
        [("TYPE", "VNC"), ("LISTEN", "0.0.0.0"), ("PORT", "5900"), ("PASSWD", "pw"), ("KEYMAP", "es")]
    )
    assert result.warnings == ("config.pcidevs: PCI devices are not imported",)


def test_spice_console_and_a_pv_framebuffer() -> None:
    spice = {
        "c_info": {"type": "hvm", "name": "s"},
        "b_info": {"type.hvm": {"spice": {"enable": "True", "port": 6001}}},
    }
    assert parse(import_domain(json.dumps(spice)).template).vector("GRAPHICS") == Vector(
        [("TYPE", "SPICE"), ("PORT", "6001")]
    )
    pv = {"c_info": {"type": "pvh", "name": "p"}, "b_info": {}, "vfbs": [{"devid": 0, "vnc": {"display": 3}}]}
    graphics = parse(import_domain(json.dumps(pv)).template).vector("GRAPHICS")
    assert graphics == Vector([("TYPE", "VNC"), ("PORT", "5903")])


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{", "is not JSON"),
        ("[]", "holds 0 domains"),
        (json.dumps([DOMU1, DOMU1]), "holds 2 domains"),
        ('{"domid": 1}', "no config.c_info"),
        ('"domu1"', "no config.c_info"),
        ('{"c_info": {"type": "pv"}}', "has no name"),
        ('{"c_info": {"name": "Domain-0"}}', "control domain"),
        ('{"c_info": {"name": "one-42"}}', "OpenNebula VM already"),
    ],
)
def test_what_is_not_an_importable_domain(text: str, words: str) -> None:
    with pytest.raises(TranslationError) as caught:
        import_domain(text)
    (field, description), *rest = caught.value.violations
    assert not rest
    assert field == "domain_json"
    assert words in description


def _as_oned_would_deploy(template_text: str) -> list[Attr]:
    """The imported template with the ids oned gives: DISK_ID and NIC_ID in order."""
    attrs: list[Attr] = []
    counters = {"DISK": 0, "NIC": 0}
    for key, value in parse(template_text).items():
        if isinstance(value, Vector):
            items = dict(value.items())
            if key in counters:
                items[f"{key}_ID"] = str(counters[key])
                counters[key] += 1
            attrs.append((key, items))
        else:
            attrs.append((key, value))
    return attrs


def _same_domain(doc: dict[str, Any], dtype: str) -> dict[str, Any]:
    got = actual_json(doc, dtype)
    # Features, the weight and the name are not part of an import.
    for key in ("weight", "name", "pae", "acpi", "apic", "localtime", "device_model", "usb", "usbdevice"):
        got.pop(key)
    got["max_vcpus"] = got["max_vcpus"] or 1  # libxl's default, which `xl list -l` would show
    got["avail_vcpus"] = got["avail_vcpus"] or [0]
    return got


@pytest.mark.slow
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vm_cases())
def test_a_translated_domain_imports_back_to_the_same_domain(case: VmCase) -> None:
    first = xl_json(translate(case.xml(), XEN4_DEFAULTS).config)
    # A wild domain: someone created it by hand, under a name of their own.
    wild = {**first, "c_info": {**first["c_info"], "name": "wild"}}
    imported = import_domain(json.dumps([{"domid": 3, "config": wild}]))
    assert imported.deploy_id == "wild"
    # oned gives the imported VM an id of its own; keep the old one so the disk paths compare.
    again = translate(vm_xml(_as_oned_would_deploy(imported.template), vm_id=case.vm_id), XEN4_DEFAULTS)
    second = xl_json(again.config)
    assert _same_domain(second, case.dtype) == _same_domain(first, case.dtype)
