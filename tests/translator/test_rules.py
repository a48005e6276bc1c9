"""The translation rules of spec §3, one at a time, each checked in the config text and,
where it matters, in what the real parser (xl -N create) makes of it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from translator_helpers import DS, XEN4_DEFAULTS, Attr, b_info, hvm_info, vm_xml, xl_json

from services.translator.api import Translation, parse_defaults, translate
from services.translator.xlreader import effective, read

KERNEL = ("OS", {"KERNEL": "/boot/vmlinuz"})


def run(template: Sequence[Attr], defaults: str = XEN4_DEFAULTS, **xml: Any) -> Translation:
    return translate(vm_xml([("MEMORY", "512"), *template], **xml), defaults)


def settings(result: Translation) -> dict[str, Any]:
    return dict(effective(read(result.config)))


def disk(disk_id: int, target: str, **extra: str) -> Attr:
    return ("DISK", {"DISK_ID": str(disk_id), "TARGET": target, **extra})


# --- name, memory, vcpus, credit weight ----------------------------------------------------


def test_name_memory_and_maximums() -> None:
    result = run([KERNEL, ("MEMORY_MAX", "1024"), ("VCPU", "2"), ("VCPU_MAX", "4")], vm_id=7)
    assert (result.domain_name, result.cpu_weight) == ("one-7", 256)
    doc = xl_json(result.config)
    info = b_info(doc)
    assert doc["c_info"]["name"] == "one-7"
    assert (info["target_memkb"], info["max_memkb"]) == (512 * 1024, 1024 * 1024)
    assert (info["max_vcpus"], info["avail_vcpus"]) == (4, [0, 1])


def test_vcpu_max_without_vcpu_brings_one_online() -> None:
    info = b_info(xl_json(run([KERNEL, ("VCPU_MAX", "3")]).config))
    assert (info["max_vcpus"], info["avail_vcpus"]) == (3, [0])


def test_vcpu_comes_from_the_defaults_when_the_template_has_none() -> None:
    assert settings(run([KERNEL], "VCPU = 3"))["vcpus"] == "3"
    assert settings(run([KERNEL, ("VCPU", "2")], "VCPU = 3"))["vcpus"] == "2"
    assert "vcpus" not in settings(run([KERNEL]))


@pytest.mark.parametrize(
    ("cpu", "defaults", "weight"),
    [
        (None, "", 256),  # CPU 1.0, CREDIT 256 when the defaults leave it out
        ("0.5", XEN4_DEFAULTS, 128),
        ("2", XEN4_DEFAULTS, 512),
        ("0.3", XEN4_DEFAULTS, 77),  # ceil(76.8)
        ("1.1", "CREDIT = 100", 110),  # exact decimal arithmetic: no ceil(110.00000000000001)
        ("0.001", XEN4_DEFAULTS, 1),
        ("255.99", XEN4_DEFAULTS, 65534),
        ("1", "CREDIT = 65535", 65535),
    ],
)
def test_credit_weight_is_ceil_of_cpu_times_credit(cpu: str | None, defaults: str, weight: int) -> None:
    result = run([KERNEL] + ([("CPU", cpu)] if cpu else []), defaults)
    assert result.cpu_weight == weight
    assert b_info(xl_json(result.config))["sched_params"] == {"weight": weight}


# --- OS: type, kernel, bootloader -----------------------------------------------------------


def test_default_os_sub_attributes_apply_one_by_one() -> None:
    defaults = (
        'OS = [ kernel = "/default/kernel", initrd = "/default/initrd", root = "sda1", kernel_cmd = "ro" ]'
    )
    info = b_info(xl_json(run([("OS", {"KERNEL": "/mine", "KERNEL_CMD": ""})], defaults).config))
    assert (info["kernel"], info["ramdisk"], info["cmdline"]) == (
        "/mine",
        "/default/initrd",
        "root=/dev/sda1 ro",
    )


def test_a_default_kernel_makes_every_vm_direct_boot_pv_as_upstream() -> None:
    result = run([("OS", {"BOOTLOADER": "pygrub"})], 'OS = [ KERNEL = "/vmlinuz" ]')
    assert settings(result)["type"] == "pv"
    assert "bootloader" not in settings(result)
    assert result.warnings == (
        "TEMPLATE/OS/BOOTLOADER: ignored: OS/KERNEL is set, so the kernel is booted directly",
    )


@pytest.mark.parametrize(
    ("root", "cmdline"),
    [("xvda1", "root=/dev/xvda1"), ("/dev/sda2", "root=/dev/sda2"), ("UUID=abc-1", "root=UUID=abc-1")],
)
def test_root_becomes_the_root_argument(root: str, cmdline: str) -> None:
    assert b_info(xl_json(run([("OS", {"KERNEL": "/k", "ROOT": root})]).config))["cmdline"] == cmdline


@pytest.mark.parametrize(
    ("os", "xl_type"),
    [
        ({"KERNEL": "/k"}, "pv"),
        ({"BOOTLOADER": "pygrub"}, "pv"),
        ({}, "hvm"),
        ({"KERNEL": "/k", "MACHINE": "pvh"}, "pvh"),
        ({"BOOTLOADER": "pygrub", "MACHINE": "PVH"}, "pvh"),
        ({"KERNEL": "/k", "MACHINE": "hvm"}, "hvm"),
        ({"KERNEL": "/k", "MACHINE": "pv"}, "pv"),
        ({"HVM": "yes", "KERNEL": "/k"}, "pv"),  # OS/HVM has no effect, as upstream
    ],
)
def test_domain_type(os: dict[str, str], xl_type: str) -> None:
    doc = xl_json(run([("OS", os)] if os else []).config)
    assert doc["c_info"]["type"] == xl_type
    if xl_type == "hvm" and "KERNEL" in os:
        assert b_info(doc)["kernel"] == "/k"  # HVM direct kernel boot


def test_a_kvm_machine_type_is_ignored_with_a_warning() -> None:
    result = run([("OS", {"MACHINE": "q35"})])
    assert settings(result)["type"] == "hvm"
    assert result.warnings == (
        "TEMPLATE/OS/MACHINE: 'q35' is not a Xen guest type (pv, pvh or hvm) and is ignored: the VM is hvm",
    )


def test_hvm_ignores_a_bootloader_it_cannot_use() -> None:
    result = run([("OS", {"BOOTLOADER": "pygrub", "MACHINE": "hvm"})])
    assert "bootloader" not in settings(result)
    assert "BIOS" in result.warnings[0]


# --- OS/BOOT ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("boot", "letters"),
    [
        ("cdrom,hd", "dc"),
        ("hd,cdrom,network,fd", "cdna"),
        ("HD, CDROM", "cd"),
        ("disk1,disk0,nic0", "dcn"),
        ("disk0,disk2", "c"),  # two hard disks are one boot letter: qemu refuses "cc"
        ("nic0,disk1", "nd"),
        ("disk3", "d"),  # the CONTEXT is a CD-ROM on HVM
        ("hd,cdrom,hd", "cd"),
    ],
)
def test_boot_order_in_both_forms(boot: str, letters: str) -> None:
    template = [
        disk(0, "xvda"),
        disk(1, "hdc", TYPE="CDROM"),
        disk(2, "xvdb"),
        ("CONTEXT", {"DISK_ID": "3", "TARGET": "hdd"}),
        ("NIC", {"NIC_ID": "0", "BRIDGE": "br0"}),
        ("OS", {"BOOT": boot}),
    ]
    assert hvm_info(xl_json(run(template).config))["boot"] == letters


def test_boot_is_ignored_on_pv_even_when_it_is_not_a_device() -> None:
    assert "boot" not in settings(run([("OS", {"KERNEL": "/k", "BOOT": "disk9,floppy"})]))


# --- disks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disk_attrs", "defaults", "fmt", "backend"),
    [
        ({}, XEN4_DEFAULTS, "raw", None),
        ({}, "", "raw", None),  # no default at all: tap:aio:, which libxl 4.17 reads as raw
        ({"DRIVER": "raw"}, "", "raw", None),
        ({"DRIVER": "raw:"}, "", "raw", None),
        ({"DRIVER": "qcow2"}, XEN4_DEFAULTS, "qcow2", None),
        ({"DRIVER": "qcow2:"}, XEN4_DEFAULTS, "qcow2", None),
        ({"DRIVER": "phy:"}, XEN4_DEFAULTS, "raw", "phy"),
        ({"DRIVER": "file:"}, XEN4_DEFAULTS, "raw", None),
        ({"DRIVER": "tap:aio:"}, XEN4_DEFAULTS, "raw", None),
        ({"DRIVER": "tap2:tapdisk:aio"}, XEN4_DEFAULTS, "raw", None),
        ({"DRIVER": "tap:qcow2:"}, XEN4_DEFAULTS, "qcow2", None),
        ({"DRIVER": "vhd"}, XEN4_DEFAULTS, "vhd", None),
        ({"TYPE": "BLOCK"}, XEN4_DEFAULTS, "raw", "phy"),
        ({"TYPE": "block", "DRIVER": "qcow2"}, XEN4_DEFAULTS, "qcow2", None),
        ({}, 'DISK = [ DRIVER = "phy" ]', "raw", "phy"),
        ({"TYPE": "swap"}, 'DISK = [ driver = "tap2:tapdisk:aio:" ]', "raw", None),
    ],
)
def test_disk_driver_mapping(
    disk_attrs: dict[str, str], defaults: str, fmt: str, backend: str | None
) -> None:
    doc = xl_json(run([KERNEL, disk(3, "xvda", **disk_attrs)], defaults).config)
    assert doc["disks"] == [
        {
            "pdev_path": f"{DS}/0/42/disk.3",
            "vdev": "xvda",
            **({"backend": backend} if backend else {}),
            "format": fmt,
            "readwrite": 1,
        }
    ]


@pytest.mark.parametrize(
    ("attrs", "readwrite", "cdrom"),
    [
        ({"READONLY": "YES"}, 0, 0),
        ({"READONLY": "yes"}, 0, 0),
        ({"READONLY": "NO"}, 1, 0),
        ({"READONLY": "true"}, 1, 0),  # only YES is true, as upstream
        ({"TYPE": "CDROM"}, 0, 1),  # a CD-ROM is read-only even when READONLY is missing
        ({"TYPE": "cdrom", "READONLY": "NO"}, 0, 1),
        ({"TYPE": "RBD_CDROM"}, 1, 0),  # upstream matches CDROM only
        ({"TYPE": "fs", "SIZE": "10"}, 1, 0),
    ],
)
def test_readonly_and_cdrom(attrs: dict[str, str], readwrite: int, cdrom: int) -> None:
    found = xl_json(run([KERNEL, disk(0, "xvdb", **attrs)]).config)["disks"][0]
    assert (found.get("readwrite", 0), found.get("is_cdrom", 0)) == (readwrite, cdrom)


def test_disk_paths_follow_the_history_record() -> None:
    template = [KERNEL, disk(0, "xvda"), disk(5, "xvdb")]
    paths = [d["pdev_path"] for d in xl_json(run(template, vm_id=9, ds_id=104).config)["disks"]]
    assert paths == [f"{DS}/104/9/disk.0", f"{DS}/104/9/disk.5"]


@pytest.mark.parametrize(
    ("location", "defaults", "prefix"),
    [
        ("/data/ds/", XEN4_DEFAULTS, "/data/ds/0/42"),  # 4.x: DS_LOCATION in the history
        (None, 'DATASTORE_LOCATION = "/srv/ds"', "/srv/ds/0/42"),  # 5.x: from the driver defaults
        (None, XEN4_DEFAULTS, "/var/lib/one//datastores/0/42"),  # oned's own default
        ("/a b,c/d'e\"f", XEN4_DEFAULTS, "/a b,c/d'e\"f/0/42"),  # kept intact by target= being last
    ],
)
def test_system_datastore_location(location: str | None, defaults: str, prefix: str) -> None:
    result = run([KERNEL, disk(0, "xvda")], defaults, ds_location=location)
    assert xl_json(result.config)["disks"][0]["pdev_path"] == f"{prefix}/disk.0"


def test_context_disk_is_read_only_with_its_own_driver() -> None:
    template = [KERNEL, disk(0, "xvda"), ("CONTEXT", {"DISK_ID": "1", "TARGET": "xvdz", "DRIVER": "file:"})]
    context = xl_json(run(template, 'DISK = [ DRIVER = "phy:" ]').config)["disks"][1]
    assert context == {"pdev_path": f"{DS}/0/42/disk.1", "vdev": "xvdz", "format": "raw"}


def test_context_on_hvm_is_a_cdrom_because_qemu_has_no_read_only_ide_disk() -> None:
    context = xl_json(run([("CONTEXT", {"DISK_ID": "0", "TARGET": "hda"})]).config)["disks"][0]
    assert (context["vdev"], context.get("is_cdrom"), context.get("readwrite", 0)) == ("hda", 1, 0)


def test_context_without_target_is_left_out_with_a_warning() -> None:
    result = run([KERNEL, ("CONTEXT", {"DISK_ID": "0", "NETWORK": "YES"})], history=False)
    assert settings(result)["disk"] == ()
    assert result.warnings == (
        "TEMPLATE/CONTEXT: has no TARGET, so the VM starts without its context disk "
        "(upstream: could not find target device to attach context)",
    )


def test_hvm_disks_on_scsi_and_late_xvd_may_be_read_only() -> None:
    template = [disk(0, "hda"), disk(1, "sdb", READONLY="YES"), disk(2, "xvde", READONLY="YES")]
    found = xl_json(run(template).config)["disks"]
    assert [(d["vdev"], d.get("readwrite", 0)) for d in found] == [("hda", 1), ("sdb", 0), ("xvde", 0)]


@pytest.mark.parametrize("target", ["xvda1", "xvdaa", "sdp", "hdd63"])
def test_unusual_but_valid_targets(target: str) -> None:
    assert xl_json(run([KERNEL, disk(0, target)]).config)["disks"][0]["vdev"] == target


# --- NICs ------------------------------------------------------------------------------------


def test_nic_fields() -> None:
    nic = {
        "MAC": "02:00:C0:A8:01:0A",
        "BRIDGE": "br0",
        "IP": "192.168.1.10",
        "MODEL": "e1000",
        "SCRIPT": "vif-nat",
    }
    found = xl_json(run([("NIC", nic), ("NIC", {"BRIDGE": "br1"})]).config)["nics"]
    assert found == [
        {
            "devid": 0,
            "model": "e1000",
            "mac": "02:00:c0:a8:01:0a",
            "ip": "192.168.1.10",
            "bridge": "br0",
            "script": "vif-nat",
        },
        {"devid": 1, "bridge": "br1"},
    ]


def test_nic_model_from_the_defaults_and_vif_types() -> None:
    template = [
        ("NIC", {"BRIDGE": "br0"}),
        ("NIC", {"BRIDGE": "br0", "MODEL": "virtio-net"}),
        ("NIC", {"BRIDGE": "br0", "MODEL": "netfront"}),
        ("NIC", {"BRIDGE": "br0", "MODEL": "ioemu"}),
    ]
    found = xl_json(run(template, 'NIC = [ model = "rtl8139" ]').config)["nics"]
    assert [(n.get("model"), n.get("nictype")) for n in found] == [
        ("rtl8139", None),
        ("virtio-net", None),
        (None, "vif"),
        (None, "vif_ioemu"),
    ]


def test_an_empty_nic_is_a_default_vif() -> None:
    assert xl_json(run([("NIC", {"NETWORK": "x"})]).config)["nics"] == [{"devid": 0}]


# --- graphics and input ----------------------------------------------------------------------


def test_vnc_on_pv_without_a_port_lets_xl_pick_the_display() -> None:
    doc = xl_json(
        run([KERNEL, ("GRAPHICS", {"TYPE": "vnc", "LISTEN": "10.0.0.1", "PASSWD": "a,b=c"})]).config
    )
    assert doc["vfbs"][0]["vnc"] == {"enable": "True", "listen": "10.0.0.1", "passwd": "a,b=c"}


def test_vnc_port_5900_is_display_0() -> None:
    hvm = hvm_info(xl_json(run([("GRAPHICS", {"TYPE": "VNC", "PORT": "5900"})]).config))
    assert hvm["vnc"] == {"enable": "True", "findunused": "False"}  # libxl leaves out display 0
    assert "vncdisplay = 0" in run([("GRAPHICS", {"TYPE": "VNC", "PORT": "5900"})]).config


def test_spice_with_a_password_keeps_ticketing() -> None:
    graphics = {"TYPE": "spice", "LISTEN": "0.0.0.0", "PORT": "6000", "PASSWD": 's3cr"et'}
    hvm = hvm_info(xl_json(run([("GRAPHICS", graphics)]).config))
    assert hvm["spice"] == {"enable": "True", "port": 6000, "host": "0.0.0.0", "passwd": 's3cr"et'}


@pytest.mark.parametrize(
    ("template", "warning"),
    [
        (
            [("GRAPHICS", {"TYPE": "SDL"})],
            "TEMPLATE/GRAPHICS/TYPE: graphics type 'SDL' is not supported on a hvm VM",
        ),
        (
            [KERNEL, ("GRAPHICS", {"TYPE": "SPICE", "PORT": "5901"})],
            "TEMPLATE/GRAPHICS/TYPE: graphics type 'SPICE' is not supported on a pv VM",
        ),
        (
            [("INPUT", {"TYPE": "mouse", "BUS": "ps2"})],
            "TEMPLATE/INPUT: not supported, only a usb tablet: ignored",
        ),
        (
            [KERNEL, ("INPUT", {"TYPE": "tablet", "BUS": "usb"})],
            "TEMPLATE/INPUT: a usb tablet needs an HVM VM",
        ),
        ([("PCI", {"VENDOR": "8086"})], "TEMPLATE/PCI: PCI passthrough is not translated"),
        ([("RAW", {"DATA": "x = 1"})], 'TEMPLATE/RAW[1]: has no TYPE: only RAW with TYPE = "xen"'),
    ],
)
def test_unsupported_devices_are_warnings(template: list[Attr], warning: str) -> None:
    result = run(template)
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith(warning)
    xl_json(result.config)


# --- features --------------------------------------------------------------------------------


def test_features_per_sub_attribute_with_yes_as_the_only_truth() -> None:
    defaults = 'FEATURES = [ PAE = "yes", ACPI = "yes", APIC = "yes", LOCALTIME = "yes" ]'
    template = [("FEATURES", {"PAE": "no", "APIC": "true", "DEVICE_MODEL": "/usr/lib/xen/bin/qemu dm"})]
    doc = xl_json(run(template, defaults).config)
    info, hvm = b_info(doc), hvm_info(doc)
    assert (hvm["pae"], info["acpi"], info["apic"], info["localtime"]) == ("False", "True", "False", "True")
    assert (info["device_model"], info["device_model_version"]) == ("/usr/lib/xen/bin/qemu dm", "qemu_xen")


def test_features_absent_everywhere_write_nothing_and_pv_ignores_them() -> None:
    assert not {"pae", "acpi", "apic", "localtime"} & set(settings(run([])))
    pv = settings(run([KERNEL, ("FEATURES", {"PAE": "yes", "DEVICE_MODEL": "/x"})]))
    assert not {"pae", "device_model_override"} & set(pv)


# --- RAW -------------------------------------------------------------------------------------


def test_raw_from_template_then_defaults_is_appended_verbatim() -> None:
    template = [
        KERNEL,
        ("RAW", {"TYPE": "kvm", "DATA": "<devices/>"}),
        ("RAW", {"TYPE": "Xen", "DATA": "on_crash = 'preserve'\r\ncpus = \"0-1\""}),
    ]
    result = run(template, 'RAW = "on_reboot = \\"rename-restart\\""')
    assert result.config.endswith('on_crash = \'preserve\'\ncpus = "0-1"\non_reboot = "rename-restart"\n')
    doc = xl_json(result.config)
    assert (doc["on_crash"], doc["on_reboot"]) == ("preserve", "restart_rename")


def test_raw_replacing_a_setting_warns_and_its_weight_is_the_one_reported() -> None:
    template = [KERNEL, ("RAW", {"TYPE": "xen", "DATA": "memory = 1024\ncpu_weight = 0x200"})]
    result = run(template)
    assert result.cpu_weight == 512
    assert result.warnings == (
        "TEMPLATE/RAW[1]/DATA: sets cpu_weight, replacing the value translated from the template",
        "TEMPLATE/RAW[1]/DATA: sets memory, replacing the value translated from the template",
    )
    info = b_info(xl_json(result.config))
    assert (info["target_memkb"], info["sched_params"]) == (1024 * 1024, {"weight": 512})


def test_raw_vector_in_the_defaults() -> None:
    result = run([KERNEL], 'RAW = [ TYPE = "xen", DATA = "on_poweroff = \\"preserve\\"" ]')
    assert xl_json(result.config)["on_poweroff"] == "preserve"


# --- input shapes ----------------------------------------------------------------------------


def test_the_whole_driver_message_is_accepted_too() -> None:
    inner = vm_xml([("MEMORY", "256"), KERNEL])
    message = (
        f"<VMM_DRIVER_ACTION_DATA><HOST>xen1</HOST><MIGR_HOST/><DEPLOY_ID/>{inner}</VMM_DRIVER_ACTION_DATA>"
    )
    assert translate(message).domain_name == "one-42"


def test_the_defaults_file_is_parsed_once() -> None:
    parse_defaults.cache_clear()
    for _ in range(3):
        run([KERNEL], XEN4_DEFAULTS + "\n# same file\n")
    assert parse_defaults.cache_info().hits == 2
