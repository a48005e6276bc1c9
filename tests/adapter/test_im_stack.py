"""one_im_grpc when the monitor service goes away and comes back: the host goes to error with
the reason, once, and recovers by itself."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from adapter_stack import PERIODS, Rig

from stack.launcher import ServiceProcess, wait_serving

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnMonitor:
    """A monitor service process this test starts, stops and starts again on one port."""

    def __init__(self, rig: Rig, log: Path) -> None:
        self.rig = rig
        self.port = _free_port()
        self.log = log
        self.service: ServiceProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        services = self.rig.stack.services
        command = [
            sys.executable,
            "-m",
            "services.monitor.main",
            "--port",
            str(self.port),
            "--executor",
            services["executor"].address,
            "--translator",
            services["translator"].address,
        ]
        with self.log.open("ab") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.service = ServiceProcess("monitor", self.address, self.log, process)
        wait_serving(self.service, timeout=30)

    def stop(self) -> None:
        if self.service is not None and self.service.process.poll() is None:
            self.service.process.terminate()
            try:
                self.service.process.wait(10)
            except subprocess.TimeoutExpired:
                self.service.process.kill()
                self.service.process.wait()
        self.service = None


@pytest.fixture
def own_monitor(rig: Rig, tmp_path: Path) -> Iterator[OwnMonitor]:
    monitor = OwnMonitor(rig, tmp_path / "monitor.log")
    monitor.start()
    try:
        yield monitor
    finally:
        monitor.stop()


def test_monitor_service_away_puts_the_host_in_error_and_it_recovers(
    rig: Rig, own_monitor: OwnMonitor
) -> None:
    with rig.monitord(env={"ONEXEN_MONITOR": own_monitor.address}, log="im-away") as monitord:
        assert monitord.start_monitor(5, "xen3", periods=PERIODS).ok

        own_monitor.stop()
        failure = monitord.wait_message(lambda m: m.oid == 5 and m.status == "FAILURE", timeout=20)
        assert failure.type == "MONITOR_HOST"
        assert failure.data.startswith("not monitored, onexen monitor service unavailable: ")
        assert f"the onexen monitor service at {own_monitor.address} cannot be reached" in failure.data
        mark = len(monitord.lines)

        own_monitor.start()
        back = monitord.wait_message(
            lambda m: m.oid == 5 and m.type == "SYSTEM_HOST" and m.status == "SUCCESS", timeout=30, start=mark
        )
        assert back.timestamp >= failure.timestamp
        monitord.wait_message(lambda m: m.oid == 5 and m.type == "STATE_VM", timeout=20, start=mark)
        assert len([m for m in monitord.messages(host_id=5) if m.status == "FAILURE"]) == 1
        assert monitord.stop_monitor(5, "xen3").status == "SUCCESS"
