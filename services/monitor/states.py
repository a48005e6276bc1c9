"""The VM state table of one host: what monitord's probe_db did on the host, done here (pure).

Upstream (C512 `im_mad/remotes/lib/probe_db.rb`) each host kept a SQLite table of VM
states; STATE_VM carried only the VMs whose state changed, a full SYNC_STATE report went
out on first contact and every SYNC_STATE_VM seconds, and a VM absent from N
consecutive probes was reported with MISSING_STATE and forgotten. Same here, with the
upstream defects fixed:

- a paused domain is SUSPENDED (upstream: `a`, so oned never left RUNNING);
- a crashed domain is FAILURE; shut down, dying or gone is POWEROFF;
- Domain-0 is the host, never a VM (upstream listed it as a wild VM, OpenNebula/one#6611);
- `one-<n>` is VM n; any other name is wild (vm_id -1) and is tracked like our own, so
  an imported VM, which oned finds by DEPLOY_ID, gets its states too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, TypeAlias

from onexen.v1 import common_pb2, monitor_pb2

VmState: TypeAlias = common_pb2.VmState.ValueType
DomainState: TypeAlias = common_pb2.DomainState.ValueType

RUNNING: VmState = common_pb2.VM_STATE_RUNNING
SUSPENDED: VmState = common_pb2.VM_STATE_SUSPENDED
POWEROFF: VmState = common_pb2.VM_STATE_POWEROFF
FAILURE: VmState = common_pb2.VM_STATE_FAILURE
UNKNOWN: VmState = common_pb2.VM_STATE_UNKNOWN

DEFAULT_MISSING_AFTER = 3
DOMAIN0_NAME = "Domain-0"
WILD_VM_ID = -1

_OURS = re.compile(r"one-(0|[1-9][0-9]*)")

# The executor's primary DomainState -> the STATE_VM monitord understands.
STATE_OF: dict[DomainState, VmState] = {
    common_pb2.DOMAIN_STATE_RUNNING: RUNNING,
    common_pb2.DOMAIN_STATE_BLOCKED: RUNNING,
    common_pb2.DOMAIN_STATE_RUNNABLE: RUNNING,
    common_pb2.DOMAIN_STATE_PAUSED: SUSPENDED,
    common_pb2.DOMAIN_STATE_CRASHED: FAILURE,
    common_pb2.DOMAIN_STATE_SHUTDOWN: POWEROFF,
    common_pb2.DOMAIN_STATE_DYING: POWEROFF,
}


def state_from_flags(flags: str) -> VmState:
    """From `xl list`'s `rbpscd` letters, for a domain whose primary state the executor left unset.

    The worst condition wins: dying, then crashed, shut down, paused; a domain that is
    merely running, blocked or runnable is RUNNING.
    """
    f = flags.ljust(6, "-")
    if f[5] == "d":
        return POWEROFF
    if f[4] == "c":
        return FAILURE
    if f[3] == "s":
        return POWEROFF
    if f[2] == "p":
        return SUSPENDED
    return RUNNING


def vm_state(state: DomainState, flags: str = "") -> VmState:
    """What monitord's STATE_VM says for a domain in this state."""
    mapped = STATE_OF.get(state)
    return mapped if mapped is not None else state_from_flags(flags)


def is_domain0(name: str, domid: int) -> bool:
    return domid == 0 or name == DOMAIN0_NAME


@functools.lru_cache(maxsize=1 << 17)
def vm_id_of(name: str) -> int:
    """n for `one-<n>`, -1 (wild or imported) for any other name."""
    match = _OURS.fullmatch(name)
    return int(match.group(1)) if match else WILD_VM_ID


@dataclass(slots=True)
class VmEntry:
    """One VM as the table knows it; `state` is the state last reported for it."""

    deploy_id: str
    vm_id: int
    state: VmState
    domid: int
    last_seen: float
    missing: int = 0

    @property
    def wild(self) -> bool:
        return self.vm_id == WILD_VM_ID

    def change(self, state: VmState | None = None) -> monitor_pb2.VmStateChange:
        return monitor_pb2.VmStateChange(
            vm_id=self.vm_id, deploy_id=self.deploy_id, state=self.state if state is None else state
        )


