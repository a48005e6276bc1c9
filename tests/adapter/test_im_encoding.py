"""monitord's line protocol and the message encodings of spec §4.5.3, one example each."""

from __future__ import annotations

import base64
import zlib

import pytest

from adapter.im import encoding, protocol
from adapter.im.protocol import Control, Malformed, Message
from adapter.scripted import (
    decode_monitor,
    host_action,
    keys,
    monitor_configuration,
    parse_template,
    vm_entries,
)
from onexen.v1 import common_pb2, monitor_pb2

AT = 1_700_000_123.75


def event(**payload: object) -> monitor_pb2.MonitorEvent:
    ev = monitor_pb2.MonitorEvent(host_id=3, **payload)  # type: ignore[arg-type]
    ev.timestamp.seconds, ev.timestamp.nanos = 1_700_000_123, 750_000_000
    return ev


def only(ev: monitor_pb2.MonitorEvent) -> Message:
    found = encoding.messages(ev)
    assert len(found) == 1
    return found[0]


# ---------------------------------------------------------------------------- lines


def test_payloads_are_base64_of_zlib_and_lines_parse_back() -> None:
    line = protocol.message_line(Message("MONITOR_HOST", "SUCCESS", 3, 17, "USEDCPU=5\n"))
    kind, status, oid, ts, payload = line.split(" ")
    assert (kind, status, oid, ts) == ("MONITOR_HOST", "SUCCESS", "3", "17")
    assert zlib.decompress(base64.b64decode(payload)) == b"USEDCPU=5\n"
    assert protocol.parse_line(line) == Message("MONITOR_HOST", "SUCCESS", 3, 17, "USEDCPU=5\n")
    # Plain base64 (no zlib) is read too; "-" and no payload are empty.
    assert protocol.decode_payload(base64.b64encode(b"abc").decode()) == "abc"
    assert protocol.parse_line("STOP_MONITOR - 4 0") == Message("STOP_MONITOR", "-", 4, 0, "")
    assert protocol.parse_line("INIT") == Control("INIT")
    bad = protocol.parse_line("START_MONITOR - 4 0 !!!")
    assert isinstance(bad, Malformed) and bad.oid == 4
    assert isinstance(protocol.parse_line("START_MONITOR - x 0 AA"), Malformed)


def test_start_monitor_payload_gives_the_host_and_monitord_settings() -> None:
    config = monitor_configuration({"STATE_VM": 2, "MONITOR_VM": 9}, port=5000, pubkey="")
    start = protocol.read_action(host_action(7, "xen1", config), 7)
    assert (start.host_id, start.host_name, start.im_mad) == (7, "xen1", "xen")
    assert start.periods == {
        "beacon_host_seconds": 30,
        "system_host_seconds": 600,
        "monitor_host_seconds": 120,
        "state_vm_seconds": 2,
        "monitor_vm_seconds": 9,
        "sync_state_vm_seconds": 180,
    }
    assert start.network.port == 5000 and start.network.monitor_address == "auto"
    assert start.configuration.startswith("<MONITOR_CONFIGURATION>")
    with pytest.raises(protocol.ActionError, match="no <HOST>"):
        protocol.read_action("<MONITOR_DRIVER_ACTION/>", 1)
    with pytest.raises(protocol.ActionError, match="DTD"):
        protocol.read_action('<!DOCTYPE a [<!ENTITY b "c">]><a/>', 1)


# ---------------------------------------------------------------------------- one example of each


