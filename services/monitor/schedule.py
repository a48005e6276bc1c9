"""When each host is probed and which reports a probe produces (pure: no clock, no I/O).

monitord's agent ran one thread per probe group, each with its own period. Here one
`ExecutorService/Probe` answers every group at once, so a host is probed at the
shortest of its periods (STATE_VM by default) and each probe tells which groups are
due. A group counts as due when it falls within half a probe interval of the probe:
without that slack a 30 s MONITOR_VM on a 5 s cadence would slip to 35 s whenever
the probe lands a hair early.

Jitter only ever shortens an interval (uniform in [1 - jitter, 1] of the base), so a
state change is still seen within one STATE_VM period plus the probe's own duration.
Hosts added together (a monitor restart adds them all at once) must not stay in step:
the first probe after first contact comes at a random point of the base interval, and
each report's first period after it is cut to a random 1 - spread .. 1 of its length,
so two thousand MONITOR_VM reports spread over the whole 30 s instead of landing in one
burst (a burst of events is what makes Watch streams fall behind).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields

from onexen.v1 import monitor_pb2


class Report(enum.Enum):
    """monitord's probe groups, plus the periodic full state report."""

    SYSTEM_HOST = "system_host"
    MONITOR_HOST = "monitor_host"
    MONITOR_VM = "monitor_vm"
    STATE_VM = "state_vm"
    BEACON_HOST = "beacon_host"
    SYNC_STATE_VM = "sync_state_vm"


ALL_REPORTS = frozenset(Report)


@dataclass(frozen=True)
class Periods:
    """PROBES_PERIOD in seconds, monitord's shipped defaults (monitord.conf)."""

    beacon_host: float = 30.0
    system_host: float = 600.0
    monitor_host: float = 120.0
    state_vm: float = 5.0
    monitor_vm: float = 30.0
    sync_state_vm: float = 180.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"period {f.name} must be positive")

    @classmethod
    def from_proto(cls, periods: monitor_pb2.ProbePeriods) -> Periods:
        """0 (unset) means the monitord default, as AddHost documents."""
        defaults = cls()
        given = {
            "beacon_host": periods.beacon_host_seconds,
            "system_host": periods.system_host_seconds,
            "monitor_host": periods.monitor_host_seconds,
            "state_vm": periods.state_vm_seconds,
            "monitor_vm": periods.monitor_vm_seconds,
            "sync_state_vm": periods.sync_state_vm_seconds,
        }
        return cls(**{k: float(v) if v else getattr(defaults, k) for k, v in given.items()})

    def of(self, report: Report) -> float:
        value: float = getattr(self, report.value)
        return value

    @property
    def base(self) -> float:
        """The probe interval: the shortest period, so no group waits for a probe."""
        return min(self.of(r) for r in Report)

    def as_dict(self) -> Mapping[str, float]:
        return {r.value: self.of(r) for r in Report}


class HostSchedule:
    """The timers of one host. Times are seconds on any monotonic clock the caller uses."""

    def __init__(
        self,
        periods: Periods,
        *,
        jitter: float = 0.1,
        spread: float = 0.9,
        rng: random.Random | None = None,
    ) -> None:
        if not 0.0 <= jitter < 1.0 or not 0.0 <= spread < 1.0:
            raise ValueError("jitter and spread must lie within [0, 1)")
        self.periods = periods
        self._period = {r: periods.of(r) for r in Report}
        self._base = periods.base
        self.jitter = jitter
        self.spread = spread
        self._rng = rng or random.Random()
        self._next: dict[Report, float] = {}
        self._next_probe: float | None = None

    def reset(self) -> None:
        """First contact again (host added anew, or back from an error): everything is due."""
        self._next.clear()
        self._next_probe = None

    @property
    def first_contact(self) -> bool:
        return not self._next

    def due(self, now: float) -> frozenset[Report]:
        """The reports a probe finishing at `now` must produce."""
        if not self._next:
            return ALL_REPORTS
        slack = self._base / 2
        # State changes are looked for on every probe; only their timer-driven sibling,
        # the full SYNC_STATE report, waits for its period.
        return frozenset(r for r, at in self._next.items() if r is Report.STATE_VM or at <= now + slack)

    def produced(self, reports: frozenset[Report], now: float) -> None:
        """Record that `reports` went out at `now`; the next ones follow their periods.

        Timers advance from their planned time, not from `now`, so a probe that runs a
        little late does not push every later report back; a timer left behind by a
        long outage restarts from `now` instead of firing in a burst.
        """
        first = not self._next
        for report in reports:
            period = self._period[report]
            planned = self._next.get(report)
            if planned is None:
                # The first contact spreads each timer over its period (hosts added together).
                self._next[report] = now + period * (
                    self._rng.uniform(1.0 - self.spread, 1.0) if first else 1.0
                )
                continue
            following = planned + period
            # A timer whose next report would come less than half a period after this one was
            # left behind (by an outage): restart it from now, or it fires twice in a row.
            self._next[report] = following if following - now >= period / 2 else now + period
        if first:
            for report in Report:
                self._next.setdefault(report, now + self._period[report])

    def next_probe(self, now: float) -> float:
        """When to start the next probe, given that the last one finished at `now`."""
        base = self._base
        if self._next_probe is None:
            # Random first phase: hosts added in one burst spread over a whole interval.
            planned = now + base * self._rng.uniform(0.05, 1.0)
        else:
            planned = self._next_probe + base * self._rng.uniform(1.0 - self.jitter, 1.0)
            if planned < now:
                # The probe overran its slot: start over from now, a short breath later,
                # rather than probing a slow host back to back.
                planned = now + base * 0.1
        self._next_probe = planned
        return planned
