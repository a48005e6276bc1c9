"""The IM_MAD loop in-process against a fake MonitorService: START/STOP_MONITOR, the Watch
stream as messages (never repeated, never out of order), the monitor going away and coming
back, and the network mode with monitord's key."""

from __future__ import annotations

import asyncio
import base64
import socket
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from adapter_fakes import FakeMonitor
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from adapter.common.lineio import LineWriter, OversizedLine
from adapter.im.driver import ImDriver, ImSettings
from adapter.im.protocol import Message, Network, encode_payload
from adapter.im.push import NetworkSink
from adapter.scripted import host_action, monitor_configuration, parse_message
from onexen.runtime.errors import Unavailable
from onexen.v1 import common_pb2, monitor_pb2

RUNNING = common_pb2.VM_STATE_RUNNING


class Captured(LineWriter):
    def __init__(self) -> None:
        super().__init__(-1)
        self.lines: list[str] = []

    def write_line(self, line: str) -> None:
        self.lines.append(line)

    def messages(self) -> list[Message]:
        return [m for m in map(parse_message, self.lines) if m is not None]


class Feed:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def send(self, line: str) -> None:
        self.queue.put_nowait(line.encode())

    def close(self) -> None:
        self.queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[bytes | OversizedLine]:
        while (line := await self.queue.get()) is not None:
            yield line


def ev(host: int, at: float, **payload: Any) -> monitor_pb2.MonitorEvent:
    event = monitor_pb2.MonitorEvent(host_id=host, **payload)
    event.timestamp.seconds = int(at)
    return event


def state(host: int, at: float, vm_id: int, *, sync: bool = False) -> monitor_pb2.MonitorEvent:
    change = monitor_pb2.VmStateChange(vm_id=vm_id, deploy_id=f"one-{vm_id}", state=RUNNING)
    report = monitor_pb2.VmStateReport(sync=sync, missing_state=common_pb2.VM_STATE_POWEROFF, vms=[change])
    return ev(host, at, vm_state=report)


def usage(host: int, at: float, cpu: int = 5) -> monitor_pb2.MonitorEvent:
    return ev(host, at, usage=monitor_pb2.HostUsage(used_cpu=cpu, free_cpu=200 - cpu))


def first_report(host: int, at: float) -> list[monitor_pb2.MonitorEvent]:
    return [
        ev(host, at, system=monitor_pb2.SystemHost(hypervisor="xen", total_cpu=200, hostname=f"xen{host}")),
        usage(host, at),
        ev(host, at, vm_monitoring=monitor_pb2.VmMonitoringReport()),
        state(host, at, 1, sync=True),
    ]


def start_line(host: int, periods: dict[str, int] | None = None, config: str | None = None) -> str:
    configuration = config if config is not None else monitor_configuration(periods)
    return f"START_MONITOR - {host} 0 {encode_payload(host_action(host, f'xen{host}', configuration))}"


async def until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


class Harness:
    def __init__(self, **settings: Any) -> None:
        self.monitor = FakeMonitor()
        self.out = Captured()
        self.feed = Feed()
        defaults: dict[str, Any] = {
            "datastore_location": "/var/lib/one/datastores",
            "reconnect_seconds": (0.01,),
        }
        self.driver = ImDriver(self.monitor, self.out, ImSettings(**{**defaults, **settings}))
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Harness:
        self.task = asyncio.create_task(self.driver.serve(self.feed))
        await until(lambda: "watch" in self.monitor.names())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.feed.close()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)

    def of(self, kind: str, host: int | None = None) -> list[Message]:
        return [m for m in self.out.messages() if m.type == kind and (host is None or m.oid == host)]


