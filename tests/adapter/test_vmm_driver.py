"""The VM_MAD loop in-process: one reply per request, concurrency limits, DRIVER_CANCEL,
FINALIZE, and lines that cannot be read."""

from __future__ import annotations

import asyncio
import base64
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from adapter_fakes import FakeExecutor, World, settings, world

from adapter.common.lineio import LineWriter, OversizedLine
from adapter.common.scheduler import Job, Scheduler
from adapter.scripted import parse_reply
from adapter.scripted_vm import OnedVm
from adapter.vmm.driver import VmmDriver


class Captured(LineWriter):
    def __init__(self) -> None:
        super().__init__(-1)
        self.lines: list[str] = []

    def write_line(self, line: str) -> None:
        self.lines.append(line)


class Feed:
    """oned's side of the pipe: lines pushed by the test, then end of input."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def send(self, line: str) -> None:
        self.queue.put_nowait(line.encode())

    def close(self) -> None:
        self.queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[bytes | OversizedLine]:
        while (line := await self.queue.get()) is not None:
            yield line


def request(action: str, vm_id: int, xml: str) -> str:
    return f"{action} {vm_id} {base64.b64encode(xml.encode()).decode()}"


class SlowExecutor(FakeExecutor):
    """Deploys take a moment; records how many ran at once, per host and in all."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.running: Counter[str] = Counter()
        self.max_per_host = 0
        self.max_total = 0

    async def deploy(self, request: Any, *, timeout: float | None, tag: str) -> Any:
        self.running[request.host] += 1
        self.max_per_host = max(self.max_per_host, self.running[request.host])
        self.max_total = max(self.max_total, sum(self.running.values()))
        try:
            await asyncio.sleep(0.02)
            return await super().deploy(request, timeout=timeout, tag=tag)
        finally:
            self.running[request.host] -= 1


def driver_for(w: World, **kw: Any) -> tuple[VmmDriver, Captured]:
    out = Captured()
    return VmmDriver(w.ports, settings(), out, **kw), out


def vms(tmp_path: Path, count: int, hosts: int = 3) -> list[OnedVm]:
    return [
        OnedVm(i, f"xen{i % hosts + 1}", datastores=tmp_path / "ds", vms_dir=tmp_path / "vms", context=False)
        for i in range(count)
    ]


async def test_init_then_exactly_one_reply_per_request_within_the_limits(tmp_path: Path) -> None:
    w = world()
    w.executor = SlowExecutor(calls=w.executor.calls)
    driver, out = driver_for(w, concurrency=15)
    feed = Feed()
    serving = asyncio.create_task(driver.serve(feed))
    feed.send("INIT")
    machines = vms(tmp_path, 30)
    for vm in machines:
        feed.send(request("DEPLOY", vm.vm_id, vm.deploy("xen")))
    async with asyncio.timeout(30):
        while driver.replies < 30:
            await asyncio.sleep(0.01)
    feed.send("FINALIZE")
    await asyncio.wait_for(serving, 30)
    assert out.lines[0] == "INIT SUCCESS - -"
    replies = [r for r in map(parse_reply, out.lines) if r is not None]
    assert Counter(r.vm_id for r in replies) == Counter(range(30))
    assert all(r.ok and r.info == "one-42" for r in replies)
    assert w.executor.max_per_host == 1  # one action per host at a time, as upstream
    assert w.executor.max_total == 3


async def test_parallel_per_host_and_the_thread_limit(tmp_path: Path) -> None:
    w = world()
    w.executor = SlowExecutor(calls=w.executor.calls)
    driver, out = driver_for(w, concurrency=4, parallel_per_host=True)
    feed = Feed()
    serving = asyncio.create_task(driver.serve(feed))
    for vm in vms(tmp_path, 12, hosts=1):
        feed.send(request("DEPLOY", vm.vm_id, vm.deploy("xen")))
    async with asyncio.timeout(30):
        while driver.replies < 12:
            await asyncio.sleep(0.01)
    feed.close()
    await asyncio.wait_for(serving, 30)
    assert w.executor.max_per_host == 4 and w.executor.max_total == 4
    assert len([r for r in map(parse_reply, out.lines) if r is not None]) == 12


async def test_a_thousand_malformed_lines_each_answered_and_the_driver_lives_on(tmp_path: Path) -> None:
    w = world()
    driver, out = driver_for(w)
    feed = Feed()
    serving = asyncio.create_task(driver.serve(feed))
    rng = random.Random(6)
    vm = OnedVm(5, "xen1", datastores=tmp_path / "ds", vms_dir=tmp_path / "vms")
    vm.deploy()
    vm.commit()
    kinds = [
        lambda i: f"DEPLOY {i} %%%not-base64%%%",
        lambda i: f"SHUTDOWN {i} {base64.b64encode(b'<not xml').decode()}",
        lambda i: f"REBOOT {i} {base64.b64encode(b'<OTHER/>').decode()}",
        lambda i: f"FROBNICATE {i} AAAA",
        lambda i: f"DEPLOY {i}",
        lambda i: "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(1, 60))).replace(
            "\n", ""
        ),
        lambda i: f"CANCEL x{i} AAAA",
        lambda i: "\x00" * 10,
    ]
    for i in range(1000):
        feed.send(kinds[i % len(kinds)](1000 + i))
    feed.send(request("REBOOT", 5, vm.reboot()))
    feed.close()
    await asyncio.wait_for(serving, 30)
    answered = [line for line in out.lines if not line.startswith("LOG I")]
    assert len(answered) == 1001  # one FAILURE or LOG E per bad line, then the reboot
    assert answered[-1] == "REBOOT SUCCESS 5 -"
    assert all(line.startswith(("LOG E -", "LOG E ")) or " FAILURE " in line for line in answered[:-1])
    assert all("\n" not in line for line in out.lines)
    failures = [r for r in map(parse_reply, out.lines) if r is not None and r.result == "FAILURE"]
    assert Counter(r.vm_id for r in failures).most_common(1)[0][1] == 1


