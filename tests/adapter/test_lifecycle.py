"""A VM's whole life as OpenNebula drives it: a scripted oned talking to one_vmm_grpc and a
scripted onemonitord talking to one_im_grpc, both started as OpenNebula starts drivers,
against the three services and simulated Xen hosts over real SSH."""

from __future__ import annotations

import os
from typing import Any

import pytest
from adapter_stack import PERIODS, Rig

from adapter.scripted import Message, OnedVm, ScriptedOned, decode_monitor, vm_entries

pytestmark = pytest.mark.slow


def state_is(host_id: int, domain: str, state: str) -> Any:
    def matches(m: Message) -> bool:
        if m.type != "STATE_VM" or m.oid != host_id:
            return False
        return any(e.get("DEPLOY_ID") == domain and e.get("STATE") == state for e in vm_entries(m.data))

    return matches


def domain_on(rig: Rig, host: str, name: str) -> dict[str, Any] | None:
    return next((d for d in rig.host(host).domains() if d["name"] == name), None)


def devices(rig: Rig, host: str, name: str, kind: str, key: str) -> list[str]:
    """The vdevs (disks) or MACs (nics) the simulated host has for a domain."""
    domain = domain_on(rig, host, name)
    assert domain is not None, f"no {name} on {host}"
    return [str(spec.get(key, "")) for spec in domain[kind]]


def ok(oned: ScriptedOned, action: str, vm: OnedVm, message: str) -> None:
    reply = oned.request(action, vm.vm_id, message, timeout=60)
    assert reply.ok, f"{reply}\n" + "\n".join(f"  {s} {t}" for s, t in oned.logs(vm.vm_id)[-12:])
    vm.commit()


