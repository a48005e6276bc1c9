"""TranslatorService over gRPC: a translation, an import, and every refusal the issue lists
arriving as INVALID_ARGUMENT with a BadRequest field violation — also as grpcurl shows it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from test_import import DOMU1
from translator_helpers import XEN4_DEFAULTS, Attr, vm_xml

from onexen.runtime.config import ServiceConfig
from onexen.runtime.server import RunningServer, started_server
from onexen.v1 import translator_pb2, translator_pb2_grpc
from services.translator.servicer import add_to_server

KERNEL = ("OS", {"KERNEL": "/boot/vmlinuz"})
MEMORY = ("MEMORY", "512")


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with started_server(
        ServiceConfig(service="translator", port=0, grace_seconds=0.1), add_to_server
    ) as s:
        yield s


@pytest.fixture
async def stub(server: RunningServer) -> AsyncIterator[translator_pb2_grpc.TranslatorServiceStub]:
    async with grpc.aio.insecure_channel(server.target) as channel:
        yield translator_pb2_grpc.TranslatorServiceStub(channel)


def disk(disk_id: int, target: str) -> Attr:
    return ("DISK", {"DISK_ID": str(disk_id), "TARGET": target})


# Each way a template can be wrong that the issue names, the field path, and a word of the advice.
WRONG: dict[str, tuple[str, str, str]] = {
    "no MEMORY": (vm_xml([KERNEL]), "TEMPLATE/MEMORY", "MEMORY"),
    "DISK without TARGET": (
        vm_xml([KERNEL, MEMORY, ("DISK", {"DISK_ID": "0"})]),
        "TEMPLATE/DISK[1]/TARGET",
        "",
    ),
    "two disks, one target": (
        vm_xml([KERNEL, MEMORY, disk(0, "xvda"), disk(1, "xvda")]),
        "TEMPLATE/DISK[2]/TARGET",
        "xvda",
    ),
    "HVM with five IDE disks": (
        vm_xml([MEMORY, *(disk(i, t) for i, t in enumerate(["hda", "hdb", "hdc", "hdd", "hde"]))]),
        "TEMPLATE/DISK[5]/TARGET",
        "xvd",
    ),
    "VNC port below 5900": (
        vm_xml([KERNEL, MEMORY, ("GRAPHICS", {"TYPE": "VNC", "PORT": "5800"})]),
        "TEMPLATE/GRAPHICS/PORT",
        "5900",
    ),
    "unknown BOOT item": (
        vm_xml([MEMORY, disk(0, "hda"), ("OS", {"BOOT": "floppy9"})]),
        "TEMPLATE/OS/BOOT",
        "",
    ),
    "credit weight out of range": (vm_xml([KERNEL, MEMORY, ("CPU", "300")]), "TEMPLATE/CPU", "65535"),
    "not a VM": ("<HOST><ID>1</ID></HOST>", "vm_xml", "VM"),
}


def violations_of(error: grpc.RpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    found = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found += [(v.field, v.description) for v in bad.field_violations]
    return found


async def test_a_pv_template_becomes_an_xl_config(stub: translator_pb2_grpc.TranslatorServiceStub) -> None:
    reply = await stub.Translate(
        translator_pb2.TranslateRequest(
            vm_xml=vm_xml([KERNEL, MEMORY, disk(0, "xvda")]), defaults=XEN4_DEFAULTS
        ),
        timeout=5,
    )
    assert reply.domain_name == "one-42"
    assert reply.cpu_weight == 256
    assert 'type = "pv"' in reply.config and 'name = "one-42"' in reply.config


@pytest.mark.parametrize("case", sorted(WRONG))
async def test_each_wrong_template_gets_its_field_violation(
    stub: translator_pb2_grpc.TranslatorServiceStub, case: str
) -> None:
    xml, field, word = WRONG[case]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Translate(translator_pb2.TranslateRequest(vm_xml=xml, defaults=XEN4_DEFAULTS), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = violations_of(caught.value)
    assert field in [f for f, _ in violations], violations
    description = dict(violations)[field]
    assert word in description and len(description) > 20, description


async def test_import_of_a_domain_gives_a_template(stub: translator_pb2_grpc.TranslatorServiceStub) -> None:
    reply = await stub.Import(translator_pb2.ImportRequest(domain_json=json.dumps([DOMU1])), timeout=5)
    assert reply.deploy_id == "domu1"
    assert 'DEPLOY_ID = "domu1"' in reply.template and 'MEMORY = "128"' in reply.template


async def test_import_of_domain_0_is_refused(stub: translator_pb2_grpc.TranslatorServiceStub) -> None:
    dom0 = {"domid": 0, "config": {**DOMU1["config"], "c_info": {"type": "pv", "name": "Domain-0"}}}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Import(translator_pb2.ImportRequest(domain_json=json.dumps(dom0)), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def grpcurl(target: str, method: str, request: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).parent / "grpcurl"
    return subprocess.run(
        [str(binary), "-plaintext", "-format-error", "-d", json.dumps(request), target, method],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.slow
async def test_refusals_read_well_through_grpcurl(server: RunningServer) -> None:
    for case, (xml, field, _) in WRONG.items():
        # In a thread: the server under test runs on this test's event loop.
        result = await asyncio.to_thread(
            grpcurl,
            server.target,
            "onexen.v1.TranslatorService/Translate",
            {"vm_xml": xml, "defaults": XEN4_DEFAULTS},
        )
        assert result.returncode != 0, (case, result)
        error = json.loads(result.stderr[result.stderr.index("{") :])
        assert error["code"] == 3, (case, error)  # INVALID_ARGUMENT
        bad = next(d for d in error["details"] if d["@type"].endswith("google.rpc.BadRequest"))
        # grpcurl 1.8 prints the proto field names (field_violations); newer ones camelCase.
        listed = bad.get("field_violations") or bad["fieldViolations"]
        assert field in [v["field"] for v in listed], (case, bad)
