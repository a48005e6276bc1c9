"""The translator's fast paths give what the plain ones would: vectors read lazily from the
XML, the history record read on demand, positional construction, and the caches (keyed only
on values that repeat from VM to VM, each refusal still naming the field it comes from)."""

from __future__ import annotations

import dataclasses
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from translator_helpers import XEN4_DEFAULTS, Attr, vm_xml

from onexen.template import Template, Value, Vector
from services.translator import xlconfig
from services.translator.api import translate
from services.translator.errors import TranslationError
from services.translator.vm_xml import read_vm_xml

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KERNEL = ("OS", {"KERNEL": "/boot/vmlinuz"})


def refused(template: Sequence[Attr], defaults: str = XEN4_DEFAULTS, **xml: Any) -> list[tuple[str, str]]:
    with pytest.raises(TranslationError) as caught:
        translate(vm_xml(template, **xml), defaults)
    return caught.value.violations


# ---- positional construction ----------------------------------------------------------------


def test_the_specs_keep_the_field_order_the_policy_builds_them_in() -> None:
    # policy.py, disks.py, nics.py and graphics.py pass these positionally.
    def names(cls: Any) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    assert names(xlconfig.DiskSpec)[:6] == ["target", "vdev", "format", "access", "devtype", "backendtype"]
    assert names(xlconfig.VifSpec) == ["mac", "bridge", "ip", "model", "type", "script"]
    assert names(xlconfig.VncSpec) == ["listen", "display", "passwd", "keymap"]
    assert names(xlconfig.DomainConfig) == [
        "name", "type", "memory", "maxmem", "vcpus", "maxvcpus", "cpu_weight", "kernel", "ramdisk",
        "cmdline", "bootloader", "boot", "disks", "vifs", "vnc", "spice", "usb_tablet", "pae", "acpi",
        "apic", "localtime", "device_model_override", "device_model_version", "raw",
    ]  # fmt: skip


# ---- the template read from the XML ---------------------------------------------------------


def _plain_template(element: ET.Element) -> Template:
    """The template as a plain walk reads it: every vector a dict, the first sub-key wins."""
    items: list[tuple[str, Value]] = []
    for child in element:
        if len(child):
            data: dict[str, str] = {}
            for grand in child:
                data.setdefault(grand.tag, grand.text or "")
            items.append((child.tag, Vector.of_upper(data)))
        else:
            items.append((child.tag, child.text or ""))
    return Template.of_upper(tuple(items))


_TAGS = st.sampled_from(["DISK", "NIC", "OS", "MEMORY", "X", "A_B"])
_SUBS = st.sampled_from(["TARGET", "DISK_ID", "TYPE", "A", "B"])
_TEXT = st.sampled_from(["", " ", "xvda", "0", "a&amp;b", "<![CDATA[c]]>", "<![CDATA[]]>"])


@st.composite
def _element(draw: st.DrawFn, tags: st.SearchStrategy[str], depth: int) -> str:
    tag = draw(tags)
    kind = draw(st.integers(0, 2 if depth else 1))
    if kind == 0:
        return f"<{tag}/>"
    if kind == 1:
        return f"<{tag}>{draw(_TEXT)}</{tag}>"
    children = draw(st.lists(_element(_SUBS, depth - 1), min_size=1, max_size=5))
    blank = draw(st.sampled_from(["", "\n", "text"]))
    return f"<{tag}>{blank}{blank.join(children)}</{tag}>"


@FAST
@given(st.lists(_element(_TAGS, 2), max_size=8))
def test_the_template_reads_as_a_plain_walk_of_the_xml_would(elements: list[str]) -> None:
    document = f"<VM><ID>1</ID><TEMPLATE>{''.join(elements)}</TEMPLATE></VM>"
    template = read_vm_xml(document).template
    plain = _plain_template(ET.fromstring(document).find("TEMPLATE"))  # type: ignore[arg-type]
    for key in ("DISK", "NIC", "OS", "MEMORY", "X", "A_B", "NONE"):
        assert template.get_exact(key) == plain.get_exact(key) == plain.get(key)
        assert template.vector_exact(key) == plain.vector_exact(key)
        assert template.vectors(key) == plain.vectors(key)
        assert template.get_all(key) == plain.get_all(key)
        assert (key in template) == (key in plain)
        for lazy, vector in zip(template.vectors(key), plain.vectors(key), strict=True):
            for sub in ("TARGET", "DISK_ID", "TYPE", "A", "B", "NONE"):
                assert lazy.get_exact(sub) == vector.get_exact(sub)
    assert template == plain and template.items() == plain.items() and template.keys() == plain.keys()
    for lazy, vector in zip(template.vectors("DISK"), plain.vectors("DISK"), strict=True):
        assert list(lazy) == list(vector) and len(lazy) == len(vector) and dict(lazy) == dict(vector)
        assert repr(lazy) == repr(vector) and hash(lazy) == hash(vector)