def test_a_vms_whole_life(rig: Rig) -> None:
    with rig.monitord() as monitord, rig.oned("-t 15 -r 0 xen --shutdown-timeout 10") as oned:
        for host_id, name in ((0, "xen1"), (1, "xen2")):
            first = monitord.start_monitor(host_id, name, periods=PERIODS)
            assert first.ok, first.text
            assert "HYPERVISOR=xen" in first.messages["SYSTEM_HOST"]
            assert "SYNC_STATE=yes" in first.messages["STATE_VM"]

        vm = rig.vm(100, "xen1")
        vm.add_nic(vn_mad="802.1Q")

        # DEPLOY (TYPE="xml": translated), then monitored to RUNNING.
        mark = len(monitord.lines)
        reply = oned.request("DEPLOY", vm.vm_id, vm.deploy("xml"))
        assert str(reply) == "DEPLOY SUCCESS 100 one-100"
        vm.commit()
        assert domain_on(rig, "xen1", "one-100") is not None
        monitord.wait_message(state_is(0, "one-100", "RUNNING"), start=mark, timeout=20)
        figures = monitord.wait_message(
            lambda m: m.type == "MONITOR_VM" and m.oid == 0 and '"one-100"' in m.data, start=mark, timeout=20
        )
        entry = next(e for e in vm_entries(figures.data) if e["DEPLOY_ID"] == "one-100")
        assert entry["ID"] == "100" and int(decode_monitor(entry)["MEMORY"]) > 0

        # Disks and NICs, hot.
        ok(oned, "ATTACHDISK", vm, vm.attach_disk("xvdb"))
        assert "xvdb" in devices(rig, "xen1", "one-100", "disks", "vdev")
        ok(oned, "DETACHDISK", vm, vm.detach_disk("xvdb"))
        assert "xvdb" not in devices(rig, "xen1", "one-100", "disks", "vdev")
        mac = "02:00:0a:00:64:99"
        ok(oned, "ATTACHNIC", vm, vm.attach_nic(mac=mac))
        assert mac in devices(rig, "xen1", "one-100", "nics", "mac")
        ok(oned, "DETACHNIC", vm, vm.detach_nic(mac))
        assert mac not in devices(rig, "xen1", "one-100", "nics", "mac")
        ok(oned, "UPDATECONF", vm, vm.update_conf())

        # Save and restore; monitord sees it go and come back.
        mark = len(monitord.lines)
        ok(oned, "SAVE", vm, vm.save())
        assert os.path.exists(vm.checkpoint) and domain_on(rig, "xen1", "one-100") is None
        monitord.wait_message(state_is(0, "one-100", "POWEROFF"), start=mark, timeout=20)
        mark = len(monitord.lines)
        ok(oned, "RESTORE", vm, vm.restore())
        monitord.wait_message(state_is(0, "one-100", "RUNNING"), start=mark, timeout=20)

        # Live migration to xen2: monitord finds it there.
        mark = len(monitord.lines)
        ok(oned, "MIGRATE", vm, vm.migrate("xen2"))
        assert domain_on(rig, "xen1", "one-100") is None and domain_on(rig, "xen2", "one-100") is not None
        monitord.wait_message(state_is(1, "one-100", "RUNNING"), start=mark, timeout=20)

        ok(oned, "REBOOT", vm, vm.reboot())
        ok(oned, "RESET", vm, vm.reset())

        mark = len(monitord.lines)
        ok(oned, "SHUTDOWN", vm, vm.shutdown())
        assert domain_on(rig, "xen2", "one-100") is None
        monitord.wait_message(state_is(1, "one-100", "POWEROFF"), start=mark, timeout=20)

        # DEPLOY of an xl config (TYPE="xen": oned's XenDriver rendered it), and CANCEL.
        other = rig.vm(101, "xen2")
        reply = oned.request("DEPLOY", other.vm_id, other.deploy("xen"))
        assert str(reply) == "DEPLOY SUCCESS 101 one-101"
        other.commit()
        ok(oned, "CANCEL", other, other.cancel())
        assert domain_on(rig, "xen2", "one-101") is None

        for host_id, name in ((0, "xen1"), (1, "xen2")):
            assert monitord.stop_monitor(host_id, name).status == "SUCCESS"

    # Exactly one reply per request.
    assert [r.action for r in oned.replies(100)] == [
        "DEPLOY",
        "ATTACHDISK",
        "DETACHDISK",
        "ATTACHNIC",
        "DETACHNIC",
        "UPDATECONF",
        "SAVE",
        "RESTORE",
        "MIGRATE",
        "REBOOT",
        "RESET",
        "SHUTDOWN",
    ]
    # The delegated steps ran where upstream runs them: tm here, vnm on the hosts.
    tm = [line.split()[0] for line in rig.tm_calls() if " 100 " in f"{line} "]
    assert tm == [
        "ssh/context",
        "ssh/mkimage",
        "ssh/delete",
        "ssh/context",
        "ssh/context",
        "ssh/context",
        "ssh/context",
        "ssh/premigrate",
        "ssh/postmigrate",
    ]
    vnm = [line for line in rig.vnm_calls() if "vm=100" in line]
    assert "xen1 dummy/pre vm=100 " in vnm and "xen1 802.1Q/pre vm=100 " in vnm
    assert "xen1 dummy/post vm=100 one-100" in vnm
    assert "xen2 dummy/pre vm=100 " in vnm and "xen1 dummy/clean vm=100 " in vnm  # migration
    logs = oned.logs(100)
    assert ("I", "Successfully execute virtualization driver operation: deploy.") in logs
    assert ("I", "Successfully execute network driver operation: pre.") in logs
    assert ("I", "Successfully execute transfer manager driver operation: premigrate.") in logs


def test_cleanup_after_a_failed_deploy(rig: Rig) -> None:
    host = rig.host("xen3")
    host.fail("create", rc=3, stderr="libxl: error: libxl_create.c:1196: cannot make domain: -3", count=1)
    vm = rig.vm(110, "xen3")
    with rig.oned() as oned:
        reply = oned.request("DEPLOY", vm.vm_id, vm.deploy("xml"))
        assert reply.result == "FAILURE"
        assert "xl create of one-110 failed on Xen host xen3 (exit 3)" in reply.info
        assert "cannot make domain: -3" in reply.info
        assert os.path.exists(f"{vm.system_dir}/disk.0")
        reply = oned.request("CLEANUP", vm.vm_id, vm.cleanup())
        assert str(reply) == "CLEANUP SUCCESS 110 -"
    assert not os.path.exists(vm.system_dir)  # tm delete of each disk and of the VM directory
    assert "xen3 dummy/clean vm=110 " in rig.vnm_calls()
    assert [line for line in rig.tm_calls() if " 110 " in line][-2:] == [
        f"ssh/delete xen3:{vm.system_dir}/disk.0 110 1",
        f"ssh/delete xen3:{vm.system_dir} 110 0",
    ]


def test_monitord_start_monitor_for_an_unknown_host_is_a_clear_failure(rig: Rig) -> None:
    with rig.monitord() as monitord:
        first = monitord.start_monitor(9, "nowhere.invalid", periods=PERIODS)
        assert first.status == "FAILURE"
        assert "nowhere.invalid" in first.text
        assert monitord.stop_monitor(9, "nowhere.invalid").status == "SUCCESS"