def test_system_host() -> None:
    system = monitor_pb2.SystemHost(
        hypervisor="xen",
        total_cpu=800,
        cpu_speed_mhz=2095.078,
        total_memory_kib=133895168,
        arch="x86_64",
        model_name='Intel(R) Xeon(R) "Silver" 4110',
        hostname="xen1",
        xen_version="4.17.5",
        datastore_location=common_pb2.DatastoreUsage(
            path="/var/lib/one/datastores", datastore_id=-1, total_mib=100, used_mib=40, free_mib=60
        ),
        datastores=[
            common_pb2.DatastoreUsage(
                path="/var/lib/one/datastores/0", datastore_id=0, total_mib=100, used_mib=40, free_mib=60
            )
        ],
        wild_vms=[
            monitor_pb2.WildVm(deploy_id="web", vm_name="web", import_template='NAME = "web"\nCPU = 1\n'),
            monitor_pb2.WildVm(deploy_id="new", vm_name="new"),
        ],
    )
    message = only(event(system=system))
    web64 = base64.b64encode(b'NAME = "web"\nCPU = 1\n').decode()
    assert (message.type, message.status, message.oid, message.timestamp) == (
        "SYSTEM_HOST",
        "SUCCESS",
        3,
        1700000123,
    )
    assert message.data == (
        'HYPERVISOR=xen\nTOTALCPU=800\nCPUSPEED=2095\nTOTALMEMORY=133895168\nARCH="x86_64"\n'
        'MODELNAME="Intel(R) Xeon(R) \\"Silver\\" 4110"\nHOSTNAME="xen1"\nXEN_VERSION="4.17.5"\n'
        "DS_LOCATION_USED_MB=40\nDS_LOCATION_TOTAL_MB=100\nDS_LOCATION_FREE_MB=60\n"
        'DS = [ ID="0", USED_MB="40", TOTAL_MB="100", FREE_MB="60" ]\n'
        f'VM = [ ID="-1", DEPLOY_ID="web", VM_NAME="web", IMPORT_TEMPLATE="{web64}" ]\n'
        'VM = [ ID="-1", DEPLOY_ID="new", VM_NAME="new" ]\n'
    )
    assert keys(message.data)["MODELNAME"] == 'Intel(R) Xeon(R) "Silver" 4110'
    wild = list(vm_entries(message.data))
    assert base64.b64decode(wild[0]["IMPORT_TEMPLATE"]).decode() == 'NAME = "web"\nCPU = 1\n'


def test_monitor_host() -> None:
    usage = monitor_pb2.HostUsage(
        used_cpu=5, free_cpu=795, used_memory_kib=1000, free_memory_kib=2000, net_rx_bytes=10, net_tx_bytes=20
    )
    message = only(event(usage=usage))
    assert message.type == "MONITOR_HOST"
    assert message.data == (
        "HYPERVISOR=xen\nUSEDMEMORY=1000\nFREEMEMORY=2000\nFREECPU=795\nUSEDCPU=5\nNETRX=10\nNETTX=20\n"
    )


def test_monitor_vm() -> None:
    vm = monitor_pb2.VmMonitoring(
        vm_id=42,
        deploy_id="one-42",
        cpu=12.345,
        memory_kib=131072,
        net_rx_bytes=1,
        net_tx_bytes=2,
        disk_read_bytes=3,
        disk_write_bytes=4,
        disk_read_iops=5,
        disk_write_iops=6,
        disk_sizes=[monitor_pb2.DiskSize(disk_id=0, size_mib=10)],
    )
    message = only(event(vm_monitoring=monitor_pb2.VmMonitoringReport(vms=[vm])))
    figures = (
        'CPU="12.35"\nMEMORY="131072"\nNETRX="1"\nNETTX="2"\nDISKRDBYTES="3"\nDISKWRBYTES="4"\n'
        'DISKRDIOPS="5"\nDISKWRIOPS="6"\nDISK_SIZE = [ ID="0", SIZE="10" ]\n'
    )
    encoded = base64.b64encode(figures.encode()).decode()
    assert message.data == f'VM = [ ID="42", DEPLOY_ID="one-42", MONITOR="{encoded}" ]\n'
    (entry,) = vm_entries(message.data)
    assert decode_monitor(entry)["CPU"] == "12.35"


