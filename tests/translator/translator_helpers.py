"""Builders for oned's VM XML and the real-parser oracle shared by the translator tests."""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

import pytest

# vmm_exec_xen.conf as OpenNebula's Xen add-on ships it (the xen4 defaults).
XEN4_DEFAULTS = 'CREDIT = 256\nDISK = [ driver = "raw:" ]\n'
DS = "/var/lib/one//datastores"

Attr = tuple[str, "str | Mapping[str, str]"]


def cdata(value: str) -> str:
    # "]]>" cannot appear inside one CDATA section: split it across two, as oned does.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def vm_xml(
    template: Sequence[Attr],
    *,
    vm_id: int | str = 42,
    ds_id: int | str | None = 0,
    ds_location: str | None = DS,
    history: bool = True,
    user_template: Sequence[Attr] = (),
    name: str = "vm",
) -> str:
    """A `<VM>` document shaped as oned writes it: CDATA values, the last history record."""

    def section(tag: str, attrs: Sequence[Attr]) -> str:
        body = []
        for key, value in attrs:
            if isinstance(value, str):
                body.append(f"<{key}>{cdata(value)}</{key}>")
            else:
                inner = "".join(f"<{k}>{cdata(v)}</{k}>" for k, v in value.items())
                body.append(f"<{key}>{inner}</{key}>")
        return f"<{tag}>{''.join(body)}</{tag}>"

    records = ""
    if history:
        fields = "<SEQ>0</SEQ><HOSTNAME>xen1</HOSTNAME><HID>1</HID><VM_MAD>xen</VM_MAD>"
        if ds_location is not None:
            fields += f"<DS_LOCATION>{cdata(ds_location)}</DS_LOCATION>"
        if ds_id is not None:
            fields += f"<DS_ID>{escape(str(ds_id))}</DS_ID>"
        records = f"<HISTORY_RECORDS><HISTORY>{fields}</HISTORY></HISTORY_RECORDS>"
    return (
        f"<VM><ID>{vm_id}</ID><UID>0</UID><NAME>{escape(name)}</NAME><STATE>3</STATE>"
        f"{section('TEMPLATE', template)}{section('USER_TEMPLATE', user_template)}{records}</VM>"
    )


@functools.cache
def xlparse() -> Any:
    """The real `xl -N create` oracle (simxen.xlparse); the test is skipped without it."""
    try:
        module = importlib.import_module("simxen.xlparse")
    except ImportError:
        pytest.skip("simxen.xlparse (the real xl -N create under its shim) is not importable")
    if not module.available():
        pytest.skip("the real xl parser cannot run here: install xen-utils-4.17 and gcc (make install)")
    return module


# Lines xl prints on stderr for a config it accepts but misreads (bad MAC, bad number...).
_XL_COMPLAINT = re.compile(r"warning|invalid|unrecognized|unknown|error|ignoring", re.IGNORECASE)


def xl_json(config: str) -> dict[str, Any]:
    """What libxl understood of `config`; fails the test if xl refused it or complained."""
    result = xlparse().dry_run(config)
    assert result.returncode == 0, f"xl refused the config:\n{result.stderr}\n---\n{config}"
    complaints = [line for line in result.stderr.splitlines() if _XL_COMPLAINT.search(line)]
    assert not complaints, f"xl complained: {complaints}\n---\n{config}"
    assert isinstance(result.json, dict)
    return result.json


def xl_returncode(config: str) -> int:
    return int(xlparse().dry_run(config).returncode)


def b_info(doc: Mapping[str, Any]) -> dict[str, Any]:
    value = doc.get("b_info", {})
    assert isinstance(value, dict)
    return value


def hvm_info(doc: Mapping[str, Any]) -> dict[str, Any]:
    value = b_info(doc).get("type.hvm", {})
    assert isinstance(value, dict)
    return value
