"""Per-host timers: monitord's periods and defaults, one probe cadence, jitter, no bursts."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onexen.v1 import monitor_pb2
from services.monitor.schedule import ALL_REPORTS, HostSchedule, Periods, Report


def test_defaults_are_monitord_probes_period() -> None:
    assert Periods().as_dict() == {
        "system_host": 600,
        "monitor_host": 120,
        "monitor_vm": 30,
        "state_vm": 5,
        "beacon_host": 30,
        "sync_state_vm": 180,
    }


def test_zero_means_the_default_and_the_base_is_the_shortest_period() -> None:
    periods = Periods.from_proto(monitor_pb2.ProbePeriods(state_vm_seconds=2, beacon_host_seconds=7))
    assert periods.state_vm == 2 and periods.beacon_host == 7 and periods.system_host == 600
    assert periods.base == 2
    assert Periods(state_vm=50, beacon_host=10).base == 10
    with pytest.raises(ValueError):
        Periods(state_vm=0)


def test_first_contact_wants_everything_then_each_report_follows_its_period() -> None:
    schedule = HostSchedule(Periods(), jitter=0.0, spread=0.0, rng=random.Random(1))
    assert schedule.first_contact and schedule.due(0.0) == ALL_REPORTS
    schedule.produced(ALL_REPORTS, 0.0)
    assert not schedule.first_contact
    assert schedule.due(5.0) == {Report.STATE_VM}
    produced: dict[Report, list[float]] = {r: [] for r in Report}
    now = 0.0
    while now < 600:
        now += 5.0
        due = schedule.due(now)
        for report in due:
            produced[report].append(now)
        schedule.produced(due, now)
    assert produced[Report.MONITOR_VM][:3] == [30.0, 60.0, 90.0]
    assert produced[Report.BEACON_HOST][:2] == [30.0, 60.0]
    assert produced[Report.MONITOR_HOST][:2] == [120.0, 240.0]
    assert produced[Report.SYNC_STATE_VM][:2] == [180.0, 360.0]
    assert produced[Report.SYSTEM_HOST] == [600.0]
    assert len(produced[Report.STATE_VM]) == 120  # every probe looks for state changes


def test_a_probe_slightly_early_still_counts_as_due() -> None:
    schedule = HostSchedule(Periods(), jitter=0.0, spread=0.0)
    schedule.produced(ALL_REPORTS, 0.0)
    # 29 s is within half a probe interval (2.5 s) of the 30 s MONITOR_VM.
    assert Report.MONITOR_VM in schedule.due(29.0)
    assert Report.MONITOR_VM not in schedule.due(27.0)


def test_a_long_outage_does_not_fire_a_burst_of_reports() -> None:
    schedule = HostSchedule(Periods(), jitter=0.0)
    schedule.produced(ALL_REPORTS, 0.0)
    due = schedule.due(1000.0)
    assert Report.MONITOR_VM in due and Report.SYSTEM_HOST in due
    schedule.produced(due, 1000.0)
    assert schedule.due(1005.0) == {Report.STATE_VM}


@pytest.mark.parametrize("seed", range(200))
def test_a_long_outage_never_leaves_a_report_due_right_after_it_went_out(seed: int) -> None:
    # The first contact spreads each timer over its period; after an outage, a timer that
    # lands just past the catch-up probe (within the probe interval) must not fire again.
    schedule = HostSchedule(Periods(), jitter=0.0, rng=random.Random(seed))
    schedule.produced(ALL_REPORTS, 0.0)
    due = schedule.due(1000.0)
    schedule.produced(due, 1000.0)
    assert schedule.due(1005.0) == {Report.STATE_VM}


def test_reports_of_hosts_added_together_spread_after_the_first() -> None:
    rng = random.Random(3)
    firsts = []
    for _ in range(500):
        schedule = HostSchedule(Periods(), spread=0.9, rng=rng)
        schedule.produced(ALL_REPORTS, 0.0)
        now = 0.0
        while Report.MONITOR_VM not in schedule.due(now):
            now += 1.0
        firsts.append(now)
        schedule.produced(schedule.due(now), now)
        following = now
        while Report.MONITOR_VM not in schedule.due(following):
            following += 1.0
        assert following - now == pytest.approx(30, abs=2.5)  # then the full period
    assert 1 <= min(firsts) <= 3 and 26 <= max(firsts) <= 28  # due 2.5 s early at most
    assert len(set(firsts)) >= 15


def test_reset_is_a_new_first_contact() -> None:
    schedule = HostSchedule(Periods())
    schedule.produced(ALL_REPORTS, 0.0)
    schedule.reset()
    assert schedule.first_contact and schedule.due(1.0) == ALL_REPORTS


@given(seed=st.integers(0, 2**32 - 1), jitter=st.floats(0.0, 0.5))
def test_jitter_only_shortens_the_interval(seed: int, jitter: float) -> None:
    periods = Periods(state_vm=5)
    schedule = HostSchedule(periods, jitter=jitter, rng=random.Random(seed))
    first = schedule.next_probe(100.0)
    assert 100.0 < first <= 105.0  # random first phase within one interval
    planned = first
    for _ in range(20):
        following = schedule.next_probe(planned + 0.2)  # the probe took 0.2 s
        assert planned + 5 * (1 - jitter) - 1e-9 <= following <= planned + 5 + 1e-9
        planned = following


def test_hosts_added_together_spread_over_the_interval() -> None:
    rng = random.Random(7)
    starts = [HostSchedule(Periods(state_vm=5), rng=rng).next_probe(0.0) for _ in range(1000)]
    buckets = [sum(1 for s in starts if i <= s < i + 1) for i in range(5)]
    assert all(150 < b < 250 for b in buckets), buckets


def test_an_overrun_probe_is_followed_after_a_breath_not_back_to_back() -> None:
    schedule = HostSchedule(Periods(state_vm=5), jitter=0.0)
    planned = schedule.next_probe(0.0)
    following = schedule.next_probe(planned + 30.0)  # the probe hung for 30 s
    assert following == pytest.approx(planned + 30.0 + 0.5)
