"""The Xen lab for tests marked `xen`: real Xen 4.17 hosts under QEMU (tools/xenlab).

Fixtures:
    xenlab      the lab's description (xenlabkit.state.LabInfo), session-scoped: a lab already
                running (per .onexen/xenlab.json, or XENLAB_STATE) is reused and left running;
                otherwise `xenlab up --hosts $XENLAB_HOSTS` (default 2) starts one, stopped at the end.
    xenlab_ssh  a factory: xenlab_ssh("xen1", user="oneadmin") -> xenlabkit.client.Dom0, a paramiko
                connection that verifies the host key against the lab's known_hosts (RejectPolicy),
                cached per session. Helpers import from `xenlabkit.*` (tools/xenlab is on sys.path).

When this machine cannot run the lab (xenlab exits 77: not x86-64, too little memory or disk,
packages missing and not root) the tests are skipped with the reason, or fail when
XENLAB_REQUIRED=1. A lab that fails to come up fails the tests with the serial log's tail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
XENLAB = REPO / "tools" / "xenlab" / "xenlab"
sys.path.insert(0, str(XENLAB.parent))

from xenlabkit.client import Dom0  # noqa: E402
from xenlabkit.diagnose import host_report  # noqa: E402
from xenlabkit.errors import EXIT_REFUSED  # noqa: E402
from xenlabkit.run import Lab  # noqa: E402
from xenlabkit.state import LabInfo  # noqa: E402

# Real Xen under TCG is slow (a PV create takes ~10 s, a migration ~35 s) and the first test may
# build and boot the lab: xen tests get this timeout unless they set their own.
XEN_TEST_TIMEOUT = int(os.environ.get("XENLAB_TEST_TIMEOUT") or 900)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xen") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(XEN_TEST_TIMEOUT))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed lab test carries each host's state (QEMU alive? what Xen and dom0 printed last)."""
    outcome = yield
    report = outcome.get_result()
    info = getattr(item, "funcargs", {}).get("xenlab")
    if report.failed and isinstance(info, LabInfo):
        for host in info.hosts.values():
            report.sections.append((f"xen lab: {host.name}", host_report(host)))


@pytest.fixture(scope="session")
def xenlab() -> Iterator[LabInfo]:
    lab = Lab()
    info = lab.info()
    if info is not None and info.ready and lab.running(info):
        yield info  # someone else's lab (make xenlab-up): leave it running
        return
    hosts = os.environ.get("XENLAB_HOSTS") or "2"
    done = subprocess.run(
        [sys.executable, str(XENLAB), "up", "--hosts", hosts], capture_output=True, text=True
    )
    if done.returncode == EXIT_REFUSED:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "refused"
        if os.environ.get("XENLAB_REQUIRED") == "1":
            pytest.fail(f"XENLAB_REQUIRED=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    if done.returncode != 0:
        pytest.fail(f"xenlab up failed (exit {done.returncode}):\n{done.stderr}", pytrace=False)
    info = lab.info()
    assert info is not None and info.ready, f"xenlab up left no ready description at {lab.state_path}"
    try:
        yield info
    finally:
        subprocess.run([sys.executable, str(XENLAB), "down"], check=False)


@pytest.fixture(scope="session")
def xenlab_ssh(xenlab: LabInfo) -> Iterator[Callable[..., Dom0]]:
    pool: dict[tuple[str, str], Dom0] = {}

    def get(name: str = "xen1", user: str = "oneadmin") -> Dom0:
        if (name, user) not in pool:
            pool[(name, user)] = Dom0(xenlab.hosts[name], user)
        return pool[(name, user)]

    yield get
    for dom0 in pool.values():
        dom0.close()
