"""The state model on its own: time, lifecycle, memory, device numbers (no processes)."""

from __future__ import annotations

from typing import Any

import pytest

from simxen.facts import HostFacts
from simxen.model import (
    SHUTDOWN_CRASH,
    CreateError,
    HostState,
    set_in_order,
    vdev_number,
)

FACTS = HostFacts(
    boot_seconds=1.0, shutdown_seconds=2.0, reboot_seconds=2.0, cleanup_seconds=1.0, guest_load=0.1
)


def pv_config(name: str = "domu1", memory_mb: int = 128, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "c_info": {"type": "pv", "name": name, "uuid": "05424b7f-f54e-48c0-87fe-7aa7188e6570"},
        "b_info": {
            "max_vcpus": 1,
            "avail_vcpus": [0],
            "max_memkb": memory_mb * 1024,
            "target_memkb": memory_mb * 1024,
            "sched_params": {},
            "claim_mode": "True",
            "kernel": "/k",
            "type.pv": {},
            "arch_arm": {},
            "arch_x86": {},
        },
        "nics": [{"devid": 0, "mac": "00:16:3e:00:00:01", "bridge": "xenbr0"}],
        "on_reboot": "restart",
        "on_soft_reset": "soft_reset",
    }
    cfg.update(extra)
    return cfg


def test_dom0_is_always_there_with_the_reference_memory() -> None:
    state = HostState.boot(FACTS, now=1000.0)
    dom0 = state.get(0)
    assert dom0 is not None and dom0.name == "Domain-0"
    assert dom0.xl_state(1000.0) == "r-----"
    assert dom0.xentop_state(1000.0) == "-----r"
    assert state.free_memory_kb(FACTS) // 1024 == 1256


@pytest.mark.parametrize(
    ("vdev", "number"),
    [("xvda", 51712), ("xvdb", 51728), ("xvdc", 51744), ("xvdz", 268441856), ("hda", 768), ("hdb", 832),
     ("hdc", 5632), ("sda", 2048), ("51744", 51744), ("notadev", None), ("xvd", None)],
)  # fmt: skip
def test_vdev_numbers_match_libxl(vdev: str, number: int | None) -> None:
    # 51728/51744 from xl_block.txt, 268441856 from its "xvdz does not exist" error
    assert vdev_number(vdev) == number


def test_keys_are_inserted_in_idl_order() -> None:
    d = {"type": "pv", "name": "x", "uuid": "u", "run_hotplug_scripts": "True"}
    set_in_order(d, "domid", 4294967295, ["type", "name", "domid", "uuid", "run_hotplug_scripts"])
    assert list(d) == ["type", "name", "domid", "uuid", "run_hotplug_scripts"]


def test_cpu_time_grows_lazily_while_running_and_stops_when_paused() -> None:
    state = HostState.boot(FACTS, now=0.0)
    dom = state.build_domain(pv_config(), 0.0, FACTS)
    assert dom.xl_state(0.5) == "------"  # still booting
    state.advance(1.0, FACTS)
    assert dom.cpu_seconds == pytest.approx(1.0)  # the boot keeps its vCPU busy
    state.advance(11.0, FACTS)
    assert dom.cpu_seconds == pytest.approx(2.0)  # then 10 s at 10 %
    assert dom.xl_state(11.0) == "-b----"
    dom.paused = True
    state.advance(21.0, FACTS)
    assert dom.cpu_seconds == pytest.approx(2.0)
    assert dom.xl_state(21.0) == "--p---" and dom.xentop_state(21.0) == "----p-"


def test_requested_shutdown_completes_then_the_monitor_destroys_the_guest() -> None:
    state = HostState.boot(FACTS, now=0.0)
    dom = state.build_domain(pv_config(), 0.0, FACTS)
    dom.pending, dom.pending_at = "poweroff", 12.0
    state.advance(12.5, FACTS)
    assert dom.xl_state(12.5) == "--ps--"  # shut down, being cleaned up by xl's monitor
    state.advance(13.1, FACTS)
    assert state.get(dom.domid) is None


