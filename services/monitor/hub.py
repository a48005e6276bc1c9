"""Fan-out of monitor events to Watch streams.

Publishing never waits: each subscriber has its own bounded queue.

State changes and host errors go first: a reader gets every queued STATE_VM report and
HOST_ERROR, in order, before the latest-value reports (SYSTEM_HOST, MONITOR_HOST,
MONITOR_VM, BEACON_HOST), and an urgent event published while a long run of those is being
written overtakes the rest of it. (A grpc.aio server stream writes about one message per
event-loop turn, and a busy loop turns slowly: a reader of two thousand hosts can be a
second or more behind when the machine is loaded, and a state change must not wait behind
a second of figures.)

A reader that falls behind has its latest-value reports **conflated**, as a market-data
feed would: one still queued when a newer one of the same kind for the same host arrives is
dropped; and a full SYNC_STATE report drops the host's STATE_VM reports still queued before
it (it states every VM). The reader loses only stale figures.

Latest-value events are therefore bounded by hosts x 4; the others count against the
queue's bound. Past it (a reader that stopped reading) the reader is **dropped and
resynced**: its queue is emptied, nothing more is queued for it, and its next read gets a
fresh full sync of the hosts it watches, then live events again. A slow reader thus costs
bounded memory and never delays a probe.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from onexen.v1 import monitor_pb2

DEFAULT_QUEUE_EVENTS = 10_000

# Reports that carry a host's latest figures: a newer one makes an older one worthless.
CONFLATED = frozenset({"system", "usage", "vm_monitoring", "beacon"})


class _Slot:
    __slots__ = ("event",)

    def __init__(self, event: monitor_pb2.MonitorEvent) -> None:
        self.event: monitor_pb2.MonitorEvent | None = event


@dataclass(eq=False)
class Subscription:
    """One Watch stream: `host_id` None watches every host."""

    host_id: int | None
    limit: int
    _urgent: deque[_Slot] = field(default_factory=deque)  # STATE_VM and HOST_ERROR, in order
    _figures: deque[_Slot] = field(default_factory=deque)  # latest-value reports, in order
    _latest: dict[tuple[int, str], _Slot] = field(default_factory=dict)
    _states: dict[int, list[_Slot]] = field(default_factory=dict)  # queued STATE_VM reports by host
    _pending: int = 0  # events queued and not superseded
    _bounded: int = 0  # of those, the urgent ones (they count against `limit`)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    resyncs: int = 0
    conflated: int = 0
    closed: bool = False

    def _drop(self, slot: _Slot, urgent: bool) -> None:
        if slot.event is not None:
            slot.event = None
            self._pending -= 1
            self._bounded -= urgent
            self.conflated += 1

    def _offer(self, host_id: int, events: Sequence[tuple[str, monitor_pb2.MonitorEvent]]) -> None:
        if self.overflowed:
            return  # the resync the reader gets next covers these
        for kind, event in events:
            slot = _Slot(event)
            if kind in CONFLATED:
                key = (host_id, kind)
                older = self._latest.get(key)
                if older is not None:
                    self._drop(older, urgent=False)
                self._latest[key] = slot
                self._figures.append(slot)
            else:
                self._bounded += 1
                if kind == "vm_state":
                    queued = self._states.setdefault(host_id, [])
                    if event.vm_state.sync:
                        for older in queued:
                            self._drop(older, urgent=True)
                        queued.clear()
                    queued.append(slot)
                self._urgent.append(slot)
            self._pending += 1
        if self._bounded > self.limit:
            self._reset()
            self.overflowed = True
            self.resyncs += 1
        elif len(self._figures) > 2 * (self._pending + self.limit):
            self._figures = deque(s for s in self._figures if s.event is not None)
        self._ready.set()

    def _reset(self) -> None:
        self._urgent.clear()
        self._figures.clear()
        self._latest.clear()
        self._states.clear()
        self._pending = self._bounded = 0

    def pop(self) -> monitor_pb2.MonitorEvent | None:
        """The next queued event, urgent ones first; None when there is none."""
        for queue, urgent in ((self._urgent, True), (self._figures, False)):
            while queue:
                slot = queue.popleft()
                event = slot.event
                if event is None:
                    continue  # superseded
                slot.event = None  # delivered: nothing left to supersede
                self._pending -= 1
                self._bounded -= urgent
                if not self._pending:
                    self._latest.clear()
                    self._states.clear()
                return event
        return None

    async def wait(self) -> bool:
        """Wait until an event is queued; False when the reader must take a full sync instead."""
        while not self._pending and not self.overflowed:
            self._ready.clear()
            await self._ready.wait()
        if self.overflowed:
            self.overflowed = False
            return False
        return True

    async def get(self) -> list[monitor_pb2.MonitorEvent] | None:
        """Every queued event (waiting for one), urgent ones first; None: resync needed."""
        if not await self.wait():
            return None
        events = []
        while (event := self.pop()) is not None:
            events.append(event)
        return events

    @property
    def pending(self) -> int:
        return self._pending


class Hub:
    def __init__(self, queue_events: int = DEFAULT_QUEUE_EVENTS) -> None:
        if queue_events < 1:
            raise ValueError("a subscriber queue must hold at least one event")
        self.queue_events = queue_events
        self._by_host: dict[int | None, set[Subscription]] = {}
        self.published = 0

    def subscribe(self, host_id: int | None) -> Subscription:
        sub = Subscription(host_id, self.queue_events)
        self._by_host.setdefault(host_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.closed = True
        subs = self._by_host.get(sub.host_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_host[sub.host_id]

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._by_host.values())

    def publish(self, host_id: int, events: Sequence[monitor_pb2.MonitorEvent]) -> None:
        """Queue `events` (all of one host) for every subscriber that watches it."""
        if not events:
            return
        self.published += len(events)
        kinded: list[tuple[str, monitor_pb2.MonitorEvent]] | None = None
        for subs in self._targets(host_id):
            if kinded is None:
                kinded = [(e.WhichOneof("payload") or "", e) for e in events]
            for sub in subs:
                sub._offer(host_id, kinded)

    def _targets(self, host_id: int) -> Iterable[set[Subscription]]:
        for key in (host_id, None):
            subs = self._by_host.get(key)
            if subs:
                yield subs
