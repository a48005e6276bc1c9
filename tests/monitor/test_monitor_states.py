"""The probe_db semantics: state mapping, changes only, SYNC_STATE, missing after N absences."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onexen.v1 import common_pb2
from services.monitor import states
from services.monitor.states import FAILURE, POWEROFF, RUNNING, SUSPENDED, UNKNOWN, Seen, VmTable


@pytest.mark.parametrize(
    ("domain_state", "expected"),
    [
        (common_pb2.DOMAIN_STATE_RUNNING, RUNNING),
        (common_pb2.DOMAIN_STATE_BLOCKED, RUNNING),
        (common_pb2.DOMAIN_STATE_RUNNABLE, RUNNING),
        (common_pb2.DOMAIN_STATE_PAUSED, SUSPENDED),  # upstream: RUNNING, never SUSPENDED
        (common_pb2.DOMAIN_STATE_CRASHED, FAILURE),
        (common_pb2.DOMAIN_STATE_SHUTDOWN, POWEROFF),  # upstream: RUNNING
        (common_pb2.DOMAIN_STATE_DYING, POWEROFF),  # upstream: RUNNING
    ],
)
def test_domain_states_map_to_what_monitord_understands(domain_state: int, expected: int) -> None:
    assert states.vm_state(domain_state) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("r-----", RUNNING),
        ("-b----", RUNNING),
        ("------", RUNNING),
        ("--p---", SUSPENDED),
        ("--ps--", POWEROFF),  # `xl shutdown -w` returned, the domain not yet destroyed
        ("---sc-", FAILURE),
        ("----c-", FAILURE),
        ("-b---d", POWEROFF),
    ],
)
def test_unset_state_falls_back_to_the_flags(flags: str, expected: int) -> None:
    assert states.vm_state(common_pb2.DOMAIN_STATE_UNSPECIFIED, flags) == expected


def test_names_make_vm_ids_and_domain0_is_never_a_vm() -> None:
    assert states.vm_id_of("one-42") == 42
    assert states.vm_id_of("one-0") == 0
    for wild in ("one-", "one-42a", "one-042", "ONE-4", "web1", "Domain-0x"):
        assert states.vm_id_of(wild) == -1
    assert states.is_domain0("Domain-0", 0)
    assert states.is_domain0("renamed", 0)
    assert not states.is_domain0("one-1", 1)


def seen(*items: tuple[str, int]) -> list[Seen]:
    return [Seen(name, i + 1, state) for i, (name, state) in enumerate(items)]  # type: ignore[arg-type]


def test_first_contact_is_a_full_sync_then_only_changes() -> None:
    table = VmTable()
    first = table.observe(seen(("one-1", RUNNING), ("wild", RUNNING)), 1.0, sync=True)
    assert first.report is not None and first.report.sync
    assert first.report.missing_state == POWEROFF
    assert {(v.vm_id, v.deploy_id, v.state) for v in first.report.vms} == {
        (1, "one-1", RUNNING),
        (-1, "wild", RUNNING),
    }
    assert table.observe(seen(("one-1", RUNNING), ("wild", RUNNING)), 2.0, sync=False).report is None
    paused = table.observe(seen(("one-1", SUSPENDED), ("wild", RUNNING)), 3.0, sync=False)
    assert paused.report is not None and not paused.report.sync
    assert [(v.deploy_id, v.state) for v in paused.report.vms] == [("one-1", SUSPENDED)]
    assert paused.changed == ["one-1"]


def test_a_vm_is_missing_only_after_n_absences() -> None:
    table = VmTable(missing_after=3)
    table.observe(seen(("one-1", RUNNING), ("one-2", RUNNING)), 1.0, sync=True)
    assert table.observe(seen(("one-2", RUNNING)), 2.0, sync=False).report is None
    assert table.observe(seen(("one-2", RUNNING)), 3.0, sync=False).report is None
    gone = table.observe(seen(("one-2", RUNNING)), 4.0, sync=False)
    assert gone.report is not None
    assert [(v.deploy_id, v.state) for v in gone.report.vms] == [("one-1", POWEROFF)]
    assert gone.removed == ["one-1"] and table.get("one-1") is None


def test_a_vm_back_before_n_absences_is_not_reported() -> None:
    table = VmTable(missing_after=3)
    table.observe(seen(("one-1", RUNNING)), 1.0, sync=True)
    table.observe([], 2.0, sync=False)
    table.observe([], 3.0, sync=False)
    assert table.observe(seen(("one-1", RUNNING)), 4.0, sync=False).report is None
    assert table.get("one-1") is not None and table.get("one-1").missing == 0  # type: ignore[union-attr]


def test_a_vm_seen_shutting_down_is_not_reported_again_when_it_vanishes() -> None:
    table = VmTable(missing_after=1)
    table.observe(seen(("one-1", RUNNING)), 1.0, sync=True)
    off = table.observe(seen(("one-1", POWEROFF)), 2.0, sync=False)
    assert off.report is not None and states_of(off.report) == {"one-1": POWEROFF}
    vanished = table.observe([], 3.0, sync=False)
    assert vanished.report is None and vanished.removed == ["one-1"]


def test_a_sync_report_keeps_vms_still_counting_absences() -> None:
    table = VmTable(missing_after=3)
    table.observe(seen(("one-1", RUNNING), ("one-2", SUSPENDED)), 1.0, sync=True)
    report = table.observe(seen(("one-2", SUSPENDED)), 2.0, sync=True).report
    assert report is not None and report.sync
    assert states_of(report) == {"one-1": RUNNING, "one-2": SUSPENDED}


def test_an_unreachable_host_makes_every_vm_unknown_once() -> None:
    table = VmTable()
    table.observe(seen(("one-1", RUNNING), ("one-2", SUSPENDED)), 1.0, sync=True)
    report = table.unreachable()
    assert report is not None and states_of(report) == {"one-1": UNKNOWN, "one-2": UNKNOWN}
    assert table.unreachable() is None
    sync = table.unreachable_sync_report()
    assert sync.sync and sync.missing_state == UNKNOWN and states_of(sync) == states_of(report)
    back = table.observe(seen(("one-1", RUNNING), ("one-2", SUSPENDED)), 5.0, sync=True).report
    assert back is not None and states_of(back) == {"one-1": RUNNING, "one-2": SUSPENDED}


def states_of(report: object) -> dict[str, int]:
    return {v.deploy_id: v.state for v in report.vms}  # type: ignore[attr-defined]


_STATE = st.sampled_from([RUNNING, SUSPENDED, POWEROFF, FAILURE])


@given(st.lists(st.dictionaries(st.sampled_from(["one-1", "one-2", "one-3", "w"]), _STATE), max_size=12))
def test_replaying_the_reports_gives_the_table(probes: list[dict[str, int]]) -> None:
    """What a consumer applying every report (sync replaces, change updates) believes equals the table."""
    table = VmTable(missing_after=2)
    believed: dict[str, int] = {}
    for i, probe in enumerate(probes):
        report = table.observe(seen(*probe.items()), float(i), sync=i % 4 == 0).report
        if report is None:
            continue
        if report.sync:
            believed = {}
        for vm in report.vms:
            believed[vm.deploy_id] = vm.state
        for name in [n for n, s in believed.items() if s == POWEROFF and table.get(n) is None]:
            del believed[name]
    truth = {e.deploy_id: e.state for e in table}
    assert {n: s for n, s in believed.items() if n in truth} == truth
    assert all(believed.get(n) in (None, POWEROFF) for n in believed if n not in truth)
