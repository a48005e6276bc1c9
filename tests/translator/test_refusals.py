"""Bad input gets a TranslationError naming the template path and saying what to do; never a traceback."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import pytest
from translator_helpers import XEN4_DEFAULTS, Attr, vm_xml

from services.translator.api import translate
from services.translator.errors import TranslationError

KERNEL = ("OS", {"KERNEL": "/boot/vmlinuz"})


def disk(disk_id: int, target: str, **extra: str) -> Attr:
    return ("DISK", {"DISK_ID": str(disk_id), "TARGET": target, **extra})


def refused(template: Sequence[Attr], defaults: str = XEN4_DEFAULTS, **xml: Any) -> list[tuple[str, str]]:
    with pytest.raises(TranslationError) as caught:
        translate(vm_xml(template, **xml), defaults)
    assert caught.value.violations
    return caught.value.violations


def only(violations: list[tuple[str, str]]) -> tuple[str, str]:
    assert len(violations) == 1, violations
    return violations[0]


def test_no_memory() -> None:
    field, text = only(refused([KERNEL]))
    assert field == "TEMPLATE/MEMORY"
    assert "no MEMORY" in text


@pytest.mark.parametrize("memory", ["abc", "0", "-5", "1.5", "99999999999999999999", "16777217"])
def test_memory_that_is_not_a_size(memory: str) -> None:
    field, text = only(refused([("MEMORY", memory), KERNEL]))
    assert field == "TEMPLATE/MEMORY"
    assert "whole number from 1 to 16777216" in text


def test_disk_without_target() -> None:
    field, text = only(refused([("MEMORY", "512"), KERNEL, disk(0, "xvda"), ("DISK", {"DISK_ID": "1"})]))
    assert field == "TEMPLATE/DISK[2]/TARGET"
    assert "no TARGET" in text and "xvda" in text


def test_two_disks_with_one_target() -> None:
    field, text = only(refused([("MEMORY", "512"), KERNEL, disk(0, "xvda"), disk(1, "xvda")]))
    assert field == "TEMPLATE/DISK[2]/TARGET"
    assert "TEMPLATE/DISK[1]" in text


def test_context_and_disk_with_one_target() -> None:
    template: list[Attr] = [
        ("MEMORY", "512"),
        KERNEL,
        disk(0, "xvda"),
        ("CONTEXT", {"DISK_ID": "1", "TARGET": "xvda"}),
    ]
    assert only(refused(template))[0] == "TEMPLATE/CONTEXT/TARGET"


def test_hvm_with_more_than_four_ide_devices() -> None:
    targets = ["hda", "hdb", "hdc", "hdd", "hde"]
    template: list[Attr] = [("MEMORY", "512"), *(disk(i, t) for i, t in enumerate(targets))]
    field, text = only(refused(template))
    assert field == "TEMPLATE/DISK[5]/TARGET"
    assert "four" in text and "xvd*" in text and "sd*" in text and "Xen guide" in text


@pytest.mark.parametrize("target", ["vda", "xvd", "hdz1", "sdq", "xvda0", "XVDA", "xvda 1", "nvme0n1"])
def test_target_that_is_not_a_xen_device(target: str) -> None:
    field, _ = only(refused([("MEMORY", "512"), KERNEL, disk(0, target)]))
    assert field == "TEMPLATE/DISK[1]/TARGET"


def test_hvm_read_only_ide_disk_cannot_be_emulated() -> None:
    field, text = only(refused([("MEMORY", "512"), disk(0, "xvda", READONLY="yes")]))
    assert field == "TEMPLATE/DISK[1]/READONLY"
    assert "read-only IDE" in text and "sd*" in text


def test_hvm_hd_and_xvd_disks_sharing_an_ide_slot() -> None:
    field, text = only(refused([("MEMORY", "512"), disk(0, "hda"), disk(1, "xvda")]))
    assert field == "TEMPLATE/DISK[2]/TARGET"
    assert "IDE disk 0" in text


def test_hvm_cdrom_beyond_the_four_ide_devices() -> None:
    field, _ = only(refused([("MEMORY", "512"), disk(0, "sde", TYPE="CDROM")]))
    assert field == "TEMPLATE/DISK[1]/TARGET"


@pytest.mark.parametrize("port", ["5800", "5899", "abc", "", "65536", "-1"])
def test_vnc_port_below_5900_or_not_a_port(port: str) -> None:
    template: list[Attr] = [("MEMORY", "512"), ("GRAPHICS", {"TYPE": "VNC", "PORT": port or " "})]
    field, text = only(refused(template))
    assert field == "TEMPLATE/GRAPHICS/PORT"
    assert "5900" in text


@pytest.mark.parametrize(
    ("boot", "words"), [("hd,floppy", "'floppy'"), ("disk7", "no DISK_ID 7"), ("nic3", "NIC_ID 3")]
)
def test_unknown_boot_item(boot: str, words: str) -> None:
    template: list[Attr] = [
        ("MEMORY", "512"),
        disk(0, "hda"),
        ("NIC", {"NIC_ID": "0"}),
        ("OS", {"BOOT": boot}),
    ]
    field, text = only(refused(template))
    assert field == "TEMPLATE/OS/BOOT"
    assert words in text


@pytest.mark.parametrize(
    ("cpu", "defaults", "field"),
    [
        ("300", XEN4_DEFAULTS, "TEMPLATE/CPU"),
        ("0", XEN4_DEFAULTS, "TEMPLATE/CPU"),
        ("-1", XEN4_DEFAULTS, "TEMPLATE/CPU"),
        ("nan", XEN4_DEFAULTS, "TEMPLATE/CPU"),
        ("1e999999", XEN4_DEFAULTS, "TEMPLATE/CPU"),
        (None, "CREDIT = 70000", "defaults/CREDIT"),
        (None, "CREDIT = zero", "defaults/CREDIT"),
    ],
)
def test_credit_weight_outside_the_scheduler_range(cpu: str | None, defaults: str, field: str) -> None:
    template: list[Attr] = [("MEMORY", "512"), KERNEL]
    if cpu is not None:
        template.append(("CPU", cpu))
    found, text = only(refused(template, defaults))
    assert found == field
    assert "1..65535" in text or "above 0" in text


@pytest.mark.parametrize(
    ("xml", "words"),
    [
        ("", "is empty"),
        ("<HOST><ID>1</ID></HOST>", "<HOST> document, not a VM"),
        ("<VM><ID>1</ID><TEMPLATE>", "not well-formed"),
        ("VM = [ ID = 1 ]", "not well-formed"),
        ('<?xml version="1.0"?>\n<!DOCTYPE VM [<!ENTITY x "y">]><VM><ID>1</ID></VM>', "DOCTYPE"),
        ("<VM><ID>1</ID><TEMPLATE><MEMORY>&xxe;</MEMORY></TEMPLATE></VM>", "not well-formed"),
    ],
)
def test_xml_that_is_not_a_vm(xml: str, words: str) -> None:
    with pytest.raises(TranslationError) as caught:
        translate(xml, XEN4_DEFAULTS)
    field, text = only(caught.value.violations)
    assert field == "vm_xml"
    assert words in text


def test_vm_without_id_or_template() -> None:
    with pytest.raises(TranslationError) as caught:
        translate("<VM><NAME>x</NAME><TEMPLATE/></VM>")
    assert only(caught.value.violations)[0] == "ID"
    with pytest.raises(TranslationError) as caught:
        translate("<VM><ID>3</ID></VM>")
    assert only(caught.value.violations)[0] == "TEMPLATE"


@pytest.mark.parametrize(
    ("attr", "field"),
    [
        (("NIC", {"BRIDGE": "br0,script=/tmp/evil"}), "TEMPLATE/NIC[1]/BRIDGE"),
        (("NIC", {"MAC": "02:00:00:00:00:01,bridge=evil"}), "TEMPLATE/NIC[1]/MAC"),
        (("NIC", {"IP": "10.0.0.1, 10.0.0.2"}), "TEMPLATE/NIC[1]/IP"),
        (("NIC", {"MODEL": "e1000,type=ioemu"}), "TEMPLATE/NIC[1]/MODEL"),
        (("NIC", {"SCRIPT": "vif-bridge,mac=00:00:00:00:00:00"}), "TEMPLATE/NIC[1]/SCRIPT"),
        (("NIC", {"BRIDGE": "br0\nvif = ['x']"}), "TEMPLATE/NIC[1]/BRIDGE"),
        (("GRAPHICS", {"TYPE": "VNC", "LISTEN": "0.0.0.0,vncpasswd=x"}), "TEMPLATE/GRAPHICS/LISTEN"),
        (("GRAPHICS", {"TYPE": "VNC", "LISTEN": "::"}), "TEMPLATE/GRAPHICS/LISTEN"),
        (("GRAPHICS", {"TYPE": "VNC", "KEYMAP": 'es"\nkernel="/x'}), "TEMPLATE/GRAPHICS/KEYMAP"),
        (("GRAPHICS", {"TYPE": "VNC", "PASSWD": "a\nb"}), "TEMPLATE/GRAPHICS/PASSWD"),
        (("OS", {"KERNEL": "/boot/vmlinuz\nbootloader = 'x'"}), "TEMPLATE/OS/KERNEL"),
        (("OS", {"KERNEL": "/k", "ROOT": "xvda1 init=/bin/sh"}), "TEMPLATE/OS/ROOT"),
        (("OS", {"KERNEL": "/k", "KERNEL_CMD": "ro\tquiet"}), "TEMPLATE/OS/KERNEL_CMD"),
        (("FEATURES", {"DEVICE_MODEL": "/usr/bin/qemu\n"}), "TEMPLATE/FEATURES/DEVICE_MODEL"),
    ],
)
def test_values_that_cannot_be_written_safely(attr: Attr, field: str) -> None:
    template: list[Attr] = [("MEMORY", "512"), attr]
    assert only(refused(template))[0] == field


def test_pvh_vnc_password_with_a_comma_cannot_go_in_a_vfb() -> None:
    template: list[Attr] = [
        ("MEMORY", "512"),
        ("OS", {"KERNEL": "/k", "MACHINE": "pvh"}),
        ("GRAPHICS", {"TYPE": "VNC", "PASSWD": "a,b"}),
    ]
    field, text = only(refused(template))
    assert field == "TEMPLATE/GRAPHICS/PASSWD"
    assert "comma" in text and "vfb" in text


def test_datastore_location_with_a_new_line() -> None:
    violations = refused([("MEMORY", "512"), KERNEL, disk(0, "xvda")], ds_location="/var/lib/one\n/x")
    assert only(violations)[0] == "HISTORY_RECORDS/HISTORY/DS_LOCATION"


def test_relative_datastore_location_in_the_defaults() -> None:
    violations = refused(
        [("MEMORY", "512"), KERNEL, disk(0, "xvda")], 'DATASTORE_LOCATION = "datastores"', ds_location=None
    )
    assert only(violations)[0] == "defaults/DATASTORE_LOCATION"


def test_disks_need_the_history_record_and_its_datastore() -> None:
    template: list[Attr] = [("MEMORY", "512"), KERNEL, disk(0, "xvda")]
    assert only(refused(template, history=False))[0] == "HISTORY_RECORDS/HISTORY"
    assert only(refused(template, ds_id=None))[0] == "HISTORY_RECORDS/HISTORY/DS_ID"


def test_disk_ids_must_be_given_and_distinct() -> None:
    template: list[Attr] = [
        ("MEMORY", "512"),
        KERNEL,
        ("DISK", {"TARGET": "xvda"}),
        disk(1, "xvdb"),
        disk(1, "xvdc"),
    ]
    assert [field for field, _ in refused(template)] == [
        "TEMPLATE/DISK[1]/DISK_ID",
        "TEMPLATE/DISK[3]/DISK_ID",
    ]


@pytest.mark.parametrize("driver", ["vmdk", "raw:qcow2", "phy:qcow2", "nbd:", "rbd"])
def test_disk_driver_xl_does_not_know(driver: str) -> None:
    field, text = only(refused([("MEMORY", "512"), KERNEL, disk(0, "xvda", DRIVER=driver)]))
    assert field == "TEMPLATE/DISK[1]/DRIVER"
    assert "qcow2" in text


def test_a_bad_default_driver_is_reported_once_for_all_disks() -> None:
    template: list[Attr] = [("MEMORY", "512"), KERNEL, disk(0, "xvda"), disk(1, "xvdb")]
    assert only(refused(template, 'DISK = [ DRIVER = "floppy:" ]'))[0] == "defaults/DISK/DRIVER"


def test_defaults_that_are_not_template_syntax() -> None:
    field, text = only(refused([("MEMORY", "512"), KERNEL], 'CREDIT = 256\nDISK = [ driver = "raw:"\n'))
    assert field == "defaults"
    assert "line 3, column 1" in text and "never closed" in text


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("on_crash = 'destroy", "lexical error"),
        ("memory = 1024\nvif = [ 'a' ", "expected"),
        ("Memory = 512", "xl names are lower case"),
        ('extra = "\\x41"', "invalid escape"),
        ("cpus = 0-3", "lexical error"),
    ],
)
def test_raw_that_breaks_the_syntax(data: str, words: str) -> None:
    template: list[Attr] = [("MEMORY", "512"), KERNEL, ("RAW", {"TYPE": "xen", "DATA": data})]
    field, text = only(refused(template))
    assert field == "TEMPLATE/RAW[1]/DATA"
    assert words in text


def test_raw_in_the_defaults_that_breaks_the_syntax() -> None:
    # The commented example of the shipped defaults, uncommented and mistyped.
    field, _ = only(refused([("MEMORY", "512"), KERNEL], 'RAW = "data = \\"on_crash=destroy"'))
    assert field == "defaults/RAW"


def test_a_carriage_return_left_in_raw_is_a_lexical_error_for_xl() -> None:
    # XML turns every CR into LF, so only the defaults file can carry one; CRLF is forgiven.
    template: list[Attr] = [("MEMORY", "512"), KERNEL]
    assert translate(vm_xml(template), "RAW = \"on_crash = 'destroy'\r\n\"").config.endswith("'destroy'\n")
    field, text = only(refused(template, "RAW = \"on_crash = 'destroy'\rx = 1\""))
    assert field == "defaults/RAW"
    assert "lexical error" in text


def test_raw_may_not_rename_the_domain() -> None:
    template: list[Attr] = [("MEMORY", "512"), KERNEL, ("RAW", {"TYPE": "XEN", "DATA": 'name = "other"'})]
    field, text = only(refused(template))
    assert field == "TEMPLATE/RAW[1]/DATA"
    assert "one-<VM ID>" in text


@pytest.mark.parametrize(
    "data", ["cpu_weight = 0", "cpu_weight = 70000", 'cpu_weight = "heavy"', "cpu_weight = [1]"]
)
def test_raw_weight_outside_the_scheduler_range(data: str) -> None:
    template: list[Attr] = [("MEMORY", "512"), KERNEL, ("RAW", {"TYPE": "xen", "DATA": data})]
    assert only(refused(template))[0] == "TEMPLATE/RAW[1]/DATA"


@pytest.mark.parametrize("data", ['builder = "hvm"', 'type = "foo"', 'extra = "a"\n', 'disk += "x"'])
def test_raw_that_xl_would_refuse_with_the_translated_settings(data: str) -> None:
    template: list[Attr] = [("MEMORY", "512"), KERNEL, ("RAW", {"TYPE": "xen", "DATA": data})]
    if data.startswith("extra"):
        # Harmless: it only replaces a setting, with a warning.
        assert translate(vm_xml(template), XEN4_DEFAULTS).config.endswith('extra = "a"\n')
        return
    assert only(refused(template))[0] == "TEMPLATE/RAW[1]/DATA"


def test_pv_machine_without_a_kernel() -> None:
    field, text = only(refused([("MEMORY", "512"), ("OS", {"MACHINE": "pv"})]))
    assert field == "TEMPLATE/OS/MACHINE"
    assert "OS/KERNEL" in text and "OS/BOOTLOADER" in text


def test_maximums_below_the_current_values() -> None:
    template: list[Attr] = [
        ("MEMORY", "512"),
        ("MEMORY_MAX", "256"),
        ("VCPU", "4"),
        ("VCPU_MAX", "2"),
        KERNEL,
    ]
    assert [field for field, _ in refused(template)] == ["TEMPLATE/MEMORY_MAX", "TEMPLATE/VCPU_MAX"]


@pytest.mark.parametrize(
    ("vcpu", "machine"), [("0", "pv"), ("129", "hvm"), ("129", "pvh"), ("8193", "pv"), ("two", "pv")]
)
def test_vcpus_outside_what_xen_runs(vcpu: str, machine: str) -> None:
    field, _ = only(
        refused([("MEMORY", "512"), ("VCPU", vcpu), ("OS", {"KERNEL": "/k", "MACHINE": machine})])
    )
    assert field == "TEMPLATE/VCPU"


def test_spice_needs_a_port() -> None:
    field, _ = only(refused([("MEMORY", "512"), ("GRAPHICS", {"TYPE": "spice"})]))
    assert field == "TEMPLATE/GRAPHICS/PORT"


def test_several_problems_come_back_together() -> None:
    template: list[Attr] = [
        KERNEL,
        disk(0, "xvda"),
        ("DISK", {"DISK_ID": "1"}),
        ("NIC", {"MAC": "nope"}),
        ("GRAPHICS", {"TYPE": "VNC", "PORT": "80"}),
    ]
    fields = [field for field, _ in refused(template)]
    assert fields == [
        "TEMPLATE/MEMORY",
        "TEMPLATE/DISK[2]/TARGET",
        "TEMPLATE/GRAPHICS/PORT",
        "TEMPLATE/NIC[1]/MAC",
    ]


def test_the_error_becomes_invalid_argument_with_one_violation_per_field() -> None:
    try:
        translate(vm_xml([("CPU", "1000"), KERNEL]), XEN4_DEFAULTS)
    except TranslationError as exc:
        error = exc.to_invalid_argument()
    else:
        pytest.fail("not refused")
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["TEMPLATE/MEMORY", "TEMPLATE/CPU"]
    assert error.message.startswith("2 problems: TEMPLATE/MEMORY: the VM has no MEMORY")
    single = TranslationError.for_field("vm_xml", "is empty")
    assert single.message == "vm_xml: is empty" and str(single) == single.message
    with pytest.raises(ValueError):
        TranslationError([])
