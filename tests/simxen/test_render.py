"""Output formats against the reference captures, column for column (no processes)."""

from __future__ import annotations

import json
from typing import Any

from simxen_fixtures import FIXTURES, block

from simxen import render, yajl
from simxen.facts import HostFacts
from simxen.model import HostState, Nic

FACTS = HostFacts(boot_seconds=0.0)


def reference_state(dom0_cpu: float, domu_cpu: float) -> HostState:
    state = HostState.boot(FACTS, now=0.0)
    state.domains[0].cpu_seconds = dom0_cpu
    config: dict[str, Any] = {
        "c_info": {
            "type": "pv",
            "name": "domu1",
            "uuid": "05424b7f-f54e-48c0-87fe-7aa7188e6570",
            "run_hotplug_scripts": "True",
        },
        "b_info": {"max_vcpus": 1, "avail_vcpus": [0], "max_memkb": 131072, "target_memkb": 131072},
        "nics": [{"devid": 0, "mac": "00:16:3e:00:00:01", "bridge": "xenbr0"}],
    }
    dom = state.build_domain(config, 0.0, FACTS)
    dom.cpu_seconds = domu_cpu
    return state


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_xl_info_matches_the_reference_host() -> None:
    state = HostState.boot(FACTS, now=0.0)
    # xl_info.txt is the raw output of `xl info` followed by "rc=0" and other commands
    expected = _fixture("xl_info.txt").split("rc=0\n")[0]
    assert render.info_text(FACTS, state) == expected


def test_xl_info_numa_sections_match_xl_info_n() -> None:
    state = HostState.boot(FACTS, now=0.0)
    lines = render.info_text(FACTS, state, numa=True).splitlines()
    ref = _fixture("xl_info_extra.txt").splitlines()
    start = ref.index("cpu_topology           :")
    assert lines[18:31] == ref[start : start + 13]


def test_xl_info_single_field_prints_the_value_only() -> None:
    state = HostState.boot(FACTS, now=0.0)
    assert render.info_text(FACTS, state, only="xen_version") == "4.17.5\n"
    assert render.info_text(FACTS, state, only="free_memory") == "1256\n"


def test_xl_list_columns_and_tabs() -> None:
    state = reference_state(41.9, 4.4)
    for d in state.domains:
        d.last_update = 0.0
    out = render.list_text(state.domains, 100.0, FACTS)
    assert out == block("xl_list.txt", "xl list").output


def test_xl_list_verbose() -> None:
    state = reference_state(44.9, 4.4)
    assert (
        render.list_text(state.domains, 100.0, FACTS, verbose=True)
        == block("xl_list.txt", "xl list -v").output
    )


def test_vm_list_and_vcpu_list_headers() -> None:
    state = reference_state(44.9, 4.4)
    assert render.vm_list_text(state.domains) == block("xl_list.txt", "xl vm-list").output
    ref = block("xl_list.txt", "xl vcpu-list").output.splitlines()
    out = render.vcpu_list_text(state.domains, 100.0, FACTS).splitlines()
    assert out[0] == ref[0]
    assert [len(line) for line in out] == [len(line) for line in ref]


def test_list_long_is_yajl_text() -> None:
    for command in ("xl list -l domu1", "xl list -l"):
        ref = block("xl_list_l.txt", command).output
        assert yajl.dumps(json.loads(ref)) + "\n" == ref


def test_retrieved_config_has_the_keys_libxl_adds() -> None:
    state = reference_state(41.9, 4.4)
    dom = state.by_name("domu1")
    assert dom is not None
    ref = json.loads(block("xl_list_l.txt", "xl list -l domu1").output)[0]["config"]
    got = dom.retrieved_config()
    assert list(got["c_info"]) == list(ref["c_info"])
    assert got["c_info"]["domid"] == 4294967295
    assert {k: got["b_info"][k] for k in ("video_memkb", "sched_params", "arch_x86")} == {
        k: ref["b_info"][k] for k in ("video_memkb", "sched_params", "arch_x86")
    }
    assert got["nics"] == ref["nics"]


def test_sched_credit_lines() -> None:
    state = reference_state(0, 0)
    out = render.sched_pool_line(FACTS) + render.SCHED_HEADER
    out += "".join(render.sched_domain_line(d) for d in state.domains)
    assert out == block("xl_sched_credit.txt", "xl sched-credit").output