class Seen(NamedTuple):
    """One non-Domain-0 domain a probe listed."""

    name: str
    domid: int
    state: VmState


@dataclass
class Outcome:
    """What one probe changed in the table."""

    report: monitor_pb2.VmStateReport | None  # None: nothing to send
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # state differs from the last report
    removed: list[str] = field(default_factory=list)  # declared missing and forgotten


class VmTable:
    """The per-host table of VM states and the STATE_VM reports it yields."""

    def __init__(self, missing_after: int = DEFAULT_MISSING_AFTER, missing_state: VmState = POWEROFF) -> None:
        if missing_after < 1:
            raise ValueError("missing_after must be at least 1")
        self.missing_after = missing_after
        self.missing_state = missing_state
        self._vms: dict[str, VmEntry] = {}

    def __len__(self) -> int:
        return len(self._vms)

    def __iter__(self) -> Iterator[VmEntry]:
        return iter(self._vms.values())

    def get(self, deploy_id: str) -> VmEntry | None:
        return self._vms.get(deploy_id)

    def by_vm_id(self, vm_id: int) -> VmEntry | None:
        if vm_id == WILD_VM_ID:
            return None
        return next((e for e in self._vms.values() if e.vm_id == vm_id), None)

    def observe(self, seen: Iterable[Seen], at: float, *, sync: bool) -> Outcome:
        """Fold one probe's domains in; `sync` asks for a full SYNC_STATE report."""
        outcome = Outcome(report=None)
        changes: list[monitor_pb2.VmStateChange] = []
        vms = self._vms
        present: set[str] = set()
        for domain in seen:
            name = domain.name
            present.add(name)
            entry = vms.get(name)
            if entry is None:
                entry = VmEntry(name, vm_id_of(name), domain.state, domain.domid, at)
                vms[name] = entry
                outcome.added.append(name)
                changes.append(entry.change())
                continue
            entry.missing = 0
            entry.last_seen = at
            entry.domid = domain.domid
            if entry.state != domain.state:
                entry.state = domain.state
                outcome.changed.append(name)
                changes.append(entry.change())
        if len(present) != len(vms):
            for name in [n for n in vms if n not in present]:
                entry = vms[name]
                entry.missing += 1
                if entry.missing >= self.missing_after:
                    del vms[name]
                    outcome.removed.append(name)
                    # A VM already reported POWEROFF (seen shutting down) has nothing new to say.
                    if entry.state != self.missing_state:
                        changes.append(entry.change(self.missing_state))
        if sync:
            outcome.report = self.sync_report()
            # VMs declared missing just now are absent from a sync report, which MISSING_STATE
            # covers; say it explicitly anyway for readers that only look at `vms`.
            outcome.report.vms.extend(
                c for c in changes if c.deploy_id in outcome.removed and c.state == self.missing_state
            )
        elif changes:
            outcome.report = monitor_pb2.VmStateReport(
                sync=False, missing_state=self.missing_state, vms=changes
            )
        return outcome

    def sync_report(self) -> monitor_pb2.VmStateReport:
        """Every VM the table holds (still-missing ones with their last state)."""
        return monitor_pb2.VmStateReport(
            sync=True, missing_state=self.missing_state, vms=[e.change() for e in self._vms.values()]
        )

    def unreachable(self) -> monitor_pb2.VmStateReport | None:
        """The host cannot be asked: every VM becomes UNKNOWN (reported once)."""
        changes = []
        for entry in self._vms.values():
            if entry.state != UNKNOWN:
                entry.state = UNKNOWN
                changes.append(entry.change())
        if not changes:
            return None
        return monitor_pb2.VmStateReport(sync=False, missing_state=UNKNOWN, vms=changes)

    def unreachable_sync_report(self) -> monitor_pb2.VmStateReport:
        """A full report for a host in error: nothing can be said of any VM."""
        return monitor_pb2.VmStateReport(
            sync=True,
            missing_state=UNKNOWN,
            vms=[e.change(UNKNOWN) for e in self._vms.values()],
        )
