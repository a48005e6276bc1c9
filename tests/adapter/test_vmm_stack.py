"""one_vmm_grpc under load and when things go wrong, against the real services and hosts:
30 VMs at once, a bad template, an unreachable host, a guest ignoring shutdown, a thousand
malformed lines, and DRIVER_CANCEL of a hung action."""

from __future__ import annotations

import base64
import random
import time
from collections import Counter

import pytest
from adapter_stack import HOSTS, Rig

from adapter.scripted import ScriptedOned, parse_reply

pytestmark = pytest.mark.slow


def test_thirty_vms_at_once_on_three_hosts_each_answered_once(rig: Rig) -> None:
    machines = [rig.vm(200 + i, HOSTS[i % 3]) for i in range(30)]
    with rig.oned("-t 15 -r 0 xen", log="vmm-30") as oned:
        started = time.monotonic()
        for vm in machines:
            oned.send_action("DEPLOY", vm.vm_id, vm.deploy("xml"))
        deployed = [oned.wait_reply("DEPLOY", vm.vm_id, timeout=120) for vm in machines]
        took = time.monotonic() - started
        assert [str(r) for r in deployed] == [f"DEPLOY SUCCESS {vm.vm_id} one-{vm.vm_id}" for vm in machines]
        for vm in machines:
            vm.commit()
        for name in HOSTS:
            names = {d["name"] for d in rig.host(name).domains()}
            assert {f"one-{vm.vm_id}" for vm in machines if vm.host == name} <= names
        for vm in machines:
            oned.send_action("CANCEL", vm.vm_id, vm.cancel(), two_spaces=True)  # the 6.x form
        cancelled = [oned.wait_reply("CANCEL", vm.vm_id, timeout=120) for vm in machines]
        assert all(r.ok for r in cancelled)
        time.sleep(0.5)  # nothing more may come
        counts = Counter((r.action, r.vm_id) for r in oned.replies())
    assert set(counts.values()) == {1} and len(counts) == 60
    # Three hosts, one action per host at a time: about ten deploys in a row per host.
    assert took < 90, took


def test_a_bad_template_is_one_clear_failure(rig: Rig) -> None:
    vm = rig.vm(240, "xen1")
    vm.disks[0]["DRIVER"] = "vmdk"
    with rig.oned(log="vmm-bad") as oned:
        reply = oned.request("DEPLOY", vm.vm_id, vm.deploy("xml"))
    assert reply.result == "FAILURE"
    assert reply.info.startswith("the VM template cannot run on Xen: ")
    assert "DISK" in reply.info and "vmdk" in reply.info
    assert not any(d["name"] == "one-240" for d in rig.host("xen1").domains())


def test_an_unreachable_host_is_one_clear_failure(rig: Rig) -> None:
    vm = rig.vm(241, "xen-gone.invalid")
    with rig.oned(log="vmm-unreachable") as oned:
        reply = oned.request("DEPLOY", vm.vm_id, vm.deploy("xml"))
    assert reply.result == "FAILURE"
    assert "cannot reach Xen host xen-gone.invalid" in reply.info
    assert "\n" not in reply.info and len(reply.info) < 600


def test_a_guest_ignoring_shutdown_is_one_clear_failure(rig: Rig) -> None:
    vm = rig.vm(242, "xen2")
    with rig.oned("-t 15 -r 0 xen --shutdown-timeout 2", log="vmm-acpi") as oned:
        assert oned.request("DEPLOY", vm.vm_id, vm.deploy("xml")).ok
        vm.commit()
        rig.host("xen2").ignore_acpi("one-242")
        reply = oned.request("SHUTDOWN", vm.vm_id, vm.shutdown())
        assert reply.result == "FAILURE"
        assert "one-242 on Xen host xen2 was still running 2 s after the shutdown request" in reply.info
        assert "FORCE_DESTROY is off" in reply.info
        assert any(d["name"] == "one-242" for d in rig.host("xen2").domains())
        assert oned.request("CANCEL", vm.vm_id, vm.cancel()).ok


def test_a_thousand_malformed_lines_leave_the_driver_alive_and_answering(rig: Rig) -> None:
    rng = random.Random(1000)
    garbage = [
        lambda i: f"DEPLOY {i} %%%{rng.random()}",
        lambda i: f"SHUTDOWN {i} {base64.b64encode(b'<VMM_DRIVER_ACTION_DATA><HOST>').decode()}",
        lambda i: f"REBOOT {i} {base64.b64encode(bytes(rng.randrange(256) for _ in range(40))).decode()}",
        lambda i: f"NOSUCHACTION {i} AAAA",
        lambda i: f"MIGRATE {i}",
        lambda i: "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 80))),
        lambda i: f"DEPLOY -{i}x {'A' * rng.randrange(1, 5000)}",
        lambda i: "\t \x0b" + "\x7f" * rng.randrange(1, 9),
    ]
    vm = rig.vm(243, "xen3")
    with rig.oned(log="vmm-garbage") as oned:
        for i in range(1000):
            oned.send(garbage[i % len(garbage)](10_000 + i).replace("\n", " "))
        reply = oned.request("DEPLOY", vm.vm_id, vm.deploy("xml"), timeout=60)
        assert str(reply) == "DEPLOY SUCCESS 243 one-243"
        vm.commit()
        assert oned.request("CANCEL", vm.vm_id, vm.cancel()).ok
        answers = [line for line in oned.lines if line.startswith("LOG E ") or " FAILURE " in line]
    assert oned.process.returncode == 0
    failures = [r for r in map(parse_reply, oned.lines) if r is not None and r.result == "FAILURE"]
    logged = [line for line in answers if line.startswith("LOG E ")]
    # Every bad line got exactly one answer: a FAILURE for its id, or a LOG E without one.
    assert len(failures) + len(logged) == 1000
    assert set(Counter(r.vm_id for r in failures).values()) == {1}


def test_driver_cancel_of_a_hung_action(rig: Rig) -> None:
    host = rig.host("xen1")
    host.hang("create", count=1)
    vm = rig.vm(244, "xen1")
    with rig.oned(log="vmm-cancel") as oned:
        oned.send_action("DEPLOY", vm.vm_id, vm.deploy("xml"))
        oned.wait_line(
            lambda line: line == "LOG I 244 Successfully execute network driver operation: pre.", timeout=30
        )
        time.sleep(1.0)  # xl create hangs on the host now
        oned.cancel(vm.vm_id)
        oned.wait_line(lambda line: line == "LOG I 244 Driver command for 244 cancelled", timeout=10)
        # The VM is not stuck: oned's next action for it is answered (the deploy never is).
        reply = oned.request("CLEANUP", vm.vm_id, vm.cleanup(), timeout=60)
        assert str(reply) == "CLEANUP SUCCESS 244 -"
        time.sleep(0.5)
        assert not [r for r in oned.replies(244) if r.action == "DEPLOY"]


def test_bad_arguments_fail_init_with_the_reason() -> None:
    oned = ScriptedOned("adapter.vmm.main", "-t zero xen")
    try:
        oned.send("INIT")
        _, line = oned.wait_line(lambda text: text.startswith("INIT"), timeout=20)
    finally:
        code = oned.finalize(timeout=10)
    assert line == "INIT FAILURE - one_vmm_grpc: argument -t/--threads: 'zero' is not a whole number >= 1"
    assert code == 1