async def test_start_monitor_answers_the_first_report_then_streams_each_event_once() -> None:
    async with Harness() as h:
        h.monitor.first[4] = first_report(4, 100)
        h.feed.send("INIT")
        h.feed.send(start_line(4, {"STATE_VM": 2}))
        await until(lambda: h.of("START_MONITOR"))
        add = h.monitor.calls[-1][1]
        assert (add.host_id, add.host_name, add.periods.state_vm_seconds) == (4, "xen4", 2)
        assert add.datastore_location == "/var/lib/one/datastores"
        assert add.monitor_configuration.startswith("<MONITOR_CONFIGURATION>")
        (reply,) = h.of("START_MONITOR")
        assert (reply.status, reply.oid, reply.timestamp) == ("SUCCESS", 4, 100)
        assert (
            reply.data.startswith("<MONITOR_MESSAGES><SYSTEM_HOST>")
            and "<TIMESTAMP>100</TIMESTAMP>" in reply.data
        )
        assert "<MONITOR_VM></MONITOR_VM>" in reply.data  # no VMs yet: an empty group

        # The report was also published on the stream: not sent twice. Then live events.
        h.monitor.publish(usage(4, 99))  # older than what monitord has: dropped
        h.monitor.publish(state(4, 101, 7))
        h.monitor.publish(usage(4, 101, cpu=9))
        h.monitor.publish(ev(4, 102, beacon=monitor_pb2.Beacon()))
        h.monitor.publish(usage(5, 103))  # a host this monitord did not start
        await until(lambda: h.of("BEACON_HOST"))
        kinds = [(m.type, m.timestamp) for m in h.out.messages() if m.type != "START_MONITOR"]
        assert kinds == [("STATE_VM", 101), ("MONITOR_HOST", 101), ("BEACON_HOST", 102)]
        assert h.out.lines[0] == "INIT SUCCESS - -"
        assert 'DEPLOY_ID="one-7", STATE="RUNNING"' in h.of("STATE_VM")[0].data


async def test_a_first_probe_that_failed_is_a_start_monitor_failure_with_the_reason() -> None:
    async with Harness() as h:
        reason = "cannot reach Xen host xen1 (10.0.0.1:22): Connection refused [HOST_UNREACHABLE]"
        h.monitor.first[1] = [ev(1, 50, host_error=monitor_pb2.HostError(reason=reason))]
        h.feed.send(start_line(1))
        await until(lambda: h.of("START_MONITOR"))
        (reply,) = h.of("START_MONITOR")
        assert (reply.status, reply.data) == ("FAILURE", reason)
        # When the host comes back the monitor streams its full report: monitord gets it.
        for event in first_report(1, 60):
            h.monitor.publish(event)
        await until(lambda: h.of("MONITOR_VM"))
        assert [m.type for m in h.out.messages()[1:]] == [
            "SYSTEM_HOST",
            "MONITOR_HOST",
            "MONITOR_VM",
            "STATE_VM",
        ]


async def test_monitor_unreachable_puts_hosts_in_error_once_and_they_recover() -> None:
    async with Harness() as h:
        for host in (1, 2):
            h.monitor.first[host] = first_report(host, 100)
            h.feed.send(start_line(host))
        await until(lambda: len(h.of("START_MONITOR")) == 2)
        h.monitor.down()
        await until(lambda: len(h.of("MONITOR_HOST")) == 2)
        await asyncio.sleep(0.1)  # several reconnect attempts fail meanwhile
        failures = h.of("MONITOR_HOST")
        assert [(m.oid, m.status) for m in failures] == [(1, "FAILURE"), (2, "FAILURE")]
        assert (
            failures[0].data
            == "not monitored, onexen monitor service unavailable: the onexen monitor service went away"
        )

        # A host started while the monitor is away fails at once, with the reason...
        h.monitor.first[3] = first_report(3, 100)
        h.feed.send(start_line(3))
        await until(lambda: len(h.of("START_MONITOR")) == 3)
        assert h.of("START_MONITOR", 3)[0].status == "FAILURE"

        # ...and every host is added again once the monitor is back (a new first report).
        for host in (1, 2, 3):
            h.monitor.first[host] = first_report(host, 200)
        h.monitor.up()
        await until(lambda: len(h.of("SYSTEM_HOST")) == 3)
        assert sorted(m.oid for m in h.of("SYSTEM_HOST")) == [1, 2, 3]
        assert all(m.status == "SUCCESS" and m.timestamp == 200 for m in h.of("SYSTEM_HOST"))
        assert [n for n in h.monitor.names() if n == "add_host"] == ["add_host"] * 6


async def test_stop_monitor_removes_the_host_and_its_events_stop() -> None:
    async with Harness() as h:
        h.monitor.first[2] = first_report(2, 100)
        h.feed.send(start_line(2))
        await until(lambda: h.of("START_MONITOR"))
        h.feed.send(f"STOP_MONITOR - 2 0 {encode_payload(host_action(2, 'xen2', monitor_configuration()))}")
        await until(lambda: h.of("STOP_MONITOR"))
        assert h.of("STOP_MONITOR")[0].status == "SUCCESS"
        assert h.monitor.calls[-1][1].host_id == 2
        h.monitor.publish(usage(2, 300))
        h.monitor.publish(usage(2, 301))
        await asyncio.sleep(0.05)
        assert h.of("MONITOR_HOST") == []


