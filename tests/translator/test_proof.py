"""Proof against the real parser: every config the translator writes is read by `xl -N
create` (Xen 4.17) and compared field by field with what the template asked for;
hostile text in every free-text field is either refused or arrives intact, adding nothing."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from translator_helpers import XEN4_DEFAULTS, Attr, vm_xml, xl_json
from vm_strategies import VmCase, actual_json, expected_json, vm_cases

from services.translator.api import translate
from services.translator.errors import TranslationError


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vm_cases())
def test_every_valid_vm_parses_as_its_template_asks(case: VmCase) -> None:
    result = translate(case.xml(), XEN4_DEFAULTS)
    assert result.domain_name == f"one-{case.vm_id}"
    assert result.cpu_weight == expected_json(case)["weight"]
    assert actual_json(xl_json(result.config), case.dtype) == expected_json(case)


# ---- hostile text ----------------------------------------------------------------------------

# Everything XML can carry (it turns CR into LF and has no other control characters
# but tab and new line), weighted towards what breaks config files and shells.
_NASTY = st.sampled_from(
    [*list("\"',=[]$()#;\\ \n\t:/.-_{}`|&<>*?!~%@+"), "$(reboot)", "]]>", '\\"', "é", "☃"]
)
HOSTILE = st.one_of(
    st.lists(st.one_of(_NASTY, st.characters(blacklist_categories=("Cs", "Cc"))), max_size=24).map("".join),
    st.sampled_from(
        [
            '/boot/vmlinuz"\nbootloader = "/bin/sh',
            "br0,script=/tmp/own",
            "x']\ndisk = ['/etc/shadow,xvdz,w",
            "0.0.0.0,vncpasswd=",
            '"; rm -rf / #',
            "a\\",
            "\\n",
            "$(id)`id`",
            " padded ",
            "tab\there",
        ]
    ),
).filter(bool)  # an empty value is no value at all: the attribute is absent

_BASE: list[Attr] = [
    ("MEMORY", "256"),
    ("DISK", {"DISK_ID": "0", "TARGET": "xvda"}),
    ("NIC", {"NIC_ID": "0", "MAC": "02:00:00:00:00:01", "BRIDGE": "br0"}),
]


@dataclass(frozen=True)
class Field:
    """One free-text template field: where it goes, and where xl shows it."""

    name: str
    build: Callable[[str], tuple[list[Attr], dict[str, Any]]]  # template, vm_xml keywords
    read: Callable[[dict[str, Any]], Any]  # the value in xl's JSON (removed from it by `drop`)
    drop: Callable[[dict[str, Any]], None]
    expect: Callable[[str], Any]  # what xl should show for the value


def _os(**os: str) -> Callable[[str], tuple[list[Attr], dict[str, Any]]]:
    def build(value: str) -> tuple[list[Attr], dict[str, Any]]:
        return [*_BASE, ("OS", {k: (value if v == "?" else v) for k, v in os.items()})], {}

    return build


def _with(attr: str, fixed: dict[str, str], key: str, kernel: bool = True, **os: str) -> Callable[..., Any]:
    def build(value: str) -> tuple[list[Attr], dict[str, Any]]:
        base = [a for a in _BASE if a[0] != attr]
        os_attrs = [("OS", {"KERNEL": "/k", **os})] if kernel else ([("OS", os)] if os else [])
        return [*base, *os_attrs, (attr, {**fixed, key: value})], {}

    return build


def _b(key: str) -> tuple[Callable[[dict[str, Any]], Any], Callable[[dict[str, Any]], None]]:
    return (lambda doc: doc["b_info"].get(key)), (lambda doc: doc["b_info"].pop(key, None))


def _at(*path: str | int) -> tuple[Callable[[dict[str, Any]], Any], Callable[[dict[str, Any]], None]]:
    def read(doc: dict[str, Any]) -> Any:
        node: Any = doc
        for step in path:
            node = node[step]
        return node

    def drop(doc: dict[str, Any]) -> None:
        read_parent: Any = doc
        for step in path[:-1]:
            read_parent = read_parent[step]
        read_parent.pop(path[-1], None)

    return read, drop


def _root(value: str) -> str:
    value = value.strip()
    return f"root={value}" if value.startswith("/") or "=" in value else f"root=/dev/{value}"


def _keep(value: str) -> str:
    return value


def _strip(value: str) -> str:
    return value.strip()


FIELDS = [
    Field("OS/KERNEL", _os(KERNEL="?"), *_b("kernel"), _keep),
    Field("OS/INITRD", _os(KERNEL="/k", INITRD="?"), *_b("ramdisk"), _keep),
    Field("OS/KERNEL_CMD", _os(KERNEL="/k", KERNEL_CMD="?"), *_b("cmdline"), _keep),
    Field("OS/ROOT", _os(KERNEL="/k", ROOT="?"), *_b("cmdline"), _root),
    Field("OS/BOOTLOADER", _os(BOOTLOADER="?"), *_b("bootloader"), _keep),
    Field("NIC/BRIDGE", _with("NIC", {"NIC_ID": "0"}, "BRIDGE"), *_at("nics", 0, "bridge"), _strip),
    Field("NIC/SCRIPT", _with("NIC", {"NIC_ID": "0"}, "SCRIPT"), *_at("nics", 0, "script"), _strip),
    Field("NIC/MODEL", _with("NIC", {"NIC_ID": "0"}, "MODEL"), *_at("nics", 0, "model"), _strip),
    Field(
        "NIC/MAC", _with("NIC", {"NIC_ID": "0"}, "MAC"), *_at("nics", 0, "mac"), lambda v: v.strip().lower()
    ),
    Field("NIC/IP", _with("NIC", {"NIC_ID": "0"}, "IP"), *_at("nics", 0, "ip"), _strip),
    Field(
        "GRAPHICS/PASSWD (hvm)",
        _with("GRAPHICS", {"TYPE": "VNC"}, "PASSWD", kernel=False),
        *_at("b_info", "type.hvm", "vnc", "passwd"),
        _keep,
    ),
    Field(
        "GRAPHICS/PASSWD (pv)",
        _with("GRAPHICS", {"TYPE": "VNC"}, "PASSWD"),
        *_at("vfbs", 0, "vnc", "passwd"),
        _keep,
    ),
    Field(
        "GRAPHICS/PASSWD (pvh)",
        _with("GRAPHICS", {"TYPE": "VNC"}, "PASSWD", MACHINE="pvh"),
        *_at("vfbs", 0, "vnc", "passwd"),
        _keep,
    ),
    Field(
        "GRAPHICS/PASSWD (spice)",
        _with("GRAPHICS", {"TYPE": "SPICE", "PORT": "5999"}, "PASSWD", kernel=False),
        *_at("b_info", "type.hvm", "spice", "passwd"),
        _keep,
    ),
    Field(
        "GRAPHICS/LISTEN",
        _with("GRAPHICS", {"TYPE": "VNC"}, "LISTEN"),
        *_at("vfbs", 0, "vnc", "listen"),
        _strip,
    ),
    Field(
        "GRAPHICS/KEYMAP",
        _with("GRAPHICS", {"TYPE": "VNC"}, "KEYMAP", kernel=False),
        *_at("b_info", "type.hvm", "keymap"),
        _strip,
    ),
    Field(
        "FEATURES/DEVICE_MODEL",
        _with("FEATURES", {}, "DEVICE_MODEL", kernel=False),
        *_b("device_model"),
        _keep,
    ),
    Field(
        "HISTORY/DS_LOCATION",
        lambda value: ([*_BASE, ("OS", {"KERNEL": "/k"})], {"ds_location": value}),
        *_at("disks", 0, "pdev_path"),
        # A blank DS_LOCATION is no DS_LOCATION: oned's default applies.
        lambda v: f"{(v.strip() or '/var/lib/one//datastores').rstrip('/')}/0/42/disk.0",
    ),
]
BENIGN = {
    "NIC/MAC": "02:00:00:00:00:09",
    "NIC/IP": "10.0.0.1",
    "GRAPHICS/LISTEN": "127.0.0.1",
    "GRAPHICS/KEYMAP": "es",
    "HISTORY/DS_LOCATION": "/srv/ds",
    "OS/ROOT": "xvda1",
}


def _translate(field: Field, value: str) -> str | None:
    template, keywords = field.build(value)
    try:
        return translate(vm_xml(template, **keywords), XEN4_DEFAULTS).config
    except TranslationError as exc:
        assert exc.violations and all(path and text for path, text in exc.violations)
        return None


@functools.cache
def _benign_json(name: str) -> dict[str, Any]:
    field = next(f for f in FIELDS if f.name == name)
    config = _translate(field, BENIGN.get(name, "benign"))
    assert config is not None
    return _without(field, xl_json(config))


def _without(field: Field, doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["c_info"].pop("uuid")
    field.drop(doc)
    return doc


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIELDS), HOSTILE)
def test_hostile_text_is_refused_or_arrives_intact_and_adds_nothing(field: Field, value: str) -> None:
    config = _translate(field, value)
    if config is None:
        return  # refused, with a field path and a sentence
    doc = xl_json(config)
    context = f"{field.name} = {value!r}\n{config}"
    assert field.read(doc) == field.expect(value), context
    # Everything else is exactly what a harmless value gives: no key, device or list item added.
    assert _without(field, doc) == _benign_json(field.name), context


# Fields whose values are codes, not text: anything is refused or becomes a valid, same-shaped config.
_STRUCTURAL: list[Callable[[str], list[Attr]]] = [
    lambda v: [("MEMORY", v), ("OS", {"KERNEL": "/k"})],
    lambda v: [("MEMORY", "64"), ("VCPU", v), ("OS", {"KERNEL": "/k"})],
    lambda v: [("MEMORY", "64"), ("CPU", v), ("OS", {"KERNEL": "/k"})],
    lambda v: [("MEMORY", "64"), ("OS", {"MACHINE": v, "KERNEL": "/k"})],
    lambda v: [("MEMORY", "64"), ("OS", {"BOOT": v}), ("DISK", {"DISK_ID": "0", "TARGET": "hda"})],
    lambda v: [("MEMORY", "64"), ("OS", {"KERNEL": "/k"}), ("DISK", {"DISK_ID": "0", "TARGET": v})],
    lambda v: [
        ("MEMORY", "64"),
        ("OS", {"KERNEL": "/k"}),
        ("DISK", {"DISK_ID": "0", "TARGET": "xvda", "DRIVER": v}),
    ],
    lambda v: [
        ("MEMORY", "64"),
        ("OS", {"KERNEL": "/k"}),
        ("DISK", {"DISK_ID": "0", "TARGET": "xvda", "TYPE": v}),
    ],
    lambda v: [("MEMORY", "64"), ("OS", {"KERNEL": "/k"}), ("CONTEXT", {"DISK_ID": "0", "TARGET": v})],
    lambda v: [("MEMORY", "64"), ("GRAPHICS", {"TYPE": "VNC", "PORT": v})],
    lambda v: [("MEMORY", "64"), ("GRAPHICS", {"TYPE": v, "PORT": "5901"})],
    lambda v: [
        ("MEMORY", "64"),
        ("OS", {"KERNEL": "/k"}),
        ("RAW", {"TYPE": "xen", "DATA": f"zz_extra = {v}"}),
    ],
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(range(len(_STRUCTURAL))), st.one_of(HOSTILE, st.sampled_from(["1", "hda", "5901", "raw"]))
)
def test_hostile_codes_are_refused_or_give_a_config_xl_parses(which: int, value: str) -> None:
    try:
        result = translate(vm_xml(_STRUCTURAL[which](value)), XEN4_DEFAULTS)
    except TranslationError as exc:
        assert exc.violations
        return
    doc = xl_json(result.config)
    assert doc["c_info"]["name"] == "one-42"
    assert len(doc.get("disks", [])) <= 1 and "nics" not in doc
