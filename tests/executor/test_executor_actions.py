"""The actions' decisions, with a scripted runner: upstream semantics, idempotency, errors, locks."""

from __future__ import annotations

import asyncio

import pytest
from executor_fakes import NO_SUCH, FakeRunner, Reply, list_row

from onexen.runtime.errors import CommandFailed, DeadlineExceeded, FailedPrecondition, NotFound
from services.executor.actions import Actions, Budget
from services.executor.errors import (
    CheckpointNotFound,
    DeviceBusy,
    DeviceNotFound,
    DomainExists,
    DomainNotFound,
    ShutdownTimedOut,
)
from services.executor.inventory import parse_inventory

INVENTORY = parse_inventory(
    """
    [defaults]
    datastore_roots = ["/ds"]
    [hosts.xen1]
    address = "10.0.0.1"
    [hosts.xen2]
    address = "10.0.0.2"
    FORCE_DESTROY = true
    """
)
CONFIG = 'name = "one-7"\nmemory = 128\n'
PATH = "/ds/0/7/deployment.0"


class FakeTime:
    """A clock that only moves when an action sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def actions(runner: FakeRunner, poll: float = 1.0, clock: FakeTime | None = None) -> Actions:
    clock = clock or FakeTime()
    return Actions(INVENTORY, runner, sleep=clock.sleep, clock=clock, poll_seconds=poll)


# ----------------------------------------------------------------------------- deploy


async def test_deploy_uploads_then_creates_then_sets_credits() -> None:
    runner = FakeRunner(lambda h, w: (1, "", NO_SUCH.format("one-7")) if w[0] == "list" else None)
    done = await actions(runner).deploy("xen1", CONFIG, "one-7", PATH, 512, Budget())
    assert (done.domain, done.already_running) == ("one-7", False)
    assert runner.verbs() == ["list", "<upload>", "create", "sched-credit"]
    assert runner.calls[-1][1] == ["sched-credit", "-d", "one-7", "-w", "512"]
    assert runner.files[("xen1", PATH)] == CONFIG.encode()


async def test_a_retried_deploy_returns_the_running_domain() -> None:
    runner = FakeRunner(lambda h, w: (0, list_row("one-7"), "") if w[0] == "list" else None)
    runner.files[("xen1", PATH)] = CONFIG.encode()
    done = await actions(runner).deploy("xen1", CONFIG, "one-7", PATH, 0, Budget())
    assert done.already_running
    assert "create" not in runner.verbs() and "<upload>" not in runner.verbs()


async def test_a_deploy_over_a_domain_from_another_config_is_refused() -> None:
    runner = FakeRunner(lambda h, w: (0, list_row("one-7"), "") if w[0] == "list" else None)
    runner.files[("xen1", PATH)] = b'name = "one-7"\nmemory = 4096\n'
    with pytest.raises(DomainExists, match="different config"):
        await actions(runner).deploy("xen1", CONFIG, "one-7", PATH, 0, Budget())
    assert runner.files[("xen1", PATH)] != CONFIG.encode()  # left as it was


async def test_a_failed_create_carries_xls_exit_code_and_stderr() -> None:
    def handler(host: str, words: list[str]) -> Reply | None:
        if words[0] == "list":
            return 1, "", NO_SUCH.format("one-7")
        if words[0] == "create":
            return 3, "", "Parsing config from x\nlibxl: error: cannot make domain: -3\n"
        return None

    with pytest.raises(CommandFailed) as caught:
        await actions(FakeRunner(handler)).deploy("xen1", CONFIG, "one-7", PATH, 0, Budget())
    assert caught.value.exit_code == 3
    assert "cannot make domain" in caught.value.stderr and "cannot make domain" in caught.value.message


async def test_a_credit_failure_does_not_undo_a_deploy() -> None:
    def handler(host: str, words: list[str]) -> Reply | None:
        if words[0] == "list":
            return 1, "", NO_SUCH.format("one-7")
        return (1, "", "weight out of range") if words[0] == "sched-credit" else None

    done = await actions(FakeRunner(handler)).deploy("xen1", CONFIG, "one-7", PATH, 512, Budget())
    assert done.outputs[-1].exit_code == 1


# ----------------------------------------------------------------------------- shutdown


def shutdown_host(polls_until_gone: int | None, flags: str = "-b----") -> FakeRunner:
    state = {"polls": 0}

    def handler(host: str, words: list[str]) -> Reply | None:
        if words[0] == "list":
            state["polls"] += 1
            if polls_until_gone is not None and state["polls"] > polls_until_gone:
                return 1, "", NO_SUCH.format(words[1])
            return 0, list_row(words[1], flags), ""
        return None

    return FakeRunner(handler)


async def test_shutdown_waits_until_the_domain_is_gone() -> None:
    runner = shutdown_host(3)
    done = await actions(runner).shutdown("xen1", "one-7", 30, None, Budget())
    assert not done.destroyed
    # One look before the request (its domid), then polls until the domain is gone.
    assert runner.verbs() == ["list", "shutdown", "list", "list", "list"]


async def test_a_shutdown_lost_to_a_pending_reboot_is_asked_again() -> None:
    # Real xl: a shutdown while a reboot is pending returns 0 once the rebooted domain (a new
    # domid) is there, and the guest never heard it. The executor asks the new domain.
    state = {"shutdowns": 0, "polls": 0}

    def handler(host: str, words: list[str]) -> Reply | None:
        if words[0] == "shutdown":
            state["shutdowns"] += 1
            return 0, "", ""
        if words[0] == "list":
            state["polls"] += 1
            if state["shutdowns"] == 0:
                return 0, list_row(words[1], domid=5), ""
            if state["shutdowns"] == 1:
                return 0, list_row(words[1], domid=6), ""
            return 1, "", NO_SUCH.format(words[1])
        return None

    runner = FakeRunner(handler)
    done = await actions(runner).shutdown("xen1", "one-7", 30, None, Budget())
    assert not done.destroyed
    assert runner.verbs() == ["list", "shutdown", "list", "shutdown", "list"]


async def test_a_guest_ignoring_shutdown_without_force_destroy() -> None:
    runner = shutdown_host(None)
    with pytest.raises(ShutdownTimedOut, match="FORCE_DESTROY is off") as caught:
        await actions(runner).shutdown("xen1", "one-7", 300, None, Budget())
    assert caught.value.code.name == "DEADLINE_EXCEEDED"
    assert "destroy" not in runner.verbs()


async def test_a_guest_ignoring_shutdown_with_force_destroy() -> None:
    runner = shutdown_host(None)
    done = await actions(runner).shutdown("xen2", "one-7", 300, None, Budget())  # xen2 forces
    assert done.destroyed and runner.verbs()[-1] == "destroy"
    runner = shutdown_host(None)
    done = await actions(runner).shutdown("xen1", "one-7", 30, True, Budget())  # the request forces
    assert done.destroyed


async def test_a_shut_down_domain_nobody_reaps_is_destroyed_as_cleanup() -> None:
    # After `xl save -c` no monitor destroys it: it stays "---s--" (NOTES item 4).
    runner = shutdown_host(None, flags="---s--")
    done = await actions(runner).shutdown("xen1", "one-7", 300, False, Budget())
    assert not done.destroyed and runner.verbs()[-1] == "destroy"


async def test_a_cleanup_destroy_racing_a_slow_monitor_is_no_failure() -> None:
    # Seen on real Xen under load: xl's monitor was still reaping the shut-down domain (its
    # hotplug scripts) past the grace; our destroy then failed once the monitor had finished.
    state = {"destroyed": False}

    def handler(host: str, words: list[str]) -> Reply | None:
        if words[0] == "list":
            if state["destroyed"]:
                return 1, "", NO_SUCH.format(words[1])
            return 0, list_row(words[1], "---s--"), ""
        if words[0] == "destroy":
            state["destroyed"] = True
            return 1, "", "libxl: error: unable to find domain info for domain 4: No such file or directory"
        return None

    runner = FakeRunner(handler)
    done = await actions(runner).shutdown("xen1", "one-7", 300, False, Budget())
    assert not done.destroyed and runner.verbs()[-2:] == ["destroy", "list"]


async def test_a_cleanup_destroy_that_fails_with_the_domain_still_there_fails() -> None:
    def handler(host: str, words: list[str]) -> Reply | None:
        if words[0] == "list":
            return 0, list_row(words[1], "---s--"), ""
        return (1, "", "libxl: error: something broke") if words[0] == "destroy" else None

    with pytest.raises(CommandFailed, match="something broke"):
        await actions(FakeRunner(handler)).shutdown("xen1", "one-7", 300, False, Budget())


async def test_shutdown_of_an_unknown_domain_is_not_found() -> None:
    runner = FakeRunner(lambda h, w: (1, "", NO_SUCH.format("one-9")))
    with pytest.raises(DomainNotFound) as caught:
        await actions(runner).shutdown("xen1", "one-9", 30, None, Budget())
    assert caught.value.metadata["domain"] == "one-9"


async def test_the_rpc_deadline_ends_a_shutdown_wait_without_destroying() -> None:
    runner = shutdown_host(None)
    clock = FakeTime()
    with pytest.raises(ShutdownTimedOut, match="RPC deadline"):
        await actions(runner, clock=clock).shutdown("xen2", "one-7", 300, None, Budget.of(30.0, clock))
    assert 25 < clock.now - 1000 < 30
    assert "destroy" not in runner.verbs()


# ----------------------------------------------------------------------------- cancel, save, restore


async def test_cancel_of_a_gone_domain_succeeds() -> None:
    runner = FakeRunner(lambda h, w: (1, "", NO_SUCH.format("one-7")))
    done = await actions(runner).cancel("xen1", "one-7", Budget())
    assert not done.was_running and runner.verbs() == ["destroy"]


async def test_cancel_waits_for_the_domain_to_leave_the_list() -> None:
    runner = shutdown_host(1)
    done = await actions(runner).cancel("xen1", "one-7", Budget())
    assert done.was_running and runner.verbs() == ["destroy", "list", "list"]


async def test_save_moves_an_old_checkpoint_aside_like_upstream() -> None:
    runner = FakeRunner()
    runner.files[("xen1", "/ds/0/7/checkpoint")] = b"old"
    done = await actions(runner).save("xen1", "one-7", "/ds/0/7/checkpoint", Budget())
    assert done.moved_aside_to.startswith("/ds/0/7/checkpoint.")
    assert runner.files[("xen1", done.moved_aside_to)] == b"old"
    assert runner.verbs() == ["<rename>", "save"]


async def test_a_failed_save_puts_the_old_checkpoint_back() -> None:
    runner = FakeRunner(lambda h, w: (1, "", NO_SUCH.format("one-7")) if w[0] == "save" else None)
    runner.files[("xen1", "/ds/c")] = b"old"
    with pytest.raises(DomainNotFound):
        await actions(runner).save("xen1", "one-7", "/ds/c", Budget())
    assert runner.files == {("xen1", "/ds/c"): b"old"}


async def test_restore_of_a_missing_checkpoint() -> None:
    with pytest.raises(CheckpointNotFound):
        await actions(FakeRunner()).restore("xen1", "/ds/none", "", Budget())


# ----------------------------------------------------------------------------- devices


async def test_a_detach_the_guest_kernel_refuses_explains_itself() -> None:
    def handler(host: str, words: list[str]) -> Reply | None:
        if words[0] == "block-list":
            return 0, "Vdev  BE  handle state evt-ch ring-ref BE-path\n51728 0 1 5 10 522 /x\n", ""
        return None

    with pytest.raises(DeviceBusy, match="did not release xvdb") as caught:
        await actions(FakeRunner(handler)).detach_disk("xen1", "one-7", "xvdb", Budget())
    assert caught.value.code.name == "FAILED_PRECONDITION" and caught.value.reason == "DEVICE_STILL_ATTACHED"


async def test_detaching_a_disk_that_is_not_there() -> None:
    runner = FakeRunner(lambda h, w: (1, "", "Error: Device xvdz not connected.\n"))
    with pytest.raises(DeviceNotFound):
        await actions(runner).detach_disk("xen1", "one-7", "xvdz", Budget())


async def test_a_failed_nic_attach_removes_the_half_made_vif() -> None:
    lists = iter(
        [
            "0   0  00:16:3e:00:00:01     0     4     -1   520/521   /p\n",
            "0   0  00:16:3e:00:00:01     0     4     -1   520/521   /p\n"
            "3   0  00:16:3e:50:bc:e9     3     4     -1  2062/2063  /p\n",
        ]
    )

    def handler(host: str, words: list[str]) -> Reply | None:
        if words[0] == "network-list":
            return 0, next(lists), ""
        if words[0] == "network-attach":
            return 1, "", "script: Could not find bridge device nosuchbr\nlibxl_device_nic_add failed.\n"
        return None

    runner = FakeRunner(handler)
    with pytest.raises(CommandFailed, match=r"half-made vif \[3\] was removed"):
        await actions(runner).attach_nic(
            "xen1", "one-7", mac="00:16:3e:00:00:02", bridge="nosuchbr", model="", ip="", script="",
            vifname="", budget=Budget(),
        )  # fmt: skip
    assert runner.calls[-1][1] == ["network-detach", "one-7", "3"]


async def test_a_retried_nic_attach_finds_it_attached() -> None:
    runner = FakeRunner(
        lambda h, w: (
            (0, "2   0  00:16:3e:00:00:02     2     4     -1   520/521   /p\n", "")
            if w[0] == "network-list"
            else None
        )
    )
    done = await actions(runner).attach_nic(
        "xen1", "one-7", mac="00:16:3e:00:00:02", bridge="xenbr0", model="", ip="", script="", vifname="",
        budget=Budget(),
    )  # fmt: skip
    assert done.nic.devid == 2 and runner.verbs() == ["network-list"]


async def test_detach_nic_by_mac() -> None:
    lists = iter(["1   0  00:16:3e:00:00:02     1     4     -1   520/521   /p\n", ""])
    runner = FakeRunner(lambda h, w: (0, next(lists), "") if w[0] == "network-list" else None)
    await actions(runner).detach_nic("xen1", "one-7", "00:16:3e:00:00:02", Budget())
    assert ["network-detach", "one-7", "1"] in [w for _, w in runner.calls]
    with pytest.raises(NotFound):
        await actions(FakeRunner()).detach_nic("xen1", "one-7", "00:16:3e:00:00:09", Budget())


# ----------------------------------------------------------------------------- time and order


async def test_the_deadline_becomes_the_remote_timeout() -> None:
    runner = FakeRunner()
    await actions(runner).reboot("xen1", "one-7", Budget.of(10.0))
    assert 8.0 < runner.timeouts[0] <= 9.0  # 10 s less the margin to report in


async def test_too_little_time_runs_nothing() -> None:
    runner = FakeRunner()
    with pytest.raises(DeadlineExceeded, match="too little"):
        await actions(runner).reboot("xen1", "one-7", Budget.of(0.3))
    assert runner.calls == []


async def test_one_domain_one_action_at_a_time_other_domains_in_parallel() -> None:
    runner = FakeRunner(delay=0.05)
    acts = actions(runner)
    await asyncio.gather(*(acts.reboot("xen1", "one-7", Budget()) for _ in range(5)))
    assert runner.most_active == 1
    runner.most_active = 0
    await asyncio.gather(*(acts.reboot("xen1", f"one-{i}", Budget()) for i in range(5)))
    assert runner.most_active == 5
    assert acts.locks.held() == 0


async def test_migrating_to_itself_is_refused() -> None:
    with pytest.raises(FailedPrecondition, match="itself"):
        await actions(FakeRunner()).migrate("xen1", "one-7", "xen1", Budget())


def test_a_refused_create_is_summarised_by_its_cause_not_libxls_cleanup() -> None:
    from services.executor.actions import stderr_summary

    # A 64 MiB PV guest whose kernel does not fit (seen on the real Xen 4.17 lab).
    stderr = (
        "Parsing config from /var/lib/one/datastores/0/200/deployment.0\n"
        "xc: error: panic: xc_dom_core.c:690: xc_dom_alloc_segment: segment kernel too large: Out of memory\n"
        "libxl: error: libxl_dom.c:586:libxl__build_dom: Domain 5:"
        "xc_dom_boot_mem_init failed: Out of memory\n"
        "libxl: error: libxl_create.c:1730:domcreate_rebuild_done: Domain 5:cannot (re-)build domain: -3\n"
        "libxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain 5:Non-existant domain\n"
        "libxl: error: libxl_domain.c:1137:domain_destroy_callback: Domain 5:Unable to destroy guest\n"
        "libxl: error: libxl_domain.c:1064:domain_destroy_cb: Domain 5:Destruction of domain failed\n"
    )
    summary = stderr_summary(stderr)
    assert summary.startswith(
        "xc: error: panic: xc_dom_core.c:690: xc_dom_alloc_segment: segment kernel too large"
    )
    assert "xc_dom_boot_mem_init failed: Out of memory / cannot (re-)build domain: -3" in summary
    assert "Destruction" not in summary and "Parsing config" not in summary
    assert stderr_summary("") == "nothing on stderr"
    assert stderr_summary("Parsing config from x\n") == "Parsing config from x"