async def test_lines_it_cannot_read() -> None:
    async with Harness() as h:
        h.feed.send("START_MONITOR - 3 0 %%%")
        h.feed.send("START_MONITOR - 4 0 " + encode_payload("<nothing/>"))
        h.feed.send("garbage")
        h.feed.send("MONITOR_VM SUCCESS 3 0 AAAA")
        await until(lambda: len(h.out.lines) == 4)
        replies = h.out.messages()
        assert [(m.type, m.status, m.oid) for m in replies] == [
            ("START_MONITOR", "FAILURE", 3),
            ("START_MONITOR", "FAILURE", 4),
            ("LOG", "E", -1),
            ("LOG", "E", 3),
        ]
        assert "no <HOST>" in replies[1].data


async def test_retries_add_host_when_the_monitor_is_unreachable() -> None:
    async with Harness(retries=2) as h:
        h.monitor.first[1] = first_report(1, 100)
        calls = 0
        real = h.monitor.add_host

        async def flaky(request: monitor_pb2.AddHostRequest, *, timeout: float | None) -> Any:
            nonlocal calls
            calls += 1
            if calls < 2:
                raise Unavailable("refused", reason="SERVICE_UNREACHABLE")
            return await real(request, timeout=timeout)

        h.monitor.add_host = flaky  # type: ignore[method-assign]
        h.feed.send(start_line(1))
        await until(lambda: h.of("START_MONITOR"), timeout=5)
        assert h.of("START_MONITOR")[0].status == "SUCCESS" and calls == 2


# ---------------------------------------------------------------------------- network mode


class FakeMonitord:
    """monitord's UDP and TCP listeners on one port; decrypts with its private key."""

    def __init__(self, key: rsa.RSAPrivateKey | None = None) -> None:
        self.key = key
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.setblocking(False)
        self.port = self.udp.getsockname()[1]
        self.received: list[tuple[str, Message]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._tcp, "127.0.0.1", self.port)
        asyncio.get_running_loop().add_reader(self.udp.fileno(), self._udp)

    def _decode(self, transport: str, raw: bytes) -> None:
        kind, status, oid, ts, payload = raw.decode().split()
        data = zlib.decompress(base64.b64decode(payload))
        if self.key is not None:
            size = self.key.key_size // 8
            data = b"".join(
                self.key.decrypt(data[i : i + size], padding.PKCS1v15()) for i in range(0, len(data), size)
            )
        self.received.append((transport, Message(kind, status, int(oid), int(ts), data.decode())))

    def _udp(self) -> None:
        raw, _ = self.udp.recvfrom(65536)
        self._decode("udp", raw)

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._decode("tcp", await reader.read())
        writer.close()

    async def stop(self) -> None:
        asyncio.get_running_loop().remove_reader(self.udp.fileno())
        self.udp.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.mark.parametrize("encrypted", [False, True])
async def test_network_mode_sends_as_the_host_agent(encrypted: bool) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if encrypted else None
    pubkey = (
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode()
        if key is not None
        else ""
    )
    monitord = FakeMonitord(key)
    await monitord.start()
    h = Harness()

    def sink(network: Network) -> NetworkSink:
        from adapter.im.push import load_public_key

        assert network.port == monitord.port
        return NetworkSink("127.0.0.1", network.port, load_public_key(network.pubkey))

    h.driver._network_sink = sink
    try:
        async with h:
            h.monitor.first[6] = first_report(6, 100)
            h.feed.send(start_line(6, config=monitor_configuration(port=monitord.port, pubkey=pubkey)))
            await until(lambda: h.of("START_MONITOR"))
            assert h.of("START_MONITOR")[0].status == "SUCCESS"  # the reply stays on the pipe
            h.monitor.publish(state(6, 101, 8))
            h.monitor.publish(usage(6, 101, cpu=42))
            await until(lambda: len(monitord.received) == 2)
        assert sorted((t, m.type) for t, m in monitord.received) == [
            ("tcp", "STATE_VM"),
            ("udp", "MONITOR_HOST"),
        ]
        usage_message = next(m for _, m in monitord.received if m.type == "MONITOR_HOST")
        assert "USEDCPU=42" in usage_message.data and usage_message.oid == 6
        assert not [m for m in h.out.messages() if m.type in ("STATE_VM", "MONITOR_HOST")]
    finally:
        await monitord.stop()
