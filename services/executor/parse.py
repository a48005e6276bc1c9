"""What xl, xentop and df print, read into the common.proto messages. Pure: text in, values out.

Formats are Xen 4.17's (tests/fixtures and /work/shared/spec/xen-4.17). Things worth knowing:
- `xl list` prints the six state letters as r b p s <shutdown reason> d; xentop prints its
  own six in another order (d s b c p r) and marks a crash with its own letter;
- the first xentop iteration always shows 0.0 CPU%: only the last iteration is read;
- xentop's MAXMEM column says "no limit" (two words) for an unlimited domain;
- `xl block-list` names disks by device number (51712 = xvda), not by name.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from onexen.v1 import common_pb2

SECTOR_BYTES = 512

# ----------------------------------------------------------------------------- xl's messages


def says_no_such_domain(stderr: str) -> bool:
    # "NAME is an invalid domain identifier (rc=-6)" (NOTES item 6); block-* omit the rc.
    return "is an invalid domain identifier" in stderr


def says_domain_exists(stderr: str) -> bool:
    return bool(re.search(r'Domain with name "[^"]*" already exists', stderr))


def says_device_not_connected(stderr: str) -> bool:
    return bool(re.search(r"Device \S+ not connected|Unknown device", stderr))


def says_restore_file_missing(stderr: str) -> bool:
    return "Can't open restore file" in stderr


_SECRET = re.compile(
    r"""\b(vncpasswd|spicepasswd|passwd|password)(\s*[=:]\s*)("[^"\n]*"|'[^'\n]*'|[^\s,\]]+)""", re.I
)


def redact(text: str) -> str:
    """Masks VNC/SPICE passwords wherever xl might echo a config (logs, errors, replies)."""
    return _SECRET.sub(lambda m: f'{m.group(1)}{m.group(2)}"***"', text)


# ----------------------------------------------------------------------------- xl info


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def _float(value: str | None, default: float = 0.0) -> float:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return default


def info_pairs(text: str) -> dict[str, str]:
    """Every `key : value` line of `xl info` (the first occurrence of a key wins)."""
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key and " " not in key:
            pairs.setdefault(key, value.strip())
    return pairs


def host_info(xl_info: str, cpuinfo: str = "") -> common_pb2.HostInfo:
    raw = info_pairs(xl_info)
    return common_pb2.HostInfo(
        hostname=raw.get("host", ""),
        arch=raw.get("machine", ""),
        model_name=cpu_model_name(cpuinfo),
        nr_cpus=_int(raw.get("nr_cpus")),
        nr_nodes=_int(raw.get("nr_nodes")),
        cores_per_socket=_int(raw.get("cores_per_socket")),
        threads_per_core=_int(raw.get("threads_per_core")),
        cpu_mhz=_float(raw.get("cpu_mhz")),
        total_memory_mib=_int(raw.get("total_memory")),
        # xm printed max_free_memory; xl only has free_memory (which excludes dom0's share).
        free_memory_mib=_int(raw.get("max_free_memory", raw.get("free_memory"))),
        xen_version=raw.get("xen_version", ""),
        xen_scheduler=raw.get("xen_scheduler", ""),
        virt_caps=raw.get("virt_caps", ""),
        kernel_release=raw.get("release", ""),
        raw=raw,
    )


