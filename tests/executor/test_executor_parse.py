"""Parsing what real Xen 4.17 printed (captures from /work/shared/spec/xen-4.17)."""

import struct

from onexen.v1 import common_pb2
from services.executor import parse

XL_INFO = """\
host                   : xenhost
release                : 6.1.0-50-amd64
version                : #1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-07-02)
machine                : x86_64
nr_cpus                : 2
max_cpu_id             : 1
nr_nodes               : 1
cores_per_socket       : 2
threads_per_core       : 1
cpu_mhz                : 2596.127
virt_caps              : pv hvm hap shadow gnttab-v1 gnttab-v2
total_memory           : 2047
free_memory            : 1256
xen_version            : 4.17.5
xen_scheduler          : credit
xen_changeset          : \n\
xen_commandline        : console=com1 com1=115200,8n1 dom0_mem=768M,max:768M sched=credit
"""

XL_LIST = (
    "Name                                        ID   Mem VCPUs\tState\tTime(s)\n"
    "Domain-0                                     0   768     2     r-----      41.9\n"
    "domu1                                        1   128     1     -b----       4.4\n"
    "crashy                                       3   128     1     ---sc-       0.7\n"
)

XL_LIST_L = """[
    {
        "domid": 1,
        "config": {
            "c_info": {
                "type": "pv",
                "name": "domu1",
                "domid": 4294967295,
                "uuid": "05424b7f-f54e-48c0-87fe-7aa7188e6570",
                "run_hotplug_scripts": "True"
            },
            "b_info": {
                "max_vcpus": 1,
                "avail_vcpus": [
                    0
                ],
                "max_memkb": 131072,
                "target_memkb": 131072,
                "sched_params": {"sched": "credit", "weight": 256, "cap": 0}
            },
            "disks": [
                {"pdev_path": "/root/disk1.img", "vdev": "xvdb", "format": "raw", "readwrite": 1}
            ],
            "nics": [
                {
                    "devid": 0,
                    "mac": "00:16:3e:00:00:01",
                    "bridge": "xenbr0",
                    "nictype": "vif"
                }
            ],
            "on_reboot": "restart"
        }
    }
]
"""

XENTOP = """\
      NAME  STATE   CPU(sec) CPU(%)     MEM(k) MEM(%)  MAXMEM(k) MAXMEM(%) VCPUS NETS NETTX(k) NETRX(k) VBDS   VBD_OO   VBD_RD   VBD_WR  VBD_RSECT  VBD_WSECT SSID
  Domain-0 -----r         57    0.0     786432   37.5     786432      37.5     2    0        0        0    0        0        0        0          0          0    0
     domu1 --b---          4    0.0     131072    6.3     132096       6.3     1    1        1        0    0        0        0        0          0          0    0
      NAME  STATE   CPU(sec) CPU(%)     MEM(k) MEM(%)  MAXMEM(k) MAXMEM(%) VCPUS NETS NETTX(k) NETRX(k) VBDS   VBD_OO   VBD_RD   VBD_WR  VBD_RSECT  VBD_WSECT SSID
  Domain-0 -----r         57   10.0     786432   37.5   no limit       n/a     2    0        0        0    0        0        0        0          0          0    0
     domu1 --b---          4    0.3     131072    6.3     132096       6.3     1    1        3        2    2        0        6        1         48          8    0
"""  # noqa: E501

BLOCK_LIST = """\
Vdev  BE  handle state evt-ch ring-ref BE-path                       
51728 0   1      4     10     522      /local/domain/0/backend/vbd/1/51728
51744 0   1      4     11     524      /local/domain/0/backend/vbd/1/51744
"""  # noqa: W291

NETWORK_LIST = """\
Idx BE Mac Addr.         handle state evt-ch   tx-/rx-ring-ref BE-path                       
0   0  00:16:3e:00:00:01     0     4     -1   520/521         /local/domain/0/backend/vif/1/0
3   0  00:16:3E:50:BC:E9     3     4     -1  2062/2063        /local/domain/0/backend/vif/1/3
"""  # noqa: W291


