"""Golden configs: the spec's worked examples (3.11, in modern xl keys) and a few more,
pinned byte for byte, and each one checked field by field by the real parser.

`<name>.xml` is the VM as oned writes it; `<name>.conf` its driver defaults (else
the shipped xen4 defaults, `xen4.conf`); `<name>.cfg` the expected config.
Set ONEXEN_REGEN_GOLDEN=1 to rewrite the .cfg files after a deliberate change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from translator_helpers import b_info, hvm_info, xl_json

from services.translator.api import translate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "translator"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.xml"))
WARNINGS = {
    "pvh_vfb": ("TEMPLATE/INPUT: a usb tablet needs an HVM VM, this one is pvh: ignored",),
}


def _translate(name: str) -> tuple[str, tuple[str, ...]]:
    defaults = FIXTURES / f"{name}.conf"
    if not defaults.exists():
        defaults = FIXTURES / "xen4.conf"
    result = translate((FIXTURES / f"{name}.xml").read_text(), defaults.read_text())
    return result.config, result.warnings


def test_every_example_has_a_golden_config() -> None:
    assert {"spec_pv_kernel", "spec_hvm", "spec_pv_pygrub_block", "modern_hvm", "pvh_vfb"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_translation_matches_the_golden_config(name: str) -> None:
    config, warnings = _translate(name)
    golden = FIXTURES / f"{name}.cfg"
    if os.environ.get("ONEXEN_REGEN_GOLDEN"):
        golden.write_text(config)
    assert config == golden.read_text()
    assert warnings == WARNINGS.get(name, ())


def test_pv_direct_kernel_example_as_xl_reads_it() -> None:
    doc = xl_json((FIXTURES / "spec_pv_kernel.cfg").read_text())
    info = b_info(doc)
    assert doc["c_info"]["type"] == "pv"
    assert doc["c_info"]["name"] == "one-42"
    assert (info["max_memkb"], info["target_memkb"]) == (1024 * 1024, 1024 * 1024)
    assert info["max_vcpus"] == 2
    assert info["sched_params"] == {"weight": 128}
    assert (info["kernel"], info["ramdisk"]) == ("/boot/vmlinuz-xen", "/boot/initrd-xen")
    assert info["cmdline"] == "root=/dev/xvda1 ro console=hvc0"
    assert [(d["pdev_path"], d["vdev"], d["format"], d.get("readwrite", 0)) for d in doc["disks"]] == [
        ("/var/lib/one//datastores/0/42/disk.0", "xvda", "raw", 1),
        ("/var/lib/one//datastores/0/42/disk.1", "xvdb", "raw", 1),
        ("/var/lib/one//datastores/0/42/disk.2", "hda", "raw", 0),
    ]
    assert doc["nics"] == [{"devid": 0, "mac": "02:00:c0:a8:01:0a", "ip": "192.168.1.10", "bridge": "br0"}]
    assert doc["vfbs"][0]["vnc"] == {
        "enable": "True",
        "listen": "0.0.0.0",
        "display": 42,
        "findunused": "False",
    }


def test_hvm_example_as_xl_reads_it() -> None:
    doc = xl_json((FIXTURES / "spec_hvm.cfg").read_text())
    info, hvm = b_info(doc), hvm_info(doc)
    assert doc["c_info"]["type"] == "hvm"
    assert info["sched_params"] == {"weight": 256}
    assert "max_vcpus" not in info
    assert (info["acpi"], info["apic"], info["localtime"], hvm["pae"]) == ("True", "True", "True", "True")
    assert hvm["boot"] == "dc"
    assert hvm["vnc"] == {
        "enable": "True",
        "listen": "0.0.0.0",
        "passwd": "secret",
        "display": 43,
        "findunused": "False",
    }
    assert hvm["keymap"] == "es"
    assert (hvm["usb"], hvm["usbdevice"]) == ("True", "tablet")
    assert doc["disks"][1] == {
        "pdev_path": "/var/lib/one//datastores/0/43/disk.1",
        "vdev": "hdc",
        "format": "raw",
        "removable": 1,
        "is_cdrom": 1,
    }
    assert doc["nics"][0]["model"] == "e1000"
    # The RAW line parsed; libxl leaves out on_crash = destroy, its default.
    assert doc.get("on_crash", "destroy") == "destroy"


def test_pygrub_and_block_example_as_xl_reads_it() -> None:
    doc = xl_json((FIXTURES / "spec_pv_pygrub_block.cfg").read_text())
    assert b_info(doc)["bootloader"] == "/usr/lib/xen/bin/pygrub"
    assert "kernel" not in b_info(doc)
    assert doc["disks"][0]["backend"] == "phy"
    assert "nics" not in doc


def test_modern_hvm_example_as_xl_reads_it() -> None:
    doc = xl_json((FIXTURES / "modern_hvm.cfg").read_text())
    info, hvm = b_info(doc), hvm_info(doc)
    assert (info["max_memkb"], info["target_memkb"]) == (4096 * 1024, 2048 * 1024)
    assert (info["max_vcpus"], info["avail_vcpus"]) == (4, [0, 1])
    assert info["sched_params"] == {"weight": 768}
    assert (info["device_model"], info["device_model_version"]) == (
        "/usr/libexec/xen-qemu-system-i386",
        "qemu_xen",
    )
    assert hvm["boot"] == "dcn"
    assert hvm["spice"] == {"enable": "True", "port": 5945, "host": "0.0.0.0", "disable_ticketing": "True"}
    assert [(d["vdev"], d["format"], d.get("is_cdrom", 0), d.get("readwrite", 0)) for d in doc["disks"]] == [
        ("xvda", "qcow2", 0, 1),
        ("hdc", "raw", 1, 0),
        ("sda", "raw", 0, 0),
        ("hdb", "raw", 1, 0),
    ]
    assert [(n.get("model"), n.get("script")) for n in doc["nics"]] == [
        ("rtl8139", None),
        ("e1000", "vif-bridge"),
    ]


def test_pvh_example_as_xl_reads_it() -> None:
    doc = xl_json((FIXTURES / "pvh_vfb.cfg").read_text())
    assert doc["c_info"]["type"] == "pvh"
    assert b_info(doc)["cmdline"] == "root=UUID=2f1e console=hvc0 quiet"
    assert doc["vfbs"][0] == {
        "devid": 0,
        "vnc": {
            "enable": "True",
            "listen": "127.0.0.1",
            "passwd": 'p@ss=w0rd "quoted"',
            "display": 46,
            "findunused": "False",
        },
        "sdl": {},
        "keymap": "en-us",
    }