def test_without_its_monitor_a_shut_down_guest_stays_until_destroyed() -> None:
    state = HostState.boot(FACTS, now=0.0)
    dom = state.build_domain(pv_config(), 0.0, FACTS)
    dom.monitor = False
    dom.pending, dom.pending_at = "poweroff", 5.0
    state.advance(100.0, FACTS)
    assert dom.xl_state(100.0) == "---s--"
    assert dom.xentop_state(100.0) == "-s----"


def test_reboot_restarts_the_guest_under_a_new_domid() -> None:
    state = HostState.boot(FACTS, now=0.0)
    dom = state.build_domain(pv_config(), 0.0, FACTS)
    assert dom.domid == 1
    dom.pending, dom.pending_at = "reboot", 3.0
    state.advance(10.0, FACTS)
    again = state.by_name("domu1")
    assert again is not None and again.domid == 2 and again.uuid == dom.uuid
    assert again.shutdown_reason is None and again.cpu_seconds < 7.0


def test_pausing_delays_a_pending_shutdown() -> None:
    state = HostState.boot(FACTS, now=0.0)
    dom = state.build_domain(pv_config(), 0.0, FACTS)
    dom.pending, dom.pending_at = "poweroff", 3.0
    state.advance(1.0, FACTS)
    dom.paused = True
    state.advance(10.0, FACTS)
    assert dom.shutdown_reason is None
    dom.paused = False
    state.advance(11.9, FACTS)
    assert dom.shutdown_reason is None
    state.advance(12.1, FACTS)
    assert dom.shutdown_reason == 0


def test_crash_flags_differ_between_xl_list_and_xentop() -> None:
    state = HostState.boot(FACTS, now=0.0)
    dom = state.build_domain(pv_config(), 0.0, FACTS)
    dom.shutdown_reason = SHUTDOWN_CRASH
    assert dom.xl_state(5.0) == "---sc-"
    assert dom.xentop_state(5.0) == "---c--"


def test_name_clash_uses_up_a_domid_and_reports_like_libxl() -> None:
    state = HostState.boot(FACTS, now=0.0)
    state.build_domain(pv_config(), 0.0, FACTS)
    with pytest.raises(CreateError) as e:
        state.build_domain(pv_config(), 1.0, FACTS)
    assert e.value.rc == 3
    assert 'Domain 2:Domain with name "domu1" already exists.' in e.value.lines[0]
    assert state.build_domain(pv_config("other"), 2.0, FACTS).domid == 3


def test_free_memory_shrinks_and_an_oversized_guest_is_refused() -> None:
    state = HostState.boot(FACTS, now=0.0)
    state.build_domain(pv_config(memory_mb=512), 0.0, FACTS)
    assert state.free_memory_kb(FACTS) // 1024 == 1256 - 513
    with pytest.raises(CreateError) as e:
        state.build_domain(pv_config("big", memory_mb=4096), 0.0, FACTS)
    assert e.value.rc == 3


def test_missing_bridge_and_missing_disk_are_refused() -> None:
    state = HostState.boot(FACTS, now=0.0)
    cfg = pv_config(nics=[{"devid": 0, "bridge": "nosuchbr"}])
    with pytest.raises(CreateError, match="Could not find bridge device nosuchbr"):
        state.build_domain(cfg, 0.0, FACTS)
    cfg = pv_config("d", disks=[{"pdev_path": "/nonexistent/img", "vdev": "xvda", "format": "raw"}])
    with pytest.raises(CreateError, match="failed to stat: /nonexistent/img"):
        state.build_domain(cfg, 0.0, FACTS)


def test_state_round_trips_through_json() -> None:
    state = HostState.boot(FACTS, now=0.0)
    state.build_domain(pv_config(), 0.0, FACTS)
    again = HostState.from_dict(state.to_dict())
    assert again.to_dict() == state.to_dict()