def test_xl_info_typed_and_raw() -> None:
    info = parse.host_info(XL_INFO, "processor : 0\nmodel name\t: AMD EPYC 7B13\n")
    assert (info.hostname, info.arch, info.nr_cpus, info.cpu_mhz) == ("xenhost", "x86_64", 2, 2596.127)
    assert (info.total_memory_mib, info.free_memory_mib) == (2047, 1256)
    assert (info.xen_version, info.xen_scheduler, info.kernel_release) == (
        "4.17.5",
        "credit",
        "6.1.0-50-amd64",
    )
    assert info.model_name == "AMD EPYC 7B13"
    assert info.raw["xen_changeset"] == ""
    assert info.raw["xen_commandline"].startswith("console=com1")


def test_xl_list_rows_and_states() -> None:
    rows = parse.xl_list(XL_LIST)
    assert [(r.name, r.domid, r.memory_mib, r.flags, r.cpu_seconds) for r in rows] == [
        ("Domain-0", 0, 768, "r-----", 41.9),
        ("domu1", 1, 128, "-b----", 4.4),
        ("crashy", 3, 128, "---sc-", 0.7),
    ]
    assert [parse.domain_state(r.flags) for r in rows] == [
        common_pb2.DOMAIN_STATE_RUNNING,
        common_pb2.DOMAIN_STATE_BLOCKED,
        common_pb2.DOMAIN_STATE_CRASHED,
    ]


def test_every_flag_combination_has_one_state() -> None:
    expected = {
        "------": common_pb2.DOMAIN_STATE_RUNNABLE,
        "--p---": common_pb2.DOMAIN_STATE_PAUSED,
        "--ps--": common_pb2.DOMAIN_STATE_SHUTDOWN,  # xl's monitor tearing it down (NOTES 5)
        "---s--": common_pb2.DOMAIN_STATE_SHUTDOWN,
        "---sr-": common_pb2.DOMAIN_STATE_SHUTDOWN,
        "-----d": common_pb2.DOMAIN_STATE_DYING,
        "r----d": common_pb2.DOMAIN_STATE_DYING,
    }
    for flags, state in expected.items():
        assert parse.domain_state(flags) == state, flags


def test_xentop_flags_are_in_another_order() -> None:
    assert parse.xentop_flags_as_xl("-----r") == "r-----"
    assert parse.xentop_flags_as_xl("--b---") == "-b----"
    assert parse.xentop_flags_as_xl("---c--") == "---sc-"
    assert parse.xentop_flags_as_xl("-s--p-") == "--ps--"


def test_xentop_reads_only_the_last_iteration() -> None:
    rows = parse.xentop(XENTOP)
    assert set(rows) == {"Domain-0", "domu1"}
    dom0, domu = rows["Domain-0"], rows["domu1"]
    assert (dom0.cpu_percent, dom0.max_memory_kib, dom0.flags) == (10.0, 0, "-----r")
    assert (domu.cpu_percent, domu.memory_kib, domu.net_tx_kib, domu.net_rx_kib) == (0.3, 131072, 3, 2)
    assert (domu.vbd_read_ops, domu.vbd_write_ops, domu.vbd_read_sectors, domu.vbd_write_sectors) == (
        6,
        1,
        48,
        8,
    )


def test_xentop_with_long_names_and_detail_lines() -> None:
    text = XENTOP.replace("     domu1", "one-1234567") + "VCPUs(sec):   0:          4s\n"
    assert "one-1234567" in parse.xentop(text)
    assert parse.xentop("") == {}