async def test_oversized_line_is_logged_and_skipped() -> None:
    w = world()
    driver, out = driver_for(w)

    async def lines() -> AsyncIterator[bytes | OversizedLine]:
        yield OversizedLine(70_000_000)
        yield b"INIT"

    await driver.serve(lines())
    assert out.lines == [
        "LOG E - ignored an input line of 70000000 bytes: too long to be a request",
        "INIT SUCCESS - -",
    ]


async def test_driver_cancel_stops_a_hung_action_without_a_reply(tmp_path: Path) -> None:
    w = world()
    w.executor.hangs.add("deploy")
    driver, out = driver_for(w)
    feed = Feed()
    serving = asyncio.create_task(driver.serve(feed))
    vm = OnedVm(9, "xen1", datastores=tmp_path / "ds", vms_dir=tmp_path / "vms")
    feed.send(request("DEPLOY", 9, vm.deploy()))
    await asyncio.wait_for(w.executor.entered.wait(), 10)
    feed.send("DRIVER_CANCEL 9")
    w.executor.hangs.clear()
    async with asyncio.timeout(10):
        while "LOG I 9 Driver command for 9 cancelled" not in out.lines:
            await asyncio.sleep(0.01)
    feed.send(request("CANCEL", 9, vm.message("CANCEL", DEPLOY_ID="one-9")))
    async with asyncio.timeout(10):
        while driver.replies < 1:
            await asyncio.sleep(0.01)
    feed.close()
    await asyncio.wait_for(serving, 10)
    assert "LOG I 9 Driver command for 9 cancelled" in out.lines
    assert not any(line.startswith("DEPLOY ") for line in out.lines)
    assert "CANCEL SUCCESS 9 -" in out.lines  # the VM is not stuck


async def test_driver_cancel_drops_a_queued_action(tmp_path: Path) -> None:
    w = world()
    w.executor.hangs.add("deploy")
    driver, out = driver_for(w)
    feed = Feed()
    serving = asyncio.create_task(driver.serve(feed))
    first, second = vms(tmp_path, 2, hosts=1)
    feed.send(request("DEPLOY", first.vm_id, first.deploy()))
    await asyncio.wait_for(w.executor.entered.wait(), 10)
    feed.send(request("DEPLOY", second.vm_id, second.deploy()))  # same host: waits
    feed.send(f"DRIVER_CANCEL {second.vm_id}")
    feed.send(f"DRIVER_CANCEL {first.vm_id}")
    feed.close()
    await asyncio.wait_for(serving, 10)
    assert [line for line in out.lines if not line.startswith("LOG I 0 ") or "cancelled" in line] == [
        f"LOG I {second.vm_id} Driver command for {second.vm_id} cancelled",
        f"LOG I {first.vm_id} Driver command for {first.vm_id} cancelled",
    ]


async def test_finalize_waits_for_running_actions_and_drops_queued_ones(tmp_path: Path) -> None:
    w = world()
    w.executor = SlowExecutor(calls=w.executor.calls)
    driver, out = driver_for(w)
    feed = Feed()
    serving = asyncio.create_task(driver.serve(feed))
    first, second = vms(tmp_path, 2, hosts=1)
    feed.send(request("DEPLOY", first.vm_id, first.deploy("xen")))
    feed.send(request("DEPLOY", second.vm_id, second.deploy("xen")))
    feed.send("FINALIZE")
    feed.send("INIT")  # never read: FINALIZE ends the input
    await asyncio.wait_for(serving, 10)
    assert [str(r) for r in map(parse_reply, out.lines) if r is not None] == [
        f"DEPLOY SUCCESS {first.vm_id} one-42"
    ]


async def test_a_bug_in_a_pipeline_still_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from adapter.vmm import actions

    async def broken(run: actions.ActionRun) -> list[Any]:
        raise ZeroDivisionError

    monkeypatch.setitem(actions.PIPELINES, "REBOOT", broken)
    w = world()
    driver, out = driver_for(w)
    vm = OnedVm(3, "xen1", datastores=tmp_path / "ds", vms_dir=tmp_path / "vms")
    feed = Feed()
    feed.send(request("REBOOT", 3, vm.reboot()))
    feed.close()
    await driver.serve(feed)
    assert out.lines == [
        "REBOOT FAILURE 3 internal error in one_vmm_grpc (ZeroDivisionError); see its log file"
    ]


# ---------------------------------------------------------------------------- the scheduler itself


async def test_scheduler_keeps_one_vm_in_order_and_lets_other_hosts_overtake() -> None:
    scheduler = Scheduler(10)
    order: list[str] = []
    gate = asyncio.Event()

    def job(key: int, host: str, name: str, wait: bool = False) -> Job:
        async def run() -> None:
            if wait:
                await gate.wait()
            order.append(name)

        return Job(key, host, run)

    scheduler.submit(job(1, "a", "vm1-first", wait=True))
    scheduler.submit(job(1, "b", "vm1-second"))  # same VM: after vm1-first, whatever the host
    scheduler.submit(job(2, "a", "vm2"))  # host a busy: waits
    scheduler.submit(job(3, "c", "vm3"))  # overtakes
    await asyncio.sleep(0.01)
    assert order == ["vm3"] and scheduler.running == 1 and scheduler.queued == 2
    gate.set()
    await asyncio.wait_for(scheduler.wait_idle(), 5)
    assert order == ["vm3", "vm1-first", "vm1-second", "vm2"] or order == [
        "vm3",
        "vm1-first",
        "vm2",
        "vm1-second",
    ]
