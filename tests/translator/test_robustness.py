"""Never a traceback: any input gives a result or a TranslationError, nothing else."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from translator_helpers import XEN4_DEFAULTS, Attr, vm_xml

from services.translator.api import import_domain, translate
from services.translator.errors import TranslationError
from services.translator.xlreader import XlSyntaxError, read

_TEXT = st.one_of(
    st.sampled_from(
        ["", "0", "1", "5901", "yes", "NO", "hda", "xvdb", "sdc", "raw:", "qcow2", "pvh", "disk0,nic0"]
    ),
    st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=12),
)
_SUB_KEYS = {
    "OS": ["KERNEL", "INITRD", "ROOT", "KERNEL_CMD", "BOOTLOADER", "MACHINE", "BOOT", "HVM"],
    "DISK": ["DISK_ID", "TARGET", "TYPE", "DRIVER", "READONLY", "SIZE"],
    "CONTEXT": ["DISK_ID", "TARGET", "DRIVER"],
    "NIC": ["NIC_ID", "MAC", "BRIDGE", "IP", "MODEL", "SCRIPT"],
    "GRAPHICS": ["TYPE", "LISTEN", "PORT", "PASSWD", "KEYMAP"],
    "INPUT": ["TYPE", "BUS"],
    "FEATURES": ["PAE", "ACPI", "APIC", "LOCALTIME", "DEVICE_MODEL"],
    "RAW": ["TYPE", "DATA"],
    "PCI": ["VENDOR"],
}
_SINGLE = ["MEMORY", "MEMORY_MAX", "CPU", "VCPU", "VCPU_MAX", "NAME", "OS", "DISK"]


@st.composite
def _attrs(draw: st.DrawFn) -> list[Attr]:
    out: list[Attr] = []
    for _ in range(draw(st.integers(0, 10))):
        if draw(st.booleans()):
            out.append((draw(st.sampled_from(_SINGLE)), draw(_TEXT)))
        else:
            key = draw(st.sampled_from(sorted(_SUB_KEYS)))
            subs = draw(st.lists(st.sampled_from(_SUB_KEYS[key]), max_size=4, unique=True))
            out.append((key, {sub: draw(_TEXT) for sub in subs}))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_attrs(), st.sampled_from(["", XEN4_DEFAULTS, 'OS = [ KERNEL = "/k" ]', "CREDIT = 0.5", "RAW = x"]))
def test_any_template_gives_a_config_or_a_translation_error(attrs: list[Attr], defaults: str) -> None:
    try:
        result = translate(vm_xml(attrs), defaults)
    except TranslationError as exc:
        assert exc.violations and all(field and text for field, text in exc.violations)
    else:
        assert result.domain_name == "one-42"
        read(result.config)  # what we write, xl's reader reads


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_any_text_as_vm_xml_or_defaults(text: str) -> None:
    for vm, defaults in ((text, ""), (vm_xml([("MEMORY", "64")]), text)):
        with contextlib.suppress(TranslationError):
            translate(vm, defaults)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_DOMAIN_KEYS = ["c_info", "b_info", "disks", "nics", "vfbs", "pcidevs", "type.hvm", "name", "type"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(_DOMAIN_KEYS), _JSON, max_size=6),
    st.dictionaries(st.sampled_from(["name", "type"]), _JSON, max_size=2),
)
def test_any_json_gives_a_template_or_a_translation_error(
    config: dict[str, Any], c_info: dict[str, Any]
) -> None:
    for document in (config, {**config, "c_info": c_info}, [{"config": {**config, "c_info": c_info}}]):
        try:
            import_domain(json.dumps(document))
        except TranslationError as exc:
            assert exc.violations[0][0] == "domain_json"


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        '{"a":' * 100_000,
        '{"c_info": {"name": "x"}, "b_info": {"max_memkb": 1e400}}',
        '{"c_info": {"name": "x"}, "b_info": {"max_memkb": 1' + "0" * 400 + "}}",
    ],
)
def test_json_bombs(text: str) -> None:
    with contextlib.suppress(TranslationError):
        import_domain(text)


def test_raw_lists_nested_without_end_are_refused_not_a_recursion_error() -> None:
    with pytest.raises(XlSyntaxError, match="nested more than 64 deep"):
        read("x = " + "[" * 5000 + "]" * 5000 + "\n")
    template: list[Attr] = [
        ("MEMORY", "64"),
        ("RAW", {"TYPE": "xen", "DATA": "zz = " + "[" * 500 + "]" * 500}),
    ]
    with pytest.raises(TranslationError, match="nested more than 64 deep"):
        translate(vm_xml(template))


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ([("MEMORY", "64"), ("DISK", {"DISK_ID": "9" * 5000, "TARGET": "xvda"})], "TEMPLATE/DISK[1]/DISK_ID"),
        ([("MEMORY", "64"), ("OS", {"BOOT": "disk" + "9" * 5000})], "TEMPLATE/OS/BOOT"),
        ([("MEMORY", "9" * 5000)], "TEMPLATE/MEMORY"),
        (
            [("MEMORY", "64"), ("DISK", {"DISK_ID": "0", "TARGET": "xvda" + "1" * 5000})],
            "TEMPLATE/DISK[1]/TARGET",
        ),
        (
            [("MEMORY", "64"), ("DISK", {"DISK_ID": "0", "TARGET": "xvd" + "z" * 5000})],
            "TEMPLATE/DISK[1]/TARGET",
        ),
        ([("MEMORY", "64"), ("GRAPHICS", {"TYPE": "VNC", "PORT": "9" * 5000})], "TEMPLATE/GRAPHICS/PORT"),
        ([("MEMORY", "64"), ("CPU", "9" * 5000)], "TEMPLATE/CPU"),
    ],
)
def test_numbers_too_long_for_int_are_refused(template: list[Attr], field: str) -> None:
    with pytest.raises(TranslationError) as caught:
        translate(vm_xml(template))
    assert caught.value.violations[0][0] == field


def test_an_id_too_long_for_int() -> None:
    with pytest.raises(TranslationError) as caught:
        translate(vm_xml([("MEMORY", "64")], vm_id="9" * 5000))
    assert caught.value.violations == [("ID", "the VM has no numeric ID: is this oned's VM XML?")]
