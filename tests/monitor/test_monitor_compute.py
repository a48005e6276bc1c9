"""The arithmetic: CPU from CPU-time deltas, resets, units, ballooned Domain-0, disk sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onexen.v1 import common_pb2, monitor_pb2
from services.monitor import compute
from services.monitor.compute import CpuWindows


def test_cpu_is_the_cpu_time_delta_over_the_window() -> None:
    windows = CpuWindows(["vm"])
    windows.observe("one-1", 5, 100.0, at=1000.0)
    windows.observe("one-1", 5, 101.5, at=1005.0)
    windows.observe("one-1", 5, 106.0, at=1030.0)
    # 6 s of CPU in 30 s: 20 % of one CPU, whatever the probes in between.
    assert windows.take("vm", {"one-1": 99.0}) == {"one-1": pytest.approx(20.0)}
    windows.observe("one-1", 5, 121.0, at=1060.0)
    assert windows.take("vm", {"one-1": 0.0}) == {"one-1": pytest.approx(50.0)}


def test_a_window_with_one_sample_uses_the_fallback() -> None:
    windows = CpuWindows(["vm"])
    windows.observe("one-1", 5, 100.0, at=1000.0)
    assert windows.take("vm", {"one-1": 12.5}) == {"one-1": 12.5}


def test_cpu_time_going_backwards_restarts_the_window_instead_of_going_negative() -> None:
    windows = CpuWindows(["vm"])
    windows.observe("one-1", 5, 500.0, at=1000.0)
    windows.observe("one-1", 5, 10.0, at=1010.0)  # restored from a checkpoint: counters reset
    windows.observe("one-1", 5, 12.0, at=1020.0)
    assert windows.take("vm", {"one-1": 0.0}) == {"one-1": pytest.approx(20.0)}


def test_a_new_domid_restarts_the_window() -> None:
    windows = CpuWindows(["vm"])
    windows.observe("one-1", 5, 500.0, at=1000.0)
    windows.observe("one-1", 9, 503.0, at=1010.0)  # rebooted: new domid, CPU time from zero-ish
    windows.observe("one-1", 9, 504.0, at=1020.0)
    assert windows.take("vm", {"one-1": 0.0}) == {"one-1": pytest.approx(10.0)}


def test_windows_are_independent_and_gone_domains_are_forgotten() -> None:
    windows = CpuWindows(["vm", "host"])
    windows.observe("a", 1, 0.0, at=0.0)
    windows.observe("b", 2, 0.0, at=0.0)
    windows.observe("a", 1, 3.0, at=30.0)
    windows.observe("b", 2, 30.0, at=30.0)
    assert windows.take("vm", {"a": 0.0, "b": 0.0}) == {"a": pytest.approx(10.0), "b": pytest.approx(100.0)}
    windows.observe("a", 1, 6.0, at=60.0)
    assert windows.take("vm", {"a": 0.0}) == {"a": pytest.approx(10.0)}
    assert windows.percent("host", "a") == pytest.approx(10.0)  # over 0..60, untouched by vm takes
    assert windows.percent("vm", "b") is None


@given(
    st.lists(
        st.tuples(st.integers(1, 3), st.floats(0, 1e6, allow_nan=False), st.floats(0.1, 100)),
        min_size=1,
        max_size=30,
    )
)
def test_cpu_is_never_negative(samples: list[tuple[int, float, float]]) -> None:
    windows = CpuWindows(["vm"])
    at = 0.0
    for domid, cpu_seconds, step in samples:
        at += step
        windows.observe("d", domid, cpu_seconds, at)
    assert windows.take("vm", {"d": 0.0})["d"] >= 0.0


def info(**overrides: object) -> common_pb2.HostInfo:
    base: dict[str, object] = {
        "hostname": "xenhost",
        "arch": "x86_64",
        "model_name": "AMD EPYC",
        "nr_cpus": 2,
        "cpu_mhz": 2596.127,
        "total_memory_mib": 2047,
        "free_memory_mib": 1256,
        "xen_version": "4.17.5",
        "raw": {"xen_commandline": "console=com1 dom0_mem=768M,max:768M sched=credit"},
    }
    base.update(overrides)
    return common_pb2.HostInfo(**base)  # type: ignore[arg-type]


DOM0 = common_pb2.Domain(name="Domain-0", domid=0, memory_kib=786432, max_memory_kib=786432)


def test_host_memory_in_kib_with_a_pinned_domain0() -> None:
    total, used, free = compute.memory_kib(info(), DOM0)
    assert (total, free) == (2047 * 1024, 1256 * 1024)
    assert used == total - free


def test_a_ballooned_domain0_gives_its_memory_back_to_freememory() -> None:
    # OpenNebula/one#6611: 128 GiB host, Domain-0 ballooned to ~122 GiB, xl free_memory 21 MiB.
    host = info(
        nr_cpus=32,
        total_memory_mib=130757,
        free_memory_mib=21,
        raw={"xen_commandline": "placeholder console=vga"},
    )
    dom0 = common_pb2.Domain(name="Domain-0", domid=0, memory_kib=125_000 * 1024, max_memory_kib=0)
    assert compute.dom0_balloons(host, dom0)
    total, used, free = compute.memory_kib(host, dom0, min_memory_mib=1024)
    assert total == 130757 * 1024
    assert free == (21 + 125_000 - 1024) * 1024  # not 21 MiB
    assert used == total - free
    upstream_free = 21 * 1024
    assert free > 100 * upstream_free * 1024 / 1024


def test_without_a_command_line_a_domain0_below_its_ceiling_balloons() -> None:
    host = info(raw={})
    assert not compute.dom0_balloons(host, DOM0)
    roomy = common_pb2.Domain(name="Domain-0", domid=0, memory_kib=4 << 20, max_memory_kib=0)
    assert compute.dom0_balloons(host, roomy)
    assert compute.dom0_reclaimable_kib(host, roomy, min_memory_mib=1024) == (4 << 20) - (1 << 20)
    small = common_pb2.Domain(name="Domain-0", domid=0, memory_kib=512 << 10, max_memory_kib=0)
    assert compute.dom0_reclaimable_kib(host, small, min_memory_mib=1024) == 0


def test_host_usage_sums_every_domain_including_domain0_in_bytes() -> None:
    domains = [
        common_pb2.Domain(name="Domain-0", domid=0, net_rx_bytes=0, net_tx_bytes=0),
        common_pb2.Domain(name="one-1", domid=1, net_rx_bytes=4096, net_tx_bytes=2048),
        common_pb2.Domain(name="web", domid=2, net_rx_bytes=1024, net_tx_bytes=1024),
    ]
    usage = compute.host_usage(info(), domains, {"Domain-0": 10.4, "one-1": 25.3, "web": 0.6}, DOM0)
    assert (usage.used_cpu, usage.free_cpu) == (36, 164)
    assert (usage.net_rx_bytes, usage.net_tx_bytes) == (5120, 3072)
    assert usage.free_memory_kib == 1256 * 1024
    busy = compute.host_usage(info(), domains, {"one-1": 150.0, "web": 90.0}, DOM0)
    assert (busy.used_cpu, busy.free_cpu) == (240, 0)


def test_system_host_figures() -> None:
    datastores = [
        common_pb2.DatastoreUsage(
            path="/var/lib/one/datastores/", datastore_id=-1, total_mib=100, free_mib=60
        ),
        common_pb2.DatastoreUsage(path="/var/lib/one/datastores/0", datastore_id=0, total_mib=100),
    ]
    wild = [monitor_pb2.WildVm(deploy_id="web", vm_name="web", import_template='NAME="web"')]
    system = compute.system_host(info(), datastores, "/var/lib/one/datastores", wild)
    assert system.hypervisor == "xen"
    assert system.total_cpu == 200
    assert system.cpu_speed_mhz == pytest.approx(2596.127)
    assert system.total_memory_kib == 2047 * 1024
    assert (system.arch, system.model_name, system.hostname, system.xen_version) == (
        "x86_64",
        "AMD EPYC",
        "xenhost",
        "4.17.5",
    )
    assert system.datastore_location.free_mib == 60
    assert [d.datastore_id for d in system.datastores] == [0]
    assert [w.deploy_id for w in system.wild_vms] == ["web"]


def test_vm_monitoring_units_and_disk_sizes() -> None:
    domain = common_pb2.Domain(
        name="one-7",
        memory_kib=1048576,
        net_rx_bytes=4 * 1024,
        net_tx_bytes=2 * 1024,
        block_read_bytes=8 * 512,
        block_write_bytes=16 * 512,
        block_read_ops=1,
        block_write_ops=2,
        disks=[
            common_pb2.DomainDisk(
                vdev="xvda", pdev_path="/var/lib/one/datastores/0/7/disk.0", size_bytes=1 << 30
            ),
            common_pb2.DomainDisk(vdev="xvdb", pdev_path="/var/lib/one/datastores/0/7/disk.2", size_bytes=1),
            common_pb2.DomainDisk(
                vdev="xvdc", pdev_path="/dev/vg/lv", size_bytes=0
            ),  # size unknown: left out
            common_pb2.DomainDisk(vdev="xvdd", pdev_path="/srv/img.qcow2", size_bytes=3 << 20),
        ],
    )
    vm = compute.vm_monitoring(domain, 7, 12.3456)
    assert (vm.vm_id, vm.deploy_id, vm.cpu, vm.memory_kib) == (7, "one-7", 12.35, 1048576)
    assert (vm.net_rx_bytes, vm.net_tx_bytes) == (4096, 2048)
    assert (vm.disk_read_bytes, vm.disk_write_bytes, vm.disk_read_iops, vm.disk_write_iops) == (
        4096,
        8192,
        1,
        2,
    )
    assert [(d.disk_id, d.size_mib) for d in vm.disk_sizes] == [(0, 1024), (2, 1), (3, 3)]


def test_timestamps_keep_sub_second_precision() -> None:
    ts = compute.timestamp(1700000000.25)
    assert (ts.seconds, ts.nanos) == (1700000000, 250_000_000)
    event = compute.event(4, 1.5, beacon=monitor_pb2.Beacon())
    assert event.host_id == 4 and event.WhichOneof("payload") == "beacon"
