"""The IM_MAD driver loop: START/STOP_MONITOR become AddHost/RemoveHost, the monitor's
Watch stream becomes monitord's messages.

START_MONITOR is answered with the host's first full report (the `<MONITOR_MESSAGES>`
document the stock agent printed); afterwards every event of a started host goes to
monitord as the agent would have sent it. Messages are never repeated or sent out of
order: per host and message type, an event not newer than the last one sent is dropped
(monitord would drop it too), which covers both the Watch stream's opening snapshot and
AddHost's report arriving twice (returned, and published on the stream).

When the monitor service cannot be reached, every started host gets one
`MONITOR_HOST FAILURE` with the reason (monitord puts it in ERROR); once the stream is
back, each host is added again, and its fresh first report brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

from adapter.common.lineio import LineWriter, OversizedLine
from adapter.common.scheduler import Job, Scheduler
from adapter.im import encoding, protocol
from adapter.im.protocol import Control, HostStart, Malformed, Message
from adapter.im.push import Sink, StdoutSink
from adapter.im.services import Monitor
from onexen.runtime.errors import OnexenError, Unavailable
from onexen.runtime.logging import get_logger
from onexen.v1 import monitor_pb2

_log = get_logger("adapter.im")

T = TypeVar("T")
_Handler: TypeAlias = Callable[[HostStart], Coroutine[Any, Any, None]]

# Pauses between attempts to reach the monitor again (as the agent's send back-off).
RECONNECT_SECONDS = (1.0, 1.0, 1.0, 2.0, 4.0, 8.0, 8.0, 16.0)
ADD_HOST_SECONDS = 90.0  # a first probe and the import of a host's wild VMs


@dataclass
class _Host:
    start: HostStart
    request: monitor_pb2.AddHostRequest
    starting: bool = True  # START_MONITOR not answered yet: its events wait
    held: list[monitor_pb2.MonitorEvent] = field(default_factory=list)
    needs_add: bool = False  # the monitor does not (or may not) watch it
    unreachable: bool = False  # this driver told monitord the monitor is unreachable


@dataclass(frozen=True)
class ImSettings:
    concurrency: int = 15
    retries: int = 0
    timeout: float | None = None
    datastore_location: str = ""
    reconnect_seconds: tuple[float, ...] = RECONNECT_SECONDS
    readd_seconds: float = 10.0


class ImDriver:
    def __init__(
        self,
        monitor: Monitor,
        out: LineWriter,
        settings: ImSettings,
        *,
        network_sink: Callable[[protocol.Network], Sink] | None = None,
    ) -> None:
        self.monitor = monitor
        self.out = out
        self.settings = settings
        self.sink: Sink = StdoutSink(out)
        # In network mode the destination comes with monitord's configuration (START_MONITOR).
        self._network_sink = network_sink
        self._network: protocol.Network | None = None
        self.scheduler = Scheduler(settings.concurrency)
        self.hosts: dict[int, _Host] = {}
        self._last: dict[tuple[int, str], float] = {}
        self._connected = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self._readd_task: asyncio.Task[None] | None = None
        self.sent = 0

    # ------------------------------------------------------------------ main loop

    async def serve(self, lines: AsyncIterable[bytes | OversizedLine]) -> None:
        self._watch_task = asyncio.create_task(self._watch(), name="im-watch")
        try:
            async for raw in lines:
                if isinstance(raw, OversizedLine):
                    self._log("E", -1, f"ignored an input line of {raw.size} bytes")
                    continue
                if not self.handle(raw.decode("utf-8", errors="replace")):
                    break
            self.scheduler.drop_queued()
            await self.scheduler.wait_idle()
        finally:
            for task in (self._watch_task, self._readd_task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        _log.info("finished", messages=self.sent)

    def handle(self, line: str) -> bool:
        parsed = protocol.parse_line(line)
        if parsed is None:
            return True
        if isinstance(parsed, Control):
            if parsed.command == protocol.INIT:
                self.out.write_line("INIT SUCCESS - -")
                return True
            _log.info("finalize")
            return False
        if isinstance(parsed, Malformed):
            self._malformed(parsed)
            return True
        if parsed.type == protocol.START_MONITOR:
            self._submit(parsed, self._start)
        elif parsed.type == protocol.STOP_MONITOR:
            self._submit(parsed, self._stop)
        else:
            self._log("E", parsed.oid, f"one_im_grpc does not handle {parsed.type} messages")
        return True

    def _submit(self, message: Message, handler: _Handler) -> None:
        try:
            start = protocol.read_action(message.data, message.oid)
        except protocol.ActionError as exc:
            self._reply(
                message.type, "FAILURE", message.oid, f"Cannot read the {message.type} payload: {exc}"
            )
            return
        self.scheduler.submit(Job(key=start.host_id, host="", run=lambda: handler(start)))

    # ------------------------------------------------------------------ START / STOP

    def _request(self, start: HostStart) -> monitor_pb2.AddHostRequest:
        return monitor_pb2.AddHostRequest(
            host_id=start.host_id,
            host_name=start.host_name,
            periods=monitor_pb2.ProbePeriods(**start.periods),
            datastore_location=self.settings.datastore_location,
            monitor_configuration=start.configuration,
        )

    async def _start(self, start: HostStart) -> None:
        if self._network_sink is not None and start.network != self._network:
            self._network = start.network
            try:
                self.sink = self._network_sink(start.network)
            except (OSError, ValueError) as exc:
                self._reply(protocol.START_MONITOR, "FAILURE", start.host_id, f"cannot reach monitord: {exc}")
                return
        host = _Host(start, self._request(start))
        previous = self.hosts.get(start.host_id)
        if previous is not None:
            host.held = previous.held
        self.hosts[start.host_id] = host
        try:
            response = await self._add(host)
        except OnexenError as exc:
            host.needs_add = True
            host.starting = False
            self._reply(protocol.START_MONITOR, "FAILURE", start.host_id, exc.message)
            self._schedule_readd()
            return
        found = [(event, m) for event in response.events for m in encoding.messages(event)]
        failure = next((m for _, m in found if m.status == encoding.FAILURE), None)
        at = max((m.timestamp for _, m in found), default=int(time.time()))
        if failure is not None:
            self._reply(protocol.START_MONITOR, "FAILURE", start.host_id, failure.data, at)
        else:
            document = encoding.monitor_messages([m for _, m in found], at)
            self._reply(protocol.START_MONITOR, "SUCCESS", start.host_id, document, at)
        for event, message in found:
            self._mark_sent(message, encoding.timestamp(event))
        host.starting = False
        held, host.held = host.held, []
        for event in held:
            await self._emit(event)
        _log.info("host_started", host=start.host_name, host_id=start.host_id, ok=failure is None)

    async def _stop(self, start: HostStart) -> None:
        self.hosts.pop(start.host_id, None)
        for key in [k for k in self._last if k[0] == start.host_id]:
            del self._last[key]
        try:
            await self._call(
                lambda: self.monitor.remove_host(
                    monitor_pb2.RemoveHostRequest(host_id=start.host_id), timeout=self._timeout()
                )
            )
        except OnexenError as exc:
            self._reply(protocol.STOP_MONITOR, "FAILURE", start.host_id, exc.message)
            return
        self._reply(protocol.STOP_MONITOR, "SUCCESS", start.host_id, "")
        _log.info("host_stopped", host=start.host_name, host_id=start.host_id)

    async def _add(self, host: _Host) -> monitor_pb2.AddHostResponse:
        return await self._call(lambda: self.monitor.add_host(host.request, timeout=self._timeout()))

    def _timeout(self) -> float:
        return self.settings.timeout or ADD_HOST_SECONDS

    async def _call(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """A monitor call, retried -r times (1 s apart) when the service cannot be reached."""
        tries = 0
        while True:
            try:
                return await attempt()
            except Unavailable:
                if tries >= self.settings.retries:
                    raise
                tries += 1
                await asyncio.sleep(1.0)

    # ------------------------------------------------------------------ the Watch stream

    async def _watch(self) -> None:
        failures = 0
        while True:
            try:
                async for event in self.monitor.watch():
                    if event is None:
                        failures = 0
                        self._connected.set()
                        _log.info("watching")
                        self._schedule_readd()
                        continue
                    await self._on_event(event)
                raise Unavailable("the monitor service ended the Watch stream", reason="WATCH_ENDED")
            except OnexenError as exc:
                self._connected.clear()
                self._unreachable(exc)
            pauses = self.settings.reconnect_seconds
            await asyncio.sleep(pauses[min(failures, len(pauses) - 1)])
            failures += 1

    def _unreachable(self, exc: OnexenError) -> None:
        """Tell monitord, once per outage and host, that its monitoring stopped and why."""
        _log.warning("monitor_unreachable", error=exc.message, reason=exc.reason)
        now = int(time.time())
        for host_id, host in self.hosts.items():
            host.needs_add = True
            if host.unreachable or host.starting:
                continue
            host.unreachable = True
            reason = f"not monitored, onexen monitor service unavailable: {exc.message}"
            self._send_now(Message(encoding.MONITOR_HOST, encoding.FAILURE, host_id, now, reason))

    def _schedule_readd(self) -> None:
        if self._readd_task is None or self._readd_task.done():
            self._readd_task = asyncio.create_task(self._readd(), name="im-readd")

    async def _readd(self) -> None:
        """Add again every host the monitor may not watch (it restarted, or AddHost failed)."""
        while True:
            await self._connected.wait()
            waiting = [h for h in self.hosts.values() if h.needs_add and not h.starting]
            if not waiting:
                return
            failed = False
            for host in waiting:
                try:
                    response = await self._add(host)
                except OnexenError as exc:
                    _log.warning("readd_failed", host=host.start.host_name, error=exc.message)
                    failed = True
                    continue
                if self.hosts.get(host.start.host_id) is not host:
                    continue  # stopped meanwhile
                host.needs_add = host.unreachable = False
                for event in response.events:
                    await self._emit(event)
                _log.info("host_readded", host=host.start.host_name, host_id=host.start.host_id)
            if failed:
                # Tried again a little later (the monitor answered, but not in time, say).
                await asyncio.sleep(self.settings.readd_seconds)

    async def _on_event(self, event: monitor_pb2.MonitorEvent) -> None:
        host = self.hosts.get(event.host_id)
        if host is None:
            return  # a host another monitord started, or one stopped
        if host.starting:
            host.held.append(event)
            return
        await self._emit(event)

    async def _emit(self, event: monitor_pb2.MonitorEvent) -> None:
        at = encoding.timestamp(event)
        for message in encoding.messages(event):
            if not self._mark_sent(message, at):
                continue
            await self._send(message)

    def _mark_sent(self, message: Message, at: float) -> bool:
        """Record `message` as sent; False when one as new was sent already."""
        key = (message.oid, message.type)
        if self._last.get(key, float("-inf")) >= at:
            return False
        self._last[key] = at
        return True

    async def _send(self, message: Message) -> None:
        try:
            await self.sink.send(message)
            self.sent += 1
        except (OSError, TimeoutError) as exc:
            _log.warning("send_failed", type=message.type, host_id=message.oid, error=str(exc))

    def _send_now(self, message: Message) -> None:
        # Host errors always go on the driver's own output: monitord reads it in any mode.
        self.out.write_line(protocol.message_line(message))
        self.sent += 1

    # ------------------------------------------------------------------ output

    def _reply(self, kind: str, status: str, host_id: int, data: str, at: int | None = None) -> None:
        when = int(time.time()) if at is None else at
        self.out.write_line(protocol.message_line(Message(kind, status, host_id, when, data)))

    def _log(self, severity: str, host_id: int, text: str) -> None:
        self.out.write_line(protocol.message_line(Message("LOG", severity, host_id, int(time.time()), text)))

    def _malformed(self, bad: Malformed) -> None:
        _log.warning("malformed", why=bad.why)
        if bad.type in (protocol.START_MONITOR, protocol.STOP_MONITOR) and bad.oid is not None:
            self._reply(bad.type, "FAILURE", bad.oid, f"Cannot read the request: {bad.why}")
        else:
            self._log("E", bad.oid if bad.oid is not None else -1, f"one_im_grpc: {bad.why}")
