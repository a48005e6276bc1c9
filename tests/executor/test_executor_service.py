"""ExecutorService over gRPC against simulated Xen hosts (real sshd): every RPC and its failures."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import paramiko
import pytest
from executor_hosts import Cluster, Executor, inventory_for, pv_config, serve, start_hosts, stop_hosts

from onexen.runtime.errors import InvalidArgument, OnexenError, from_rpc_error
from onexen.v1 import common_pb2, executor_pb2
from services.executor.ssh import fingerprint
from simxen import zygote
from simxen.host import SimHost

pytestmark = pytest.mark.slow


async def rpc_error(call: Any) -> OnexenError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return from_rpc_error(caught.value)


def domain_names(host: SimHost) -> set[str]:
    return {d["name"] for d in host.domains()}


def deploy_request(
    cluster: Cluster, vm_id: int, host: str = "xen1", **config: Any
) -> executor_pb2.DeployRequest:
    return executor_pb2.DeployRequest(
        host=host,
        vm_id=vm_id,
        config=pv_config(f"one-{vm_id}", **config),
        remote_path=str(cluster.datastore / "0" / str(vm_id) / "deployment.0"),
    )


async def wait_until_running(stub: Any, host: str, domain: str) -> None:
    for _ in range(50):
        found = (await stub.GetDomain(executor_pb2.GetDomainRequest(host=host, domain=domain))).domain
        if found.state in (common_pb2.DOMAIN_STATE_BLOCKED, common_pb2.DOMAIN_STATE_RUNNING):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{domain} did not come back")


async def test_every_action_of_a_vms_life(cluster: Cluster, executor: Executor) -> None:
    stub, xen1, xen2 = executor.stub, cluster.host("xen1"), cluster.host("xen2")
    request = deploy_request(cluster, 101)
    request.cpu_weight = 512
    deployed = await stub.Deploy(request)
    assert (deployed.domain, deployed.already_running) == ("one-101", False)
    assert [o.command.split()[6] for o in deployed.outputs] == ["list", "create", "sched-credit"]
    assert "sudo -n /usr/sbin/xl create" in deployed.outputs[1].command

    domain = (await stub.GetDomain(executor_pb2.GetDomainRequest(host="xen1", domain="one-101"))).domain
    assert domain.name == "one-101" and domain.nics[0].mac == "00:16:3e:00:00:01"
    assert json.loads(domain.config_json)["config"]["b_info"]["sched_params"]["weight"] == 512

    probe = await stub.Probe(
        executor_pb2.ProbeRequest(host="xen1", datastore_paths=[str(cluster.datastore)], sample_seconds=0.2)
    )
    assert (probe.host_info.nr_cpus, probe.host_info.hostname, probe.host_info.xen_version) == (
        2,
        "xen1",
        "4.17.5",
    )
    by_name = {d.name: d for d in probe.domains}
    assert by_name["Domain-0"].state == common_pb2.DOMAIN_STATE_RUNNING
    assert by_name["one-101"].memory_kib == 128 * 1024 and by_name["one-101"].uuid
    assert probe.datastores[0].total_mib > 0 and probe.datastores[0].path == str(cluster.datastore)

    await stub.SetCredit(executor_pb2.SetCreditRequest(host="xen1", domain="one-101", weight=300, cap=50))
    domain = (await stub.GetDomain(executor_pb2.GetDomainRequest(host="xen1", domain="one-101"))).domain
    assert json.loads(domain.config_json)["config"]["b_info"]["sched_params"] == {
        "sched": "credit",
        "weight": 300,
        "cap": 50,
    }

    image = cluster.datastore / "0" / "101" / "disk.1"
    image.write_bytes(b"\0" * 4096)
    attached = await stub.AttachDisk(
        executor_pb2.AttachDiskRequest(host="xen1", domain="one-101", source_path=str(image), target="xvdb")
    )
    assert (attached.disk.vdev, attached.disk.pdev_path, attached.disk.format) == ("xvdb", str(image), "raw")
    assert attached.outputs[0].command.endswith(f"block-attach one-101 raw:{image} xvdb w")
    # The probe reports the space each disk takes (upstream computed it and threw it away).
    probe = await stub.Probe(
        executor_pb2.ProbeRequest(host="xen1", datastore_paths=[str(cluster.datastore)], sample_seconds=0.2)
    )
    disks = {d.vdev: d for d in next(d for d in probe.domains if d.name == "one-101").disks}
    assert disks["xvdb"].size_bytes == 4096
    await stub.DetachDisk(executor_pb2.DetachDiskRequest(host="xen1", domain="one-101", target="xvdb"))

    nic = await stub.AttachNic(
        executor_pb2.AttachNicRequest(host="xen1", domain="one-101", mac="00:16:3E:00:01:01", bridge="xenbr0")
    )
    assert (nic.nic.devid, nic.nic.mac) == (1, "00:16:3e:00:01:01")
    await stub.DetachNic(
        executor_pb2.DetachNicRequest(host="xen1", domain="one-101", mac="00:16:3e:00:01:01")
    )

    await stub.Reboot(executor_pb2.RebootRequest(host="xen1", domain="one-101"))
    await wait_until_running(stub, "xen1", "one-101")
    reset = await stub.Reset(executor_pb2.ResetRequest(host="xen1", domain="one-101"))
    assert " reboot -F one-101" in reset.outputs[0].command
    await wait_until_running(stub, "xen1", "one-101")

    checkpoint = str(cluster.datastore / "0" / "101" / "checkpoint")
    saved = await stub.Save(
        executor_pb2.SaveRequest(host="xen1", domain="one-101", checkpoint_path=checkpoint)
    )
    assert saved.moved_aside_to == "" and "one-101" not in domain_names(xen1)
    restored = await stub.Restore(executor_pb2.RestoreRequest(host="xen1", checkpoint_path=checkpoint))
    assert restored.domain == "one-101" and "one-101" in domain_names(xen1)
    saved = await stub.Save(
        executor_pb2.SaveRequest(host="xen1", domain="one-101", checkpoint_path=checkpoint)
    )
    assert saved.moved_aside_to.startswith(checkpoint + ".") and Path(saved.moved_aside_to).exists()
    await stub.Restore(executor_pb2.RestoreRequest(host="xen1", checkpoint_path=checkpoint, domain="one-101"))

    migrated = await stub.Migrate(
        executor_pb2.MigrateRequest(host="xen1", domain="one-101", destination_host="xen2")
    )
    assert "Migration successful." in migrated.outputs[0].stderr
    assert "one-101" not in domain_names(xen1) and "one-101" in domain_names(xen2)

    await wait_until_running(stub, "xen2", "one-101")
    down = await stub.Shutdown(
        executor_pb2.ShutdownRequest(host="xen2", domain="one-101", timeout_seconds=30)
    )
    assert not down.destroyed and "one-101" not in domain_names(xen2)
    cancelled = await stub.Cancel(executor_pb2.CancelRequest(host="xen2", domain="one-101"))
    assert not cancelled.was_running


async def test_a_retried_deploy(cluster: Cluster, executor: Executor) -> None:
    stub = executor.stub
    first, again = await asyncio.gather(
        stub.Deploy(deploy_request(cluster, 102)), stub.Deploy(deploy_request(cluster, 102))
    )
    assert sorted([first.already_running, again.already_running]) == [False, True]
    assert {first.domain, again.domain} == {"one-102"}
    error = await rpc_error(stub.Deploy(deploy_request(cluster, 102, memory=256)))
    assert error.code == grpc.StatusCode.ALREADY_EXISTS and "different config" in error.message
    cancelled = await stub.Cancel(executor_pb2.CancelRequest(host="xen1", domain="one-102"))
    assert cancelled.was_running and "one-102" not in domain_names(cluster.host("xen1"))


async def test_a_failing_verb_reports_exit_code_and_stderr(cluster: Cluster, executor: Executor) -> None:
    stderr = "libxl: error: libxl_create.c:1296:initiate_domain_create: Domain 9:cannot make domain: -3"
    cluster.host("xen1").fail("create", rc=3, stderr=stderr, count=1)
    error = await rpc_error(executor.stub.Deploy(deploy_request(cluster, 103)))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION and error.reason == "COMMAND_FAILED"
    assert error.metadata["exit_code"] == "3" and "cannot make domain: -3" in error.metadata["stderr"]
    assert "xl create" in error.metadata["command"] and error.metadata["host"] == "xen1"
    assert "cannot make domain" in error.message  # not upstream's one word, "Unable"


async def test_a_hung_xl_is_killed_on_the_host(cluster: Cluster, executor: Executor) -> None:
    xen1 = cluster.host("xen1")
    xen1.add_wild_domain("hang-1")
    xen1.hang("reboot", count=1)
    started = time.monotonic()
    error = await rpc_error(
        executor.stub.Reboot(executor_pb2.RebootRequest(host="xen1", domain="hang-1"), timeout=4.0)
    )
    assert time.monotonic() - started < 4.0  # our answer, before the client's own deadline
    assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED and error.reason == "COMMAND_TIMED_OUT"
    assert "killed on the host" in error.message and "reboot" in error.metadata["command"]
    await asyncio.sleep(0.3)
    # The hung call is gone from the host: no `xl reboot` process (the Python wrapper's path),
    # and no call left running under the host's fork server (simxen.zygote runs each call in a
    # child of its own, a worker or a fork; it kills it when the caller, `timeout`'s victim,
    # goes away).
    assert not [
        pid for pid in os.listdir("/proc") if pid.isdigit() and _runs(pid, str(xen1.bin_dir), "reboot")
    ]
    server = xen1.zygote_pid
    if server is not None:
        assert not zygote.running_calls(server)


def _runs(pid: str, *words: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return all(w in cmdline for w in words)


async def test_unknown_domains_are_not_found(cluster: Cluster, executor: Executor) -> None:
    error = await rpc_error(executor.stub.Reboot(executor_pb2.RebootRequest(host="xen1", domain="one-999")))
    assert error.code == grpc.StatusCode.NOT_FOUND and error.metadata["domain"] == "one-999"
    cancelled = await executor.stub.Cancel(executor_pb2.CancelRequest(host="xen1", domain="one-999"))
    assert not cancelled.was_running
    error = await rpc_error(
        executor.stub.Migrate(
            executor_pb2.MigrateRequest(host="xen1", domain="one-999", destination_host="xen2")
        )
    )
    assert error.code == grpc.StatusCode.NOT_FOUND


async def test_xl_refusing_a_device_is_explained(cluster: Cluster, executor: Executor) -> None:
    cluster.host("xen1").add_wild_domain("dev-1")
    missing = cluster.datastore / "0" / "nosuch.img"
    error = await rpc_error(
        executor.stub.AttachDisk(
            executor_pb2.AttachDiskRequest(
                host="xen1", domain="dev-1", source_path=str(missing), target="xvdc"
            )
        )
    )
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION and error.reason == "COMMAND_FAILED"
    assert "No such file or directory" in error.metadata["stderr"]
    error = await rpc_error(
        executor.stub.DetachDisk(executor_pb2.DetachDiskRequest(host="xen1", domain="dev-1", target="xvdz"))
    )
    assert error.code == grpc.StatusCode.NOT_FOUND and error.reason == "DEVICE_NOT_FOUND"
    error = await rpc_error(
        executor.stub.AttachNic(
            executor_pb2.AttachNicRequest(
                host="xen1", domain="dev-1", mac="00:16:3e:00:09:09", bridge="nosuchbr"
            )
        )
    )
    assert "Could not find bridge device nosuchbr" in error.metadata["stderr"]
    assert "half-made vif" in error.message
    assert [d["nics"] for d in cluster.host("xen1").domains() if d["name"] == "dev-1"] == [[]]


async def test_a_guest_that_ignores_shutdown(cluster: Cluster, executor: Executor) -> None:
    xen1 = cluster.host("xen1")
    xen1.add_wild_domain("deaf-1")
    xen1.ignore_acpi("deaf-1")
    request = executor_pb2.ShutdownRequest(host="xen1", domain="deaf-1", timeout_seconds=1)
    error = await rpc_error(executor.stub.Shutdown(request))  # xen1 has FORCE_DESTROY off
    assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED and "FORCE_DESTROY is off" in error.message
    assert "deaf-1" in domain_names(xen1)
    request.force_destroy = True
    down = await executor.stub.Shutdown(request)
    assert down.destroyed and "deaf-1" not in domain_names(xen1)


async def test_a_network_step(cluster: Cluster, executor: Executor) -> None:
    script = cluster.remotes / "vnm" / "echo" / "pre"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text('#!/bin/sh\necho "args: $*"\nbase64 -d\necho\necho "note" >&2\n')
    script.chmod(0o755)
    done = await executor.stub.RunNetworkStep(
        executor_pb2.RunNetworkStepRequest(
            host="xen1", vm_id=7, driver="echo", step=executor_pb2.NETWORK_STEP_PRE, argument="one-7",
            driver_message="<VM><ID>7</ID></VM>",
        )
    )  # fmt: skip
    assert done.output.stdout == "args: one-7\n<VM><ID>7</ID></VM>\n" and done.output.stderr == "note\n"
    missing = executor_pb2.RunNetworkStepRequest(
        host="xen1", driver="nosuch", step=executor_pb2.NETWORK_STEP_CLEAN
    )
    error = await rpc_error(executor.stub.RunNetworkStep(missing))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION and error.reason == "NETWORK_STEP_MISSING"


HOSTILE: list[tuple[str, Any, str]] = [
    ("Reboot", executor_pb2.RebootRequest(host="xen1", domain="one-1; reboot"), "domain"),
    ("Cancel", executor_pb2.CancelRequest(host="xen1", domain="-a"), "domain"),
    ("Cancel", executor_pb2.CancelRequest(host="xen1", domain="0"), "domain"),
    ("Shutdown", executor_pb2.ShutdownRequest(host="xen1", domain="Domain-0"), "domain"),
    ("Reboot", executor_pb2.RebootRequest(host="xen1 ; id", domain="one-1"), "host"),
    ("Reboot", executor_pb2.RebootRequest(host="", domain="one-1"), "host"),
    ("Deploy", executor_pb2.DeployRequest(host="xen1", config='name = "$(id)"\n', remote_path="/x"),
     "config"),
    ("Save", executor_pb2.SaveRequest(host="xen1", domain="one-1", checkpoint_path="/etc/shadow"),
     "checkpoint_path"),
    (
        "Restore",
        executor_pb2.RestoreRequest(host="xen1", checkpoint_path="/var/lib/one/datastores/../../../etc/x"),
        "checkpoint_path",
    ),
    ("AttachDisk", executor_pb2.AttachDiskRequest(host="xen1", domain="one-1", source_path="/dev/sda",
                                                  target="xvdb"), "source_path"),
    ("DetachDisk", executor_pb2.DetachDiskRequest(host="xen1", domain="one-1", target="xvdb,w"), "target"),
    ("AttachNic", executor_pb2.AttachNicRequest(host="xen1", domain="one-1", mac="00:16:3e:00:00:01",
                                                bridge="xenbr0 script=/tmp/evil"), "bridge"),
    ("AttachNic", executor_pb2.AttachNicRequest(host="xen1", domain="one-1", mac="00:16:3e:00:00:01",
                                                bridge="xenbr0", script="/tmp/evil"), "script"),
    ("DetachNic", executor_pb2.DetachNicRequest(host="xen1", domain="one-1", mac="1"), "mac"),
    ("SetCredit", executor_pb2.SetCreditRequest(host="xen1", domain="one-1", weight=0), "weight"),
    ("Migrate", executor_pb2.MigrateRequest(host="xen1", domain="one-1",
                                            destination_host="-oProxyCommand=id"), "destination_host"),
    ("RunNetworkStep", executor_pb2.RunNetworkStepRequest(host="xen1", driver="../../../bin",
                                                          step=executor_pb2.NETWORK_STEP_PRE), "driver"),
    ("RunNetworkStep", executor_pb2.RunNetworkStepRequest(host="xen1", driver="fw"), "step"),
    ("Probe", executor_pb2.ProbeRequest(host="xen1", datastore_paths=["/"]), "datastore_paths[0]"),
    ("GetDomain", executor_pb2.GetDomainRequest(host="xen1", domain="a b"), "domain"),
]  # fmt: skip


async def test_hostile_values_are_refused_before_reaching_a_host(
    cluster: Cluster, executor: Executor
) -> None:
    xen1 = cluster.host("xen1")
    calls_before = len(xen1.calls())
    for method, request, field in HOSTILE:
        error = await rpc_error(getattr(executor.stub, method)(request))
        assert isinstance(error, InvalidArgument), (method, request)
        assert [v.field for v in error.violations] == [field], (method, error.message)
    assert len(xen1.calls()) == calls_before
    assert (
        executor.runner.ssh.connection(cluster.inventory.host("xen1")).connects == 0
    )  # never even connected


async def test_fifty_concurrent_actions_on_one_host(cluster: Cluster, executor: Executor) -> None:
    xen2 = cluster.host("xen2")
    names = [f"busy-{i}" for i in range(50)]
    for name in names:
        xen2.add_wild_domain(name, memory_mb=16)
    replies = await asyncio.gather(
        *(
            executor.stub.SetCredit(executor_pb2.SetCreditRequest(host="xen2", domain=name, weight=100 + i))
            for i, name in enumerate(names)
        )
    )
    assert len(replies) == 50
    assert _weights(xen2, names) == {name: 100 + i for i, name in enumerate(names)}
    assert executor.runner.ssh.connection(cluster.inventory.host("xen2")).connects == 1


def _weights(host: SimHost, names: list[str]) -> dict[str, int]:
    listing = host.run_xl("sched-credit").stdout.splitlines()
    found = {}
    for line in listing:
        parts = line.split()
        if parts and parts[0] in names:
            found[parts[0]] = int(parts[2])
    return found


@pytest.fixture
async def ten_hosts(tmp_path: Path, cluster: Cluster) -> AsyncIterator[tuple[list[SimHost], Executor]]:
    hosts = await asyncio.to_thread(start_hosts, tmp_path / "hosts", [f"node{i}" for i in range(10)])
    try:
        async for running in serve(inventory_for(hosts, cluster.datastore)):
            yield hosts, running
    finally:
        await asyncio.to_thread(stop_hosts, hosts)


async def test_fifty_concurrent_actions_on_ten_hosts(ten_hosts: tuple[list[SimHost], Executor]) -> None:
    hosts, executor = ten_hosts
    jobs = []
    for i in range(50):
        host = hosts[i % 10]
        name = f"vm-{i}"
        host.add_wild_domain(name, memory_mb=16)
        jobs.append((host, name, 200 + i))
    replies = await asyncio.gather(
        *(
            executor.stub.SetCredit(executor_pb2.SetCreditRequest(host=h.name, domain=n, weight=w))
            for h, n, w in jobs
        )
    )
    assert len(replies) == 50
    for host in hosts:
        mine = [(n, w) for h, n, w in jobs if h is host]
        assert _weights(host, [n for n, _ in mine]) == dict(mine)


@pytest.fixture
async def odd_hosts(cluster: Cluster, tmp_path: Path) -> AsyncIterator[Executor]:
    """The cluster plus a host nobody listens for and one whose key is not what known_hosts says."""
    xen1, xen2 = cluster.host("xen1"), cluster.host("xen2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(xen2.known_hosts_path.read_text().replace(f":{xen2.port} ", f":{xen1.port} "))
    extra = {
        "down": {"address": "127.0.0.1", "port": closed_port, "connect_timeout": 3.0},
        "impostor": {"address": "127.0.0.1", "port": xen1.port, "known_hosts": str(wrong)},
    }
    inventory = inventory_for(cluster.hosts, cluster.datastore, extra_hosts=extra)
    async for running in serve(inventory):
        yield running


async def test_unreachable_hosts_and_wrong_host_keys(cluster: Cluster, odd_hosts: Executor) -> None:
    error = await rpc_error(odd_hosts.stub.Probe(executor_pb2.ProbeRequest(host="down")))
    assert error.code == grpc.StatusCode.UNAVAILABLE and error.reason == "HOST_UNREACHABLE"
    assert error.metadata["host"] == "down"

    error = await rpc_error(
        odd_hosts.stub.Reboot(executor_pb2.RebootRequest(host="impostor", domain="one-1"))
    )
    expected = fingerprint(
        paramiko.Ed25519Key.from_private_key_file(str(cluster.host("xen1").host_dir / "ssh_host_ed25519_key"))
    )
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION and error.reason == "HOST_KEY_MISMATCH"
    assert error.metadata["host"] == "impostor" and error.metadata["fingerprint"] == expected
    assert expected in error.message and "impostor" in error.message


async def test_sshd_restarted_or_host_rebooted_between_two_actions(tmp_path: Path, cluster: Cluster) -> None:
    (host,) = await asyncio.to_thread(start_hosts, tmp_path / "hosts", ["lone"])
    host.add_wild_domain("one-1")
    request = executor_pb2.SetCreditRequest(host="lone", domain="one-1", weight=256)
    try:
        async for running in serve(inventory_for([host], cluster.datastore)):
            await running.stub.SetCredit(request)
            port = host.port
            await asyncio.to_thread(host.stop)  # every session dies, as in a host reboot
            error = await rpc_error(running.stub.SetCredit(request))
            assert error.code == grpc.StatusCode.UNAVAILABLE
            host = await asyncio.to_thread(SimHost.start, host.workdir, "lone", port)
            await running.stub.SetCredit(request)
            await asyncio.to_thread(host.restart_sshd)  # the listener only: sessions live on
            await running.stub.SetCredit(request)
            assert running.runner.ssh.connection(running_host(running, "lone")).connects == 2
    finally:
        host.stop()


def running_host(running: Executor, name: str) -> Any:
    return running.runner.ssh._hosts[name].settings


async def test_vnc_passwords_stay_out_of_logs_replies_and_errors(
    cluster: Cluster, executor: Executor, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = "s3cret-vnc-pw"
    request = deploy_request(cluster, 104)
    request.config += f'vfb = [ "type=vnc,vncpasswd={secret}" ]\nvncpasswd = "{secret}"\n'
    deployed = await executor.stub.Deploy(request)
    assert secret not in str(deployed)
    # xl echoing a config line back in an error (as parse errors do) is masked too.
    cluster.host("xen1").fail("create", rc=1, stderr=f'config error near vncpasswd="{secret}"', count=1)
    failing = deploy_request(cluster, 105)
    error = await rpc_error(executor.stub.Deploy(failing))
    assert secret not in error.message and secret not in str(error.metadata)
    await executor.stub.Cancel(executor_pb2.CancelRequest(host="xen1", domain="one-104"))
    out, err = capfd.readouterr()
    assert secret not in out + err
    assert "action=deploy" in out or '"action": "deploy"' in out


async def test_a_cancelled_rpc_keeps_its_domain_locked_until_the_host_is_done(
    cluster: Cluster, executor: Executor
) -> None:
    xen1 = cluster.host("xen1")
    xen1.add_wild_domain("slow-1")
    xen1.add_wild_domain("slow-2")
    xen1.slow("reboot", 3.0, count=1)
    started = time.monotonic()
    call = executor.stub.Reboot(executor_pb2.RebootRequest(host="xen1", domain="slow-1"))
    await asyncio.sleep(0.5)
    call.cancel()
    other = executor.stub.SetCredit(executor_pb2.SetCreditRequest(host="xen1", domain="slow-2", weight=9))
    same = executor.stub.SetCredit(executor_pb2.SetCreditRequest(host="xen1", domain="slow-1", weight=9))
    await other
    assert time.monotonic() - started < 2.9  # another domain is not held up
    await same
    assert time.monotonic() - started >= 3.0  # the same domain waited for the reboot to end
