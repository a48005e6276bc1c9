"""Fan-out to Watch subscribers: filters, order, conflation, and a stuck reader resynced."""

from __future__ import annotations

import asyncio

from google.protobuf.timestamp_pb2 import Timestamp

from onexen.v1 import monitor_pb2
from services.monitor.hub import Hub


def change(host_id: int, n: int = 0) -> monitor_pb2.MonitorEvent:
    """A state change: never conflated."""
    return monitor_pb2.MonitorEvent(
        host_id=host_id, vm_state=monitor_pb2.VmStateReport(), timestamp=Timestamp(seconds=n)
    )


def sync(host_id: int, n: int = 0) -> monitor_pb2.MonitorEvent:
    return monitor_pb2.MonitorEvent(
        host_id=host_id, vm_state=monitor_pb2.VmStateReport(sync=True), timestamp=Timestamp(seconds=n)
    )


def beacon(host_id: int, n: int = 0) -> monitor_pb2.MonitorEvent:
    return monitor_pb2.MonitorEvent(
        host_id=host_id, beacon=monitor_pb2.Beacon(), timestamp=Timestamp(seconds=n)
    )


def usage(host_id: int, n: int = 0) -> monitor_pb2.MonitorEvent:
    return monitor_pb2.MonitorEvent(
        host_id=host_id, usage=monitor_pb2.HostUsage(used_cpu=n), timestamp=Timestamp(seconds=n)
    )


def seconds(events: list[monitor_pb2.MonitorEvent] | None) -> list[int]:
    return [e.timestamp.seconds for e in events or []]


async def test_subscribers_get_their_hosts_in_order() -> None:
    hub = Hub()
    one, every = hub.subscribe(1), hub.subscribe(None)
    hub.publish(1, [change(1, 1), change(1, 2)])
    hub.publish(2, [change(2, 3)])
    assert seconds(await one.get()) == [1, 2]
    assert seconds(await every.get()) == [1, 2, 3]
    hub.unsubscribe(one)
    hub.publish(1, [change(1, 4)])
    assert one.pending == 0 and hub.subscribers == 1


async def test_get_waits_for_the_next_event() -> None:
    hub = Hub()
    sub = hub.subscribe(None)
    waiting = asyncio.create_task(sub.get())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    hub.publish(3, [change(3)])
    assert [e.host_id for e in await asyncio.wait_for(waiting, 1) or []] == [3]


async def test_a_reader_behind_gets_the_latest_figures_and_every_state_change() -> None:
    hub = Hub()
    sub = hub.subscribe(None)
    hub.publish(1, [usage(1, 1), beacon(1, 2)])
    hub.publish(2, [usage(2, 3)])
    hub.publish(1, [change(1, 4), usage(1, 5)])
    hub.publish(1, [change(1, 6), beacon(1, 7)])
    # Host 1's usage 1 and beacon 2 were superseded; the changes come first.
    assert seconds(await sub.get()) == [4, 6, 3, 5, 7]
    assert sub.conflated == 2
    hub.publish(1, [usage(1, 8)])
    assert seconds(await sub.get()) == [8]  # nothing left to supersede once read


async def test_a_full_sync_report_supersedes_the_state_reports_queued_before_it() -> None:
    hub = Hub()
    sub = hub.subscribe(None)
    hub.publish(1, [change(1, 1), change(1, 2)])
    hub.publish(2, [change(2, 3)])
    hub.publish(1, [sync(1, 4)])
    hub.publish(1, [change(1, 5)])
    assert seconds(await sub.get()) == [3, 4, 5]


async def test_a_change_overtakes_figures_queued_before_it() -> None:
    hub = Hub()
    sub = hub.subscribe(None)
    hub.publish(1, [usage(1, 1)])
    hub.publish(2, [usage(2, 2)])
    assert await sub.wait() and seconds([sub.pop()]) == [1]  # type: ignore[list-item]
    hub.publish(3, [change(3, 3)])
    assert seconds([sub.pop(), sub.pop()]) == [3, 2]  # type: ignore[list-item]
    assert sub.pop() is None and sub.pending == 0


async def test_latest_values_do_not_count_against_the_bound() -> None:
    hub = Hub(queue_events=3)
    sub = hub.subscribe(None)
    for host in range(50):
        hub.publish(host, [usage(host), beacon(host)])
    hub.publish(7, [change(7), change(7)])
    assert sub.resyncs == 0 and sub.pending == 102


async def test_a_stuck_reader_is_dropped_and_resynced_without_stalling_the_publisher() -> None:
    hub = Hub(queue_events=5)
    slow, fast = hub.subscribe(None), hub.subscribe(None)
    for n in range(4):
        hub.publish(1, [change(1, n)])
    assert len(await fast.get() or []) == 4
    hub.publish(1, [change(1, 4), change(1, 5)])  # slow now holds 4 + 2 > 5
    hub.publish(1, [change(1, 6)])  # dropped for slow: its resync covers it
    assert slow.pending == 0 and slow.resyncs == 1
    assert await slow.get() is None  # "take a full sync now"
    hub.publish(1, [change(1, 7)])
    assert seconds(await slow.get()) == [7]
    assert seconds(await fast.get()) == [4, 5, 6, 7]


async def test_conflated_holes_do_not_grow_the_queue_without_bound() -> None:
    hub = Hub(queue_events=10)
    sub = hub.subscribe(None)
    for n in range(100):
        hub.publish(1, [beacon(1, n)])
    assert sub.pending == 1 and len(sub._figures) <= 22 and sub.resyncs == 0
    assert seconds(await sub.get()) == [99]