def test_a_history_field_given_twice_counts_by_its_last_occurrence() -> None:
    history = (
        "<HISTORY_RECORDS><HISTORY><DS_ID>1</DS_ID></HISTORY><HISTORY><SEQ>3</SEQ><SEQ> 4 </SEQ>"
        "<HOSTNAME> h </HOSTNAME><DS_ID>5</DS_ID><DS_ID>6</DS_ID><DS_LOCATION/><VMMMAD>xen</VMMMAD>"
        "</HISTORY></HISTORY_RECORDS>"
    )
    record = read_vm_xml(f"<VM><ID>1</ID><TEMPLATE/>{history}</VM>").history
    assert record is not None
    assert (record.seq, record.hostname, record.ds_id, record.ds_location, record.vm_mad) == (
        4,
        "h",
        "6",
        "",
        "xen",
    )
    bare = read_vm_xml("<VM><ID>1</ID><TEMPLATE/><HISTORY_RECORDS><HISTORY/></HISTORY_RECORDS></VM>").history
    assert bare is not None
    assert (bare.seq, bare.hostname, bare.ds_id, bare.ds_location, bare.vm_mad) == (None, "", None, None, "")


# ---- cached rules, refusals on their own paths ----------------------------------------------


def test_one_bad_disk_at_two_places_is_refused_at_each() -> None:
    bad = {"DISK_ID": "x", "TARGET": "vda", "DRIVER": "nope"}
    violations = refused([("MEMORY", "1"), KERNEL, ("DISK", bad), ("DISK", bad)])
    fields = [field for field, _ in violations]
    assert fields == [
        "TEMPLATE/DISK[1]/DISK_ID",
        "TEMPLATE/DISK[1]/TARGET",
        "TEMPLATE/DISK[1]/DRIVER",
        "TEMPLATE/DISK[2]/DISK_ID",
        "TEMPLATE/DISK[2]/TARGET",
        "TEMPLATE/DISK[2]/DRIVER",
    ]


def test_one_bad_nic_at_two_places_is_refused_at_each() -> None:
    bad = {"MAC": "02:00:00:00:00:zz", "BRIDGE": "a,b", "IP": "10.0.0.256", "MODEL": "e 1000"}
    fields = [field for field, _ in refused([("MEMORY", "1"), KERNEL, ("NIC", bad), ("NIC", bad)])]
    assert fields == [f"TEMPLATE/NIC[{n}]/{key}" for n in (1, 2) for key in ("MODEL", "MAC", "BRIDGE", "IP")]


def test_a_cached_os_or_sizing_refusal_names_where_its_value_came_from() -> None:
    template = [("MEMORY", "64"), ("VCPU", "0"), ("OS", {"KERNEL": "/k", "ROOT": "sda 1"})]
    assert [field for field, _ in refused(template)] == ["TEMPLATE/OS/ROOT", "TEMPLATE/VCPU"]
    # The same values again, now from the defaults: the rules' answers are cached, not their paths.
    defaults = XEN4_DEFAULTS + 'VCPU = 0\nOS = [ KERNEL = "/k", ROOT = "sda 1" ]\n'
    assert [field for field, _ in refused([("MEMORY", "64")], defaults)] == [
        "defaults/OS/ROOT",
        "defaults/VCPU",
    ]


def _translator_caches() -> dict[str, Any]:
    """Every functools cache of the translator's and the template model's modules."""
    return {
        f"{name}.{attr}": value
        for name, module in sorted(sys.modules.items())
        if name.startswith(("services.translator.", "onexen.template"))
        for attr, value in vars(module).items()
        if callable(getattr(value, "cache_info", None))
    }


def test_no_cache_grows_with_what_is_each_vm_own() -> None:
    # Ids, MACs, IPs, VNC ports and names are each VM's own: caching them would fill the
    # caches with entries never used again (and flatter a benchmark that repeats one VM).
    def vm(number: int) -> str:
        template: list[Attr] = [
            ("MEMORY", "512"),
            ("CPU", "0.5"),
            ("VCPU", "2"),
            ("OS", {"KERNEL": "/k", "ROOT": "xvda1", "KERNEL_CMD": "ro"}),
            ("DISK", {"DISK_ID": "0", "TARGET": "xvda", "DRIVER": "raw"}),
            ("CONTEXT", {"DISK_ID": "1", "TARGET": "xvdb", "ETH0_IP": f"10.1.0.{number}"}),
            ("NIC", {"MAC": f"02:00:0a:01:00:{number:02x}", "IP": f"10.1.0.{number}", "BRIDGE": "br0"}),
            (
                "GRAPHICS",
                {"TYPE": "VNC", "LISTEN": "0.0.0.0", "PORT": str(5900 + number), "PASSWD": f"p{number}"},
            ),
        ]
        return vm_xml(template, vm_id=number, name=f"vm-{number}")

    translate(vm(1), XEN4_DEFAULTS)
    caches = _translator_caches()
    assert caches, "no cache found: the test looks in the wrong place"
    before = {name: cache.cache_info().currsize for name, cache in caches.items()}
    for number in range(2, 40):
        assert translate(vm(number), XEN4_DEFAULTS).domain_name == f"one-{number}"
    after = {name: cache.cache_info().currsize for name, cache in caches.items()}
    assert after == before