def test_network_list_rows() -> None:
    state = reference_state(0, 0)
    dom = state.by_name("domu1")
    assert dom is not None
    for devid, mac in ((1, "00:16:3e:00:00:02"), (2, "00:16:3e:00:00:03"), (3, "00:16:3e:50:bc:e9")):
        dom.nics.append(
            Nic(devid=devid, spec={"mac": mac}, rref_tx=520 + 514 * devid, rref_rx=521 + 514 * devid)
        )
    ref = block("xl_network.txt", "xl network-list domu1", 2).output
    assert render.NETWORK_HEADER + render.network_list_rows(dom) == ref


def test_block_list_header_matches() -> None:
    assert block("xl_block.txt", "xl block-list domu1", 1).output == render.BLOCK_HEADER


def _sample(**kw: Any) -> render.XentopSample:
    base: dict[str, Any] = {
        "domid": 0, "name": "Domain-0", "state": "-----r", "cpu_ns": 57 * 10**9, "mem_kb": 786432,
        "maxmem_kb": 786432, "vcpus": 2, "online_vcpus": 2, "vcpu_ns": [32 * 10**9, 26 * 10**9],
    }  # fmt: skip
    base.update(kw)
    return render.XentopSample(**base)


def test_xentop_batch_rows_and_cpu_percentage() -> None:
    ref = block("xentop.txt", "xentop -b -i 2 -d 1").output.splitlines(keepends=True)
    total = FACTS.total_memory_kb
    dom0 = _sample()
    domu = _sample(
        domid=1, name="domu1", state="--b---", cpu_ns=4 * 10**9, mem_kb=131072, maxmem_kb=132096, vcpus=1,
        online_vcpus=1, vcpu_ns=[4 * 10**9],
        nets=[{"rx_bytes": 676, "rx_pkts": 10, "tx_bytes": 1086, "tx_pkts": 13}],
    )  # fmt: skip
    first = render.xentop_text([domu, dom0], None, 0.0, total, render.XentopOptions())
    assert first == "".join(ref[:3])
    # 100 ms of CPU in one second is 10.0 %, 3 ms is 0.3 %
    later0 = _sample(cpu_ns=dom0.cpu_ns + 100_000_000)
    later1 = _sample(**{**domu.__dict__, "cpu_ns": domu.cpu_ns + 3_000_000})
    second = render.xentop_text([later0, later1], {0: dom0, 1: domu}, 1e6, total, render.XentopOptions())
    assert second == "".join(ref[3:6])


def test_xentop_full_vcpus_networks_repeat_header() -> None:
    ref = block("xentop.txt", "xentop -b -i 1 -f -x -n -v -r").output
    total = FACTS.total_memory_kb
    dom0 = _sample(cpu_ns=59 * 10**9)
    domu = _sample(
        domid=1, name="domu1", state="--b---", cpu_ns=4 * 10**9, mem_kb=131072, maxmem_kb=132096, vcpus=1,
        online_vcpus=1, vcpu_ns=[4 * 10**9],
        nets=[{"rx_bytes": 676, "rx_pkts": 10, "tx_bytes": 1086, "tx_pkts": 13}],
    )  # fmt: skip
    opts = render.XentopOptions(full_name=True, repeat_header=True, vcpus=True, networks=True, vbds=True)
    assert render.xentop_text([dom0, domu], None, 0.0, total, opts) == ref


def test_xentop_vbd_counters_row() -> None:
    ref = block("xl_block.txt", "xentop -b -i 1 | grep domu1").output
    vbd = {"oo": 0, "rd": 6, "wr": 0, "rsect": 48, "wsect": 0}
    domu = _sample(
        domid=1, name="domu1", state="--b---", cpu_ns=4 * 10**9, mem_kb=131072, maxmem_kb=132096, vcpus=1,
        online_vcpus=1, vcpu_ns=[4 * 10**9],
        nets=[{"rx_bytes": 0, "rx_pkts": 0, "tx_bytes": 1086, "tx_pkts": 13}],
        vbds=[(51728, vbd), (51744, {k: 0 for k in vbd})],
    )  # fmt: skip
    out = render.xentop_text([domu], None, 0.0, FACTS.total_memory_kb, render.XentopOptions())
    assert out.splitlines()[1] + "\n" == ref