def test_state_vm_changes_and_sync() -> None:
    running = monitor_pb2.VmStateChange(vm_id=42, deploy_id="one-42", state=common_pb2.VM_STATE_RUNNING)
    paused = monitor_pb2.VmStateChange(vm_id=-1, deploy_id="web", state=common_pb2.VM_STATE_SUSPENDED)
    change = monitor_pb2.VmStateReport(vms=[running, paused], missing_state=common_pb2.VM_STATE_POWEROFF)
    assert only(event(vm_state=change)).data == (
        'VM = [ ID="42", DEPLOY_ID="one-42", STATE="RUNNING" ]\n'
        'VM = [ ID="-1", DEPLOY_ID="web", STATE="SUSPENDED" ]\n'
    )
    sync = monitor_pb2.VmStateReport(sync=True, missing_state=common_pb2.VM_STATE_POWEROFF, vms=[running])
    assert only(event(vm_state=sync)).data == (
        'SYNC_STATE=yes\nMISSING_STATE=POWEROFF\nVM = [ ID="42", DEPLOY_ID="one-42", STATE="RUNNING" ]\n'
    )


def test_unknown_states_never_reach_monitord() -> None:
    unknown = monitor_pb2.VmStateChange(vm_id=42, deploy_id="one-42", state=common_pb2.VM_STATE_UNKNOWN)
    # The monitor's "host unreachable" reports: a change to UNKNOWN, and a sync that knows nothing.
    assert encoding.messages(event(vm_state=monitor_pb2.VmStateReport(vms=[unknown]))) == []
    nothing_known = monitor_pb2.VmStateReport(
        sync=True, missing_state=common_pb2.VM_STATE_UNKNOWN, vms=[unknown]
    )
    assert encoding.messages(event(vm_state=nothing_known)) == []


def test_beacon_and_host_error() -> None:
    assert only(event(beacon=monitor_pb2.Beacon())) == Message(
        "BEACON_HOST", "SUCCESS", 3, 1700000123, "1700000123\n"
    )
    error = monitor_pb2.HostError(
        reason="cannot reach Xen host xen1 (10.0.0.1:22): timed out [HOST_UNREACHABLE]"
    )
    assert only(event(host_error=error)) == Message(
        "MONITOR_HOST",
        "FAILURE",
        3,
        1700000123,
        "cannot reach Xen host xen1 (10.0.0.1:22): timed out [HOST_UNREACHABLE]",
    )
    assert encoding.timestamp(event(beacon=monitor_pb2.Beacon())) == AT


def test_first_report_document() -> None:
    found = [
        Message("MONITOR_VM", "SUCCESS", 3, 9, 'VM = [ ID="1" ]\n'),
        Message("SYSTEM_HOST", "SUCCESS", 3, 9, "HYPERVISOR=xen\n"),
        Message("STATE_VM", "SUCCESS", 3, 9, "SYNC_STATE=yes\n"),
        Message("MONITOR_HOST", "SUCCESS", 3, 9, "USEDCPU=1\n"),
        Message("BEACON_HOST", "SUCCESS", 3, 9, "9\n"),
    ]
    document = encoding.monitor_messages(found, 9)
    system, usage, state, vms = (
        base64.b64encode(m.data.encode()).decode() for m in (found[1], found[3], found[2], found[0])
    )
    assert document == (
        f"<MONITOR_MESSAGES><SYSTEM_HOST>{system}</SYSTEM_HOST>\n"
        f"<MONITOR_HOST>{usage}</MONITOR_HOST>\n"
        f"<STATE_VM>{state}</STATE_VM>\n"
        f"<MONITOR_VM>{vms}</MONITOR_VM>\n"
        "<TIMESTAMP>9</TIMESTAMP></MONITOR_MESSAGES>"
    )


def test_template_reader_round_trips_quoting() -> None:
    text = 'A=1\nB="x \\"y\\" z"\nV = [ K="1", L="a,b" ]\n'
    assert parse_template(text) == [("A", "1"), ("B", 'x "y" z'), ("V", {"K": "1", "L": "a,b"})]
