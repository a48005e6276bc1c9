"""Fault and event injection for a simulated host (Python API behind ``onexen-simxen fault|event``).

Faults are rules stored in the state directory; the next matching ``xl``/``xentop`` call obeys:

* ``fail``: print ``stdout``/``stderr`` and exit with ``rc`` without doing anything;
* ``hang``: sleep until killed (as a toolstack stuck on xenstored would);
* ``slow``: wait ``delay`` seconds, then run normally.

A rule applies to a verb (``"create"``, ``"list"``, ``"xentop"``, or ``"*"``), optionally only when
the joined arguments contain ``match``, and to the next ``count`` calls (``None``: until cleared).

Events change the guests themselves, as if something happened inside or around them.
"""

from __future__ import annotations

import os
import time

from simxen.model import SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT, Domain, HostState
from simxen.records import asdict, dataclass
from simxen.store import Store

TYPE_CHECKING = False  # xl consults take_fault() on every call: no typing at run time
if TYPE_CHECKING:
    from typing import Any

StateDir = str | os.PathLike[str] | Store

FAULT_MODES = ("fail", "hang", "slow")


@dataclass
class Fault:
    verb: str
    mode: str = "fail"
    rc: int = 1
    stdout: str = ""
    stderr: str = ""
    delay: float = 0.0
    count: int | None = None
    match: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in FAULT_MODES:
            raise ValueError(f"fault mode must be one of {', '.join(FAULT_MODES)}, not {self.mode!r}")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be >= 1 (or None for 'until cleared')")

    def applies(self, verb: str, args: list[str]) -> bool:
        if self.verb not in ("*", verb):
            return False
        return self.match is None or self.match in " ".join(args)


def _store(state_dir: StateDir) -> Store:
    return state_dir if isinstance(state_dir, Store) else Store(state_dir)


# ----------------------------------------------------------------------------- faults


def add_fault(state_dir: StateDir, fault: Fault) -> None:
    with _store(state_dir).transaction() as state:
        state.faults.append(asdict(fault))


def fail(
    state_dir: StateDir,
    verb: str,
    *,
    rc: int = 1,
    stderr: str = "",
    stdout: str = "",
    count: int | None = None,
    match: str | None = None,
) -> None:
    add_fault(state_dir, Fault(verb, "fail", rc=rc, stderr=stderr, stdout=stdout, count=count, match=match))


def hang(state_dir: StateDir, verb: str, *, count: int | None = None, match: str | None = None) -> None:
    add_fault(state_dir, Fault(verb, "hang", count=count, match=match))


def slow(
    state_dir: StateDir, verb: str, delay: float, *, count: int | None = None, match: str | None = None
) -> None:
    add_fault(state_dir, Fault(verb, "slow", delay=delay, count=count, match=match))


def clear_faults(state_dir: StateDir, verb: str | None = None) -> None:
    with _store(state_dir).transaction() as state:
        state.faults = [f for f in state.faults if verb is not None and f["verb"] != verb]


def list_faults(state_dir: StateDir) -> list[Fault]:
    return [Fault(**f) for f in _store(state_dir).snapshot().faults]


def take_fault(store: Store, verb: str, args: list[str]) -> Fault | None:
    """The first rule for this call, used up by one if it has a count.

    Runs before every simulated command, so it only reads the fault list (no time advance)
    and writes only when a counted rule is used.
    """
    with store.locked():
        data = store.read_raw() or {}
        faults = data.get("faults") or []
        for i, raw in enumerate(faults):
            fault = Fault(**raw)
            if not fault.applies(verb, args):
                continue
            if fault.count is not None:
                if fault.count <= 1:
                    del faults[i]
                else:
                    raw["count"] = fault.count - 1
                store.write_raw(data)
            return fault
    return None


# ----------------------------------------------------------------------------- events


class NoSuchDomain(LookupError):
    pass


def _domain(state: HostState, dom: str | int) -> Domain:
    _, d = state.resolve(str(dom))
    if d is None:
        raise NoSuchDomain(f"no domain {dom!r} on this host")
    return d


