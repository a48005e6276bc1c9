"""Reads the VM XML oned writes (`<VM>` with TEMPLATE, USER_TEMPLATE, HISTORY_RECORDS)
into a typed view whose templates are `onexen.template.Template`s.

CDATA is just text to the parser. A document with a DTD is refused before
parsing: oned never writes one, and a DTD is how entity-expansion attacks get in
(no external entity is ever fetched, and undefined entities are parse errors).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import NamedTuple

from onexen.template import Template, Value, Vector
from services.translator.errors import TranslationError

__all__ = ["HistoryRecord", "VmTemplate", "read_vm_xml"]

FIELD = "vm_xml"

# What may precede the root element: blanks, the XML declaration, PIs, comments.
_PROLOG = re.compile(r"(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
# Bounded: an id is a 32-bit number in oned, and int() refuses very long digit strings.
_DIGITS = re.compile(r"\s*([0-9]{1,10})\s*\Z")


class HistoryRecord(NamedTuple):
    """The VM's last placement: where it runs and on which system datastore."""

    seq: int | None
    hostname: str
    ds_id: str | None  # kept as text: the policy says what is wrong with it
    ds_location: str | None  # 4.x only; later versions leave it to the driver
    vm_mad: str


@dataclass(frozen=True, slots=True)
class VmTemplate:
    id: int
    name: str
    template: Template
    history: HistoryRecord | None
    user_template_element: ET.Element | None = None

    @property
    def user_template(self) -> Template:
        """USER_TEMPLATE, read on demand: the translation does not use it."""
        return _template(self.user_template_element)


def _text(element: ET.Element | None) -> str | None:
    if element is None:
        return None
    return element.text or ""


def _template(element: ET.Element | None) -> Template:
    # XML names are case-sensitive, and oned writes them in upper case: used as they are.
    if element is None:
        return Template()
    items: list[tuple[str, Value]] = []
    append = items.append
    for child in element:
        if len(child):
            data = {grand.tag: grand.text or "" for grand in child}
            if len(data) != len(child):
                # A repeated key: the first one wins, as in oned (rare, so checked after).
                data = {}
                for grand in child:
                    data.setdefault(grand.tag, grand.text or "")
            append((child.tag, Vector.of_upper(data)))
        else:
            append((child.tag, child.text or ""))
    return Template.of_upper(tuple(items))


def _history(root: ET.Element) -> HistoryRecord | None:
    # find() with a plain tag stays in C; a path would go through ElementPath.
    records = root.find("HISTORY_RECORDS")
    last = None if records is None else next(reversed(records.findall("HISTORY")), None)
    if last is None:
        return None
    fields = {child.tag: child.text or "" for child in last}
    seq = _DIGITS.match(fields.get("SEQ", ""))
    return HistoryRecord(
        seq=int(seq.group(1)) if seq else None,
        hostname=fields.get("HOSTNAME", "").strip(),
        ds_id=fields.get("DS_ID"),
        ds_location=fields.get("DS_LOCATION"),
        # 4.x names it VMMMAD.
        vm_mad=(fields.get("VM_MAD") or fields.get("VMMMAD") or "").strip(),
    )


def read_vm_xml(text: str) -> VmTemplate:
    """The VM in `text`; raises `TranslationError` (field `vm_xml`, or `ID`) when it is not one."""
    if not text or text.isspace():
        raise TranslationError.for_field(FIELD, "is empty: pass the VM XML oned writes (<VM>...</VM>)")
    prolog = _PROLOG.match(text)
    if prolog is not None and text.startswith("<!DOCTYPE", prolog.end()):
        raise TranslationError.for_field(
            FIELD, "has a DOCTYPE: oned's VM XML has none, and DTDs are refused for safety"
        )
    try:
        # Bytes parse twice as fast as str; a document declaring its own encoding
        # is given as str, so that declaration cannot be contradicted.
        root = ET.fromstring(text if text.startswith("<?xml") else text.encode())
    except ET.ParseError as exc:
        raise TranslationError.for_field(FIELD, f"is not well-formed XML: {exc}") from None
    inner = root.find("VM") if root.tag == "VMM_DRIVER_ACTION_DATA" else None
    if inner is not None:
        # The whole driver message was passed; the VM is inside it.
        root = inner
    if root.tag != "VM":
        raise TranslationError.for_field(
            FIELD, f"is a <{root.tag}> document, not a VM: pass the <VM> XML oned writes for the VM"
        )
    id_match = _DIGITS.match(_text(root.find("ID")) or "")
    if id_match is None:
        raise TranslationError.for_field("ID", "the VM has no numeric ID: is this oned's VM XML?")
    if root.find("TEMPLATE") is None:
        raise TranslationError.for_field("TEMPLATE", "the VM has no TEMPLATE: is this oned's VM XML?")
    return VmTemplate(
        id=int(id_match.group(1)),
        name=_text(root.find("NAME")) or "",
        template=_template(root.find("TEMPLATE")),
        history=_history(root),
        user_template_element=root.find("USER_TEMPLATE"),
    )