def cpu_model_name(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name":
            return value.strip()
    return ""


# ----------------------------------------------------------------------------- states

_XL_FLAGS = re.compile(r"[r-][b-][p-][s-][-rscwS][d-]")
_XENTOP_FLAGS = re.compile(r"[d-][s-][b-][c-][p-][r-]")


def domain_state(flags: str) -> common_pb2.DomainState.ValueType:
    """The one primary state of `xl list` flags; the worst condition wins."""
    f = flags.ljust(6, "-")
    if f[5] == "d":
        return common_pb2.DOMAIN_STATE_DYING
    if f[3] == "s" and f[4] == "c":
        return common_pb2.DOMAIN_STATE_CRASHED
    if f[3] == "s":
        return common_pb2.DOMAIN_STATE_SHUTDOWN
    if f[2] == "p":
        return common_pb2.DOMAIN_STATE_PAUSED
    if f[0] == "r":
        return common_pb2.DOMAIN_STATE_RUNNING
    if f[1] == "b":
        return common_pb2.DOMAIN_STATE_BLOCKED
    return common_pb2.DOMAIN_STATE_RUNNABLE


def xentop_flags_as_xl(flags: str) -> str:
    """xentop's `dsbcpr` letters rewritten in `xl list` order (`rbps?d`); a shutdown
    reason other than a crash is not in xentop's letters and shows as '-'."""
    d, s, b, c, p, r = tuple(flags.ljust(6, "-")[:6])
    shut = "s" if s == "s" or c == "c" else "-"
    return f"{r}{b}{p}{shut}{'c' if c == 'c' else '-'}{d}"


# ----------------------------------------------------------------------------- xl list


@dataclass(frozen=True)
class ListRow:
    name: str
    domid: int
    memory_mib: int
    vcpus: int
    flags: str
    cpu_seconds: float


def xl_list(text: str) -> list[ListRow]:
    """`xl list` rows (any of its variants: only the first six columns are read)."""
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("Name "):
            continue
        # Names may hold blanks; the five columns after the name never do.
        match = re.match(r"^(.*?)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S{6})\s+([\d.]+)(?:\s|$)", line)
        if not match or not _XL_FLAGS.fullmatch(match.group(5)):
            continue
        name, domid, mem, vcpus, flags, seconds = match.groups()
        rows.append(ListRow(name.strip(), int(domid), int(mem), int(vcpus), flags, float(seconds)))
    return rows


def xl_list_long(text: str) -> list[dict[str, Any]]:
    """The domains of `xl list -l` (a JSON array of {"domid", "config"}); ValueError if not that."""
    doc = json.loads(text) if text.strip() else []
    if not isinstance(doc, list) or not all(isinstance(d, dict) for d in doc):
        raise ValueError("xl list -l did not print a JSON array of domains")
    return doc


def _bool(value: Any) -> bool:
    # libxl's JSON writes booleans as "True"/"False" strings and flags as 0/1.
    return value in (True, 1, "1", "True", "true")


def domain_from_json(entry: Mapping[str, Any]) -> common_pb2.Domain:
    config = entry.get("config") or {}
    c_info = config.get("c_info") or {}
    b_info = config.get("b_info") or {}
    avail = b_info.get("avail_vcpus")
    vcpus = len(avail) if isinstance(avail, list) and avail else _int(b_info.get("max_vcpus"))
    domain = common_pb2.Domain(
        name=str(c_info.get("name", "")),
        domid=_int(entry.get("domid"), -1),
        uuid=str(c_info.get("uuid", "")),
        vcpus=vcpus,
        memory_kib=_int(b_info.get("target_memkb")),
        max_memory_kib=_int(b_info.get("max_memkb")),
        config_json=json.dumps(entry, indent=4),
    )
    for disk in config.get("disks") or []:
        domain.disks.append(
            common_pb2.DomainDisk(
                vdev=str(disk.get("vdev", "")),
                pdev_path=str(disk.get("pdev_path", "")),
                format=str(disk.get("format", "")),
                readwrite=_bool(disk.get("readwrite")),
                is_cdrom=_bool(disk.get("is_cdrom")),
            )
        )
    for nic in config.get("nics") or []:
        domain.nics.append(
            common_pb2.DomainNic(
                devid=_int(nic.get("devid")),
                mac=str(nic.get("mac", "")),
                bridge=str(nic.get("bridge", "")),
                ip=str(nic.get("ip", "")),
                model=str(nic.get("model", "")),
                script=str(nic.get("script", "")),
                vifname=str(nic.get("ifname", "")),
            )
        )
    return domain


# ----------------------------------------------------------------------------- xentop


@dataclass(frozen=True)
class XentopRow:
    name: str
    flags: str  # xentop's own order
    cpu_seconds: int
    cpu_percent: float
    memory_kib: int
    max_memory_kib: int  # 0 = no limit
    vcpus: int
    net_tx_kib: int
    net_rx_kib: int
    vbd_read_ops: int
    vbd_write_ops: int
    vbd_read_sectors: int
    vbd_write_sectors: int


def _is_header(tokens: list[str]) -> bool:
    return len(tokens) > 2 and tokens[0] == "NAME" and tokens[1] == "STATE"


def xentop(text: str) -> dict[str, XentopRow]:
    """The domains of xentop's last batch iteration, by name."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _is_header(line.split())]
    if not starts:
        return {}
    rows: dict[str, XentopRow] = {}
    for line in lines[starts[-1] + 1 :]:
        tokens = line.replace("no limit", "no-limit").split()
        if _is_header(tokens):
            continue  # -r repeats the header before each domain
        # Name, then 18 columns; detail lines (-v -n -x) have other shapes.
        if len(tokens) < 19 or not _XENTOP_FLAGS.fullmatch(tokens[-18]):
            continue
        name = " ".join(tokens[:-18])
        c = tokens[-18:]
        try:
            rows[name] = XentopRow(
                name=name,
                flags=c[0],
                cpu_seconds=int(c[1]),
                cpu_percent=float(c[2]),
                memory_kib=int(c[3]),
                max_memory_kib=0 if c[5] == "no-limit" else int(c[5]),
                vcpus=int(c[7]),
                net_tx_kib=int(c[9]),
                net_rx_kib=int(c[10]),
                vbd_read_ops=int(c[13]),
                vbd_write_ops=int(c[14]),
                vbd_read_sectors=int(c[15]),
                vbd_write_sectors=int(c[16]),
            )
        except ValueError:
            continue
    return rows


# ----------------------------------------------------------------------------- devices


def block_list(text: str) -> list[int]:
    """Device numbers of `xl block-list` rows."""
    numbers = []
    for line in text.splitlines():
        first = line.split(maxsplit=1)[0] if line.strip() else ""
        if first.isdigit():
            numbers.append(int(first))
    return numbers


@dataclass(frozen=True)
class NetworkRow:
    devid: int
    mac: str
    state: int


def network_list(text: str) -> list[NetworkRow]:
    rows = []
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) >= 5 and tokens[0].isdigit() and re.fullmatch(r"[0-9A-Fa-f:]{17}", tokens[2]):
            rows.append(NetworkRow(int(tokens[0]), tokens[2].lower(), _int(tokens[4], -1)))
    return rows


def vdev_number(vdev: str) -> int | None:
    """Xen's device number of a disk name, as block-list prints it (libxl__device_disk_dev_number)."""
    match = re.fullmatch(r"(xvd|hd|sd)([a-z]+)([1-9][0-9]*)?", vdev)
    if not match:
        return int(vdev) if vdev.isdigit() else None
    prefix, letters, part_text = match.groups()
    disk = 0
    for ch in letters:
        disk = disk * 26 + (ord(ch) - ord("a") + 1)
    disk -= 1
    part = int(part_text) if part_text else 0
    if prefix == "xvd":
        if disk < 16 and part < 16:
            return (202 << 8) | (disk << 4) | part
        if disk < (1 << 20) and part < 256:
            return (1 << 28) | (disk << 8) | part
        return None
    if prefix == "hd":
        if disk > 3 or part > 63:
            return None
        return ((3 if disk < 2 else 22) << 8) | ((disk & 1) << 6) | part
    if disk > 15 or part > 15:
        return None
    return (8 << 8) | (disk << 4) | part


# ----------------------------------------------------------------------------- the probe


def domains(
    listing: Iterable[ListRow],
    details: Iterable[Mapping[str, Any]],
    samples: Mapping[str, XentopRow],
) -> list[common_pb2.Domain]:
    """One Domain per domain `xl list` showed, with `xl list -l` details and xentop counters."""
    by_name: dict[str, Mapping[str, Any]] = {}
    for item in details:
        name = str(((item.get("config") or {}).get("c_info") or {}).get("name", ""))
        by_name[name] = item
    out = []
    for row in listing:
        entry = by_name.get(row.name)
        domain = domain_from_json(entry) if entry is not None else common_pb2.Domain(name=row.name)
        domain.domid = row.domid
        domain.flags = row.flags
        domain.state = domain_state(row.flags)
        domain.cpu_seconds = row.cpu_seconds
        if not domain.vcpus:
            domain.vcpus = row.vcpus
        if not domain.memory_kib:
            domain.memory_kib = row.memory_mib * 1024
        sample = samples.get(row.name)
        if sample is not None:
            apply_sample(domain, sample)
        out.append(domain)
    return out


def disk_files(text: str) -> dict[str, int]:
    """`find -printf '%p\\t%s\\t%b\\n'` lines: path -> bytes the file takes on disk (allocated
    512-byte blocks, as qemu-img's actual-size that OpenNebula reports for KVM: a sparse image
    counts for what it holds, not for its apparent size)."""
    sizes: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            continue
        sizes[parts[0]] = int(parts[2]) * 512
    return sizes


def apply_disk_sizes(domains: Iterable[common_pb2.Domain], sizes: Mapping[str, int]) -> None:
    """Fill each disk's size_bytes from the datastore listing (upstream computed these and threw
    them away); paths are compared as written and with doubled slashes folded (oned writes
    `/var/lib/one//datastores`)."""
    folded = {_fold(path): size for path, size in sizes.items()}
    for domain in domains:
        for disk in domain.disks:
            size = sizes.get(disk.pdev_path)
            if size is None:
                size = folded.get(_fold(disk.pdev_path))
            if size is not None:
                disk.size_bytes = size


def _fold(path: str) -> str:
    while "//" in path:
        path = path.replace("//", "/")
    return path


def apply_sample(domain: common_pb2.Domain, sample: XentopRow) -> None:
    domain.cpu_percent = sample.cpu_percent
    domain.memory_kib = sample.memory_kib
    if sample.max_memory_kib:
        domain.max_memory_kib = sample.max_memory_kib
    domain.net_tx_bytes = sample.net_tx_kib * 1024
    domain.net_rx_bytes = sample.net_rx_kib * 1024
    domain.block_read_ops = sample.vbd_read_ops
    domain.block_write_ops = sample.vbd_write_ops
    domain.block_read_bytes = sample.vbd_read_sectors * SECTOR_BYTES
    domain.block_write_bytes = sample.vbd_write_sectors * SECTOR_BYTES


def df(text: str) -> dict[str, tuple[int, int, int]]:
    """`df -B1M --output=file,size,used,avail` rows: path -> (total, used, free) MiB."""
    out = {}
    for line in text.splitlines()[1:]:
        tokens = line.split()
        if len(tokens) == 4 and all(t.isdigit() for t in tokens[1:]):
            out[tokens[0]] = (int(tokens[1]), int(tokens[2]), int(tokens[3]))
    return out


# ----------------------------------------------------------------------------- save files

_SAVE_MAGIC = b"Xen saved domain, xl format\n \0 \r"
_SAVE_HEADER = struct.Struct("=32sIIII")
_BYTE_ORDER = 0x01020304


def checkpoint_domain_name(head: bytes) -> str | None:
    """The domain name recorded in an xl save file (its header carries the domain's JSON config)."""
    if len(head) < _SAVE_HEADER.size + 4:
        return None
    magic, order, _mandatory, _optional, optlen = _SAVE_HEADER.unpack_from(head)
    if magic != _SAVE_MAGIC or order != _BYTE_ORDER or optlen < 4:
        return None
    (length,) = struct.unpack_from("=I", head, _SAVE_HEADER.size)
    start = _SAVE_HEADER.size + 4
    blob = head[start : start + length]
    if len(blob) < length:
        return None
    try:
        config = json.loads(blob.rstrip(b"\0").decode())
        name = config["c_info"]["name"]
    except (ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) else None