def crash(state_dir: StateDir, dom: str | int, *, honour_on_crash: bool = False) -> None:
    """The guest crashes.  By default it stays listed as crashed (``---sc-`` in xl list,
    ``---c--`` in xentop) whatever its ``on_crash``; ``honour_on_crash`` lets xl's monitor
    apply the config's action (libxl's default: destroy) after ``cleanup_seconds``."""
    store = _store(state_dir)
    facts = store.facts()
    now = time.time()
    with store.transaction(now, facts) as state:
        d = _domain(state, dom)
        d.pending = None
        if honour_on_crash:
            state.guest_shutdown(d, SHUTDOWN_CRASH, now, facts)
        else:
            d.shutdown_reason = SHUTDOWN_CRASH
            d.cleanup_at = None
            d.monitor = False


def guest_poweroff(state_dir: StateDir, dom: str | int) -> None:
    """The guest powers itself off; xl's monitor applies ``on_poweroff`` (default: destroy)."""
    _guest_shutdown(state_dir, dom, SHUTDOWN_POWEROFF)


def guest_reboot(state_dir: StateDir, dom: str | int) -> None:
    """The guest reboots itself; xl's monitor applies ``on_reboot`` (default: restart, new domid)."""
    _guest_shutdown(state_dir, dom, SHUTDOWN_REBOOT)


def _guest_shutdown(state_dir: StateDir, dom: str | int, reason: int) -> None:
    store = _store(state_dir)
    facts = store.facts()
    now = time.time()
    with store.transaction(now, facts) as state:
        state.guest_shutdown(_domain(state, dom), reason, now, facts)


def pause(state_dir: StateDir, dom: str | int) -> None:
    with _store(state_dir).transaction() as state:
        _domain(state, dom).paused = True


def unpause(state_dir: StateDir, dom: str | int) -> None:
    with _store(state_dir).transaction() as state:
        _domain(state, dom).paused = False


def ignore_acpi(state_dir: StateDir, dom: str | int, ignore: bool = True) -> None:
    """The guest ignores (or again honours) shutdown and reboot requests."""
    with _store(state_dir).transaction() as state:
        _domain(state, dom).ignore_acpi = ignore


def set_load(state_dir: StateDir, dom: str | int, load: float) -> None:
    """CPU fraction per online vCPU; 0.5 or more shows the guest as running (``r``)."""
    if not 0.0 <= load <= 1.0:
        raise ValueError("load must be within 0.0 .. 1.0")
    with _store(state_dir).transaction() as state:
        _domain(state, dom).load = load


def add_wild_domain(
    state_dir: StateDir,
    name: str,
    *,
    memory_mb: int = 128,
    vcpus: int = 1,
    dtype: str = "pv",
    paused: bool = False,
) -> int:
    """A guest started by hand on the host (not by the driver); returns its domid."""
    import uuid as uuidlib

    store = _store(state_dir)
    facts = store.facts()
    now = time.time()
    b_info: dict[str, Any] = {
        "max_vcpus": vcpus,
        "avail_vcpus": list(range(vcpus)),
        "max_memkb": memory_mb * 1024,
        "target_memkb": memory_mb * 1024,
        "sched_params": {},
        "claim_mode": "True",
    }
    if dtype in ("pv", "pvh"):
        b_info["kernel"] = "/boot/vmlinuz"
    b_info[f"type.{dtype}"] = {}
    b_info["arch_arm"] = {}
    b_info["arch_x86"] = {}
    config = {
        "c_info": {"type": dtype, "name": name, "uuid": str(uuidlib.uuid4()), "run_hotplug_scripts": "True"},
        "b_info": b_info,
        "on_reboot": "restart",
        "on_soft_reset": "soft_reset",
    }
    with store.transaction(now, facts) as state:
        dom = state.build_domain(config, now, facts, paused=paused)
        return dom.domid


def domains(state_dir: StateDir) -> list[dict[str, Any]]:
    """A summary of every domain now (for assertions in tests)."""
    store = _store(state_dir)
    facts = store.facts()
    now = time.time()
    out = []
    for d in store.snapshot(now, facts).domains:
        out.append(
            {
                "domid": d.domid,
                "name": d.name,
                "state": d.xl_state(now),
                "memory_kb": d.current_memkb(),
                "vcpus": d.online_vcpus,
                "cpu_seconds": d.cpu_seconds,
                "nics": [n.spec for n in d.nics],
                "disks": [x.spec for x in d.disks],
            }
        )
    return out
