"""Reads the VM XML oned writes (`<VM>` with TEMPLATE, USER_TEMPLATE, HISTORY_RECORDS)
into a typed view whose templates are `onexen.template.Template`s.

CDATA is just text to the parser. A document with a DTD is refused before
parsing: oned never writes one, and a DTD is how entity-expansion attacks get in
(no external entity is ever fetched, and undefined entities are parse errors).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import NamedTuple

from onexen.template import Template, Value, Vector
from services.translator.errors import TranslationError

__all__ = ["HistoryRecord", "VmTemplate", "read_vm_xml"]

FIELD = "vm_xml"

# What may precede the root element: blanks, the XML declaration, PIs, comments.
_PROLOG = re.compile(r"(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
# Bounded: an id is a 32-bit number in oned, and int() refuses very long digit strings.
_DIGITS = re.compile(r"\s*([0-9]{1,10})\s*\Z")


class HistoryRecord:
    """The VM's last placement: where it runs and on which system datastore.

    Each field is read from the HISTORY element when asked (a translation asks for two);
    a field given twice counts by its last occurrence.
    """

    __slots__ = ("_element",)

    def __init__(self, element: ET.Element) -> None:
        self._element = element

    def _field(self, key: str) -> str | None:
        """The text of the last `key` ("" for an empty one), None when there is none."""
        found = self._element.findall(key)
        return (found[-1].text or "") if found else None

    @property
    def seq(self) -> int | None:
        match = _DIGITS.match(self._field("SEQ") or "")
        return int(match.group(1)) if match else None

    @property
    def hostname(self) -> str:
        return (self._field("HOSTNAME") or "").strip()

    @property
    def ds_id(self) -> str | None:
        """Kept as text: the policy says what is wrong with it."""
        return self._field("DS_ID")

    @property
    def ds_location(self) -> str | None:
        """4.x only; later versions leave it to the driver."""
        return self._field("DS_LOCATION")

    @property
    def vm_mad(self) -> str:
        # 4.x names it VMMMAD.
        return (self._field("VM_MAD") or self._field("VMMMAD") or "").strip()

    def __repr__(self) -> str:
        return (
            f"HistoryRecord(seq={self.seq!r}, hostname={self.hostname!r}, ds_id={self.ds_id!r}, "
            f"ds_location={self.ds_location!r}, vm_mad={self.vm_mad!r})"
        )


class VmTemplate(NamedTuple):
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


class _ElementVector(Vector):
    """A vector read from one XML element, whose dict is only built when something other
    than `get_exact` needs it: `get_exact` is the element's own `findtext`, one call into C
    that gives what the dict would hold (the first sub-element of that name wins, an empty
    one is ""). The translation reads a few keys of each vector and nothing else."""

    __slots__ = ("_element",)
    _element: ET.Element

    def __getattr__(self, name: str) -> dict[str, str]:
        # Called only for an attribute not set: `_data`, the first time it is used.
        if name != "_data":
            raise AttributeError(name)
        data = _vector_data(self._element)
        self._data = data
        return data


def _vector_data(element: ET.Element) -> dict[str, str]:
    data = {grand.tag: grand.text or "" for grand in element}
    if len(data) != len(element):
        # A repeated key: the first one wins, as in oned (rare, so checked after).
        data = {}
        for grand in element:
            data.setdefault(grand.tag, grand.text or "")
    return data


_new_vector = object.__new__


def _template(element: ET.Element | None) -> Template:
    # XML names are case-sensitive, and oned writes them in upper case: used as they are.
    # The lookups are built in the same pass (Template.of_index), as the template is read.
    if element is None:
        return Template()
    items: list[tuple[str, Value]] = []
    append = items.append
    new_vector = _new_vector
    index: dict[str, list[Value]] = {}
    single: dict[str, str] = {}
    vectors: dict[str, Vector] = {}
    value: Value
    for child in element:
        tag = child.tag
        if len(child):
            value = new_vector(_ElementVector)
            value._element = child
            value.get_exact = child.findtext
            if tag not in vectors:
                vectors[tag] = value
        else:
            value = child.text or ""
            if tag not in single:
                single[tag] = value
        append((tag, value))
        same = index.get(tag)
        if same is None:
            index[tag] = [value]
        else:
            same.append(value)
    return Template.of_index(tuple(items), index, single, vectors)


def _history(root: ET.Element) -> HistoryRecord | None:
    # find() with a plain tag stays in C; a path would go through ElementPath.
    records = root.find("HISTORY_RECORDS")
    if records is None or not len(records):
        return None
    last: ET.Element | None = records[-1]
    if last is not None and last.tag != "HISTORY":
        last = next(reversed(records.findall("HISTORY")), None)
    return None if last is None else HistoryRecord(last)


def read_vm_xml(text: str) -> VmTemplate:
    """The VM in `text`; raises `TranslationError` (field `vm_xml`, or `ID`) when it is not one."""
    if not text or text.isspace():
        raise TranslationError.for_field(FIELD, "is empty: pass the VM XML oned writes (<VM>...</VM>)")
    if not text.startswith("<VM>"):  # oned's own start: no prolog to look at
        prolog = _PROLOG.match(text)
        if prolog is not None and text.startswith("<!DOCTYPE", prolog.end()):
            raise TranslationError.for_field(
                FIELD, "has a DOCTYPE: oned's VM XML has none, and DTDs are refused for safety"
            )
    try:
        # ET.fromstring without its Python wrapper. Bytes parse twice as fast as str; a
        # document declaring its own encoding is given as str, so that declaration cannot
        # be contradicted.
        parser = ET.XMLParser()
        parser.feed(text if text.startswith("<?xml") else text.encode())
        root = parser.close()
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
    template = root.find("TEMPLATE")
    if template is None:
        raise TranslationError.for_field("TEMPLATE", "the VM has no TEMPLATE: is this oned's VM XML?")
    # Positional (faster than keywords): id, name, template, history, user_template_element.
    return VmTemplate(
        int(id_match.group(1)),
        _text(root.find("NAME")) or "",
        _template(template),
        _history(root),
        root.find("USER_TEMPLATE"),
    )