def test_the_probe_joins_list_details_and_samples() -> None:
    domains = parse.domains(parse.xl_list(XL_LIST), parse.xl_list_long(XL_LIST_L), parse.xentop(XENTOP))
    by_name = {d.name: d for d in domains}
    domu = by_name["domu1"]
    assert (domu.domid, domu.uuid, domu.flags, domu.vcpus) == (
        1,
        "05424b7f-f54e-48c0-87fe-7aa7188e6570",
        "-b----",
        1,
    )
    assert (domu.cpu_seconds, domu.cpu_percent, domu.memory_kib, domu.max_memory_kib) == (
        4.4,
        0.3,
        131072,
        132096,
    )
    assert (domu.net_tx_bytes, domu.net_rx_bytes, domu.block_read_bytes) == (3072, 2048, 48 * 512)
    assert [(d.vdev, d.pdev_path, d.readwrite) for d in domu.disks] == [("xvdb", "/root/disk1.img", True)]
    assert [(n.devid, n.mac, n.bridge) for n in domu.nics] == [(0, "00:16:3e:00:00:01", "xenbr0")]
    assert '"uuid": "05424b7f' in domu.config_json
    assert by_name["Domain-0"].memory_kib == 786432
    assert by_name["crashy"].state == common_pb2.DOMAIN_STATE_CRASHED


def test_devices() -> None:
    assert parse.block_list(BLOCK_LIST) == [51728, 51744]
    assert parse.vdev_number("xvdb") == 51728 and parse.vdev_number("xvdc") == 51744
    assert parse.vdev_number("hdc") == (22 << 8) and parse.vdev_number("sda") == 2048
    assert parse.vdev_number("xvdq") == (1 << 28) | (16 << 8)
    rows = parse.network_list(NETWORK_LIST)
    assert [(r.devid, r.mac) for r in rows] == [(0, "00:16:3e:00:00:01"), (3, "00:16:3e:50:bc:e9")]


def test_xl_messages() -> None:
    assert parse.says_no_such_domain("nosuch is an invalid domain identifier (rc=-6)\n")
    assert parse.says_domain_exists(
        "libxl: error: libxl_domain.c:81:libxl__domain_rename: "
        'Domain 3:Domain with name "domu1" already exists.'
    )
    assert parse.says_device_not_connected("Error: Device xvdz not connected.\n")
    assert parse.says_restore_file_missing("Can't open restore file: No such file or directory\n")


def test_passwords_are_masked() -> None:
    text = 'vfb = [ "type=vnc,vncpasswd=s3cret" ]\nvncpasswd = "s3cret"\nspicepasswd=\'x y\'\n'
    masked = parse.redact(text)
    assert "s3cret" not in masked and "x y" not in masked
    assert masked.count('"***"') == 3


def test_df() -> None:
    text = "File                     1M-blocks  Used Avail\n/ds/0  100 40 60\n/ds/1 200 0 200\n"
    assert parse.df(text) == {"/ds/0": (100, 40, 60), "/ds/1": (200, 0, 200)}


def test_checkpoint_name_from_an_xl_save_header() -> None:
    config = b'{"c_info": {"name": "one-7"}}\0'
    optdata = struct.pack("=I", len(config)) + config
    header = struct.pack("=32sIIII", b"Xen saved domain, xl format\n \0 \r", 0x01020304, 3, 0, len(optdata))
    assert parse.checkpoint_domain_name(header + optdata + b"guest memory...") == "one-7"
    assert parse.checkpoint_domain_name(b"not a save file" * 10) is None
    assert parse.checkpoint_domain_name(header + optdata[:10]) is None


def test_disk_files_are_sized_by_the_space_they_take_and_matched_to_domains() -> None:
    sizes = parse.disk_files(
        "/var/lib/one/datastores/0/7/disk.0\t1073741824\t409600\n"
        "/var/lib/one/datastores/0/7/disk.1\t1048576\t0\n"
        "find: '/var/lib/one/datastores/9': No such file or directory\n"
    )
    assert sizes == {
        "/var/lib/one/datastores/0/7/disk.0": 409600 * 512,
        "/var/lib/one/datastores/0/7/disk.1": 0,
    }
    domain = common_pb2.Domain(name="one-7")
    domain.disks.add(vdev="xvda", pdev_path="/var/lib/one//datastores/0/7/disk.0")  # oned's double slash
    domain.disks.add(vdev="xvdb", pdev_path="/srv/elsewhere.img")
    parse.apply_disk_sizes([domain], sizes)
    assert [d.size_bytes for d in domain.disks] == [409600 * 512, 0]
