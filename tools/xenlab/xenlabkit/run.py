"""Start, watch and stop lab hosts: one QEMU (TCG) each, running Xen 4.17 with a Debian 12 dom0.

Host keys: `up` generates each host's ed25519 host key here, outside, writes known_hosts from
it, and hands the key to dom0 on a small read-only config drive (ext4, label XENLABCFG) that
dom0's rc script installs before it starts sshd. The first SSH connection is then already
verified against a key that never crossed the network; dom0 never generates one of its own.
"""

from __future__ import annotations

import datetime
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import preflight
from .build import build
from .errors import LabError
from .recipe import Cache, Image, host_packages
from .state import HostInfo, LabInfo, Peer, default_path, load, save
from .util import log, run, tail

USER = "oneadmin"
LINK_NET = "169.254.100"  # the link between lab hosts (eth1 in each dom0)
SERIAL_TAIL = 80
# QEMU TCG facts for Xen on these machines. The CPU is an old AMD model plus SVM (PVH and HVM
# guests need it; TCG emulates AMD's, not Intel's) with nested paging, and without RDTSCP (QEMU's
# emulated SVM mis-reports RDTSCP exits and Xen kills PVH/HVM guests). Not `max` (less SMAP,
# which crashes the PV dom0): with it dom0 processes got corrupted under load, on QEMU 7.2 and
# on 10.0 (bookworm-backports, tried): xl segfaults, `Inconsistency detected by ld.so`, sshd
# "Corrupted MAC on input" and "error in libcrypto", the guest kernel "unable to XZ decompress"
# and sftp-server failing until reboot (page cache). Leaving out the AVX family made it rarer,
# one TCG thread per host did not stop it; a model without XSAVE (Opteron_G3: SSE up to SSE4a,
# FXSAVE only) did, and runs faster (the whole-life test 286 s against 319 s with `max`; QEMU
# 10.0 ran it in 187 s, but bookworm's 7.2 is what a fresh machine has).
# XENLAB_CPU and XENLAB_ACCEL override these.
CPU = "Opteron_G3,+svm,+npt,-rdtscp"
ACCEL = "tcg,thread=multi,tb-size=256"
# sched=credit: OpenNebula's credit weights (4.17 defaults to credit2). bootscrub=0: scrubbing the
# free RAM in emulated code costs minutes of CPU under TCG, for nothing in a throwaway lab.
XEN_ARGS = (
    "console=com1 com1=115200,8n1 dom0_mem={dom0}M,max:{dom0}M dom0_max_vcpus=2 sched=credit "
    "bootscrub=0 loglvl=all guest_loglvl=all console_timestamps=boot noreboot"
)
DOM0_ARGS = "root=/dev/vda rw rootwait console=hvc0 earlyprintk=xen net.ifnames=0 panic=0 loglevel=5"
PANIC = re.compile(r"Kernel panic|Panic on CPU|FATAL TRAP|Oops:|XENLAB-DOM0-NO(?:CONFIG|ROOT)")


def memory_mib() -> int:
    return int(os.environ.get("XENLAB_MEM") or 2048)


def dom0_mib() -> int:
    return int(os.environ.get("XENLAB_DOM0_MEM") or 768)


def boot_timeout() -> float:
    return float(os.environ.get("XENLAB_BOOT_TIMEOUT") or 600)


@dataclass
class HostPlan:
    """One lab host to start: names, ports and its files under the run directory."""

    name: str
    index: int  # 1-based
    dir: Path
    port: int
    link_address: str | None = None  # CIDR on eth1
    link: tuple[str, int] | None = None  # ("listen" | "connect", loopback port)
    peer: str | None = None

    @property
    def overlay(self) -> Path:
        return self.dir / "overlay.qcow2"

    @property
    def config_drive(self) -> Path:
        return self.dir / "config.img"

    @property
    def serial_log(self) -> Path:
        return self.dir / "serial.log"

    @property
    def pidfile(self) -> Path:
        return self.dir / "qemu.pid"

    @property
    def qemu_log(self) -> Path:
        return self.dir / "qemu.log"

    @property
    def host_key(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def link_ip(self) -> str | None:
        return self.link_address.split("/")[0] if self.link_address else None


def plan_hosts(run_dir: Path, count: int, ports: list[int], link_port: int | None) -> list[HostPlan]:
    names = [f"xen{i}" for i in range(1, count + 1)]
    plans = []
    for i, name in enumerate(names, start=1):
        plan = HostPlan(name=name, index=i, dir=run_dir / name, port=ports[i - 1])
        if count == 2:
            assert link_port is not None
            plan.link_address = f"{LINK_NET}.{i}/24"
            plan.link = ("listen" if i == 1 else "connect", link_port)
            plan.peer = names[2 - i]
        plans.append(plan)
    return plans


def qemu_argv(plan: HostPlan, image: Image) -> list[str]:
    """The QEMU command line of one lab host (daemonized, pid file, serial log to a file)."""
    for path in (image.xen, image.kernel, image.initrd, image.disk, plan.dir):
        if re.search(r"[\s,]", str(path)):
            raise LabError(f"QEMU cannot take a path with a comma or a blank: {path}")
    mac = f"52:54:00:78:00:{plan.index:02x}"
    argv = [
        "qemu-system-x86_64",
        "-name",
        f"onexen-xenlab-{plan.name}",
        "-accel",
        os.environ.get("XENLAB_ACCEL") or ACCEL,
        "-cpu",
        os.environ.get("XENLAB_CPU") or CPU,
        "-M",
        "pc",
        "-m",
        str(memory_mib()),
        "-smp",
        "2",
        "-display",
        "none",
        "-vga",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
        "-serial",
        f"file:{plan.serial_log}",
        "-kernel",
        str(image.xen),
        "-append",
        XEN_ARGS.format(dom0=dom0_mib()),
        # multiboot modules: dom0's kernel (with its command line) and its initramfs
        "-initrd",
        f"{image.kernel} {DOM0_ARGS},{image.initrd}",
        "-drive",
        f"file={plan.overlay},if=virtio,format=qcow2,cache=unsafe",
        "-drive",
        f"file={plan.config_drive},if=virtio,format=raw,readonly=on",
        "-netdev",
        f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{plan.port}-:22",
        "-device",
        f"virtio-net-pci,netdev=n0,mac={mac}",
    ]
    if plan.link:
        mode, port = plan.link
        argv += [
            "-netdev",
            f"socket,id=n1,{mode}=127.0.0.1:{port}",
            "-device",
            f"virtio-net-pci,netdev=n1,mac=52:54:00:78:01:{plan.index:02x}",
        ]
    argv += ["-pidfile", str(plan.pidfile), "-daemonize"]
    return argv


def free_port(taken: set[int]) -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            taken.add(port)
            return port


# ---------------------------------------------------------------- keys and the config drive


def keygen(path: Path, comment: str) -> str:
    """A new ed25519 key pair at `path`; returns the public key line ("ssh-ed25519 AAAA... comment")."""
    path.unlink(missing_ok=True)
    path.with_suffix(".pub").unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path])
    return path.with_name(path.name + ".pub").read_text().strip()


def public_key(line: str) -> str:
    """'ssh-ed25519 AAAA...' without the comment."""
    return " ".join(line.split()[:2])


def outside_known_hosts(plans: list[HostPlan], keys: dict[str, str]) -> str:
    return "".join(f"[127.0.0.1]:{p.port} {public_key(keys[p.name])}\n" for p in plans)


def dom0_known_hosts(plans: list[HostPlan], keys: dict[str, str], me: HostPlan) -> str:
    """/etc/ssh/ssh_known_hosts in `me`'s dom0: every lab host by name and link address, and itself."""
    lines = []
    for plan in plans:
        names = [plan.name] + ([plan.link_ip] if plan.link_ip else [])
        if plan is me:
            names += ["localhost", "127.0.0.1"]
        lines.append(f"{','.join(names)} {public_key(keys[plan.name])}\n")
    return "".join(lines)


def make_config_drive(
    plan: HostPlan, plans: list[HostPlan], keys: dict[str, str], authorized: str, peer_key: Path
) -> None:
    files = plan.dir / "config"
    files.mkdir(mode=0o700)
    (files / "hostname").write_text(plan.name + "\n")
    (files / "hosts").write_text("".join(f"{p.link_ip} {p.name}\n" for p in plans if p.link_ip))
    if plan.link_address:
        (files / "link_address").write_text(plan.link_address + "\n")
    for suffix in ("", ".pub"):
        (files / f"ssh_host_ed25519_key{suffix}").write_bytes(
            plan.host_key.with_name(plan.host_key.name + suffix).read_bytes()
        )
        (files / f"peer_ed25519{suffix}").write_bytes(peer_key.with_name(peer_key.name + suffix).read_bytes())
    (files / "authorized_keys").write_text(authorized)
    (files / "ssh_known_hosts").write_text(dom0_known_hosts(plans, keys, plan))
    run(["truncate", "-s", "8M", plan.config_drive])
    run(["mkfs.ext4", "-q", "-F", "-L", "XENLABCFG", "-d", files, plan.config_drive])
    for path in files.iterdir():
        path.unlink()
    files.rmdir()
    plan.config_drive.chmod(0o600)


# ---------------------------------------------------------------- processes


def qemu_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def is_our_qemu(pid: int, overlay: Path) -> bool:
    """True when `pid` is a QEMU running on `overlay` (so a reused pid is never killed)."""
    argv = qemu_cmdline(pid)
    if not argv or not Path(argv[0]).name.startswith("qemu-system"):
        return False
    return f"file={overlay}," in " ".join(argv)


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), None when it is gone: tells a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def stop_qemu(pid: int, overlay: Path, name: str) -> None:
    """SIGTERM, SIGKILL after 10 s; returns once the process is gone (its memory freed)."""
    if not is_our_qemu(pid, overlay):
        log(f"{name}: pid {pid} is not our QEMU (any more); left alone")
        return
    started = start_time(pid)
    os.kill(pid, signal.SIGTERM)
    for tick in range(150):
        if start_time(pid) != started:
            break
        if tick == 100 and is_our_qemu(pid, overlay):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    log(f"{name}: stopped QEMU pid {pid}")


def start_qemu(plan: HostPlan, image: Image) -> int:
    plan.serial_log.unlink(missing_ok=True)
    plan.pidfile.unlink(missing_ok=True)
    with plan.qemu_log.open("w") as out:
        done = subprocess.run(qemu_argv(plan, image), stdout=out, stderr=subprocess.STDOUT, timeout=120)
    pid = read_pid(plan.pidfile)
    if done.returncode != 0 or pid is None:
        raise LabError(f"{plan.name}: QEMU did not start (exit {done.returncode}): {tail(plan.qemu_log, 10)}")
    return pid


# ---------------------------------------------------------------- ssh


def ssh_argv(info: HostInfo, command: str = "", *, user: str | None = None) -> list[str]:
    """ssh to a lab dom0 with the lab's key, verifying the host key against the lab's known_hosts only."""
    argv = [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        info.key,
        "-p",
        str(info.port),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={info.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=5",
        "-o",
        "LogLevel=ERROR",
        f"{user or info.user}@{info.address}",
    ]
    return argv + ([command] if command else [])


def probe(info: HostInfo) -> tuple[bool, str]:
    """One try: `sudo -n xl info` as oneadmin. (answered, output or error)."""
    try:
        done = subprocess.run(ssh_argv(info, "sudo -n xl info"), capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return False, "ssh timed out"
    if done.returncode == 0:
        return True, done.stdout
    return False, done.stderr.strip() or f"exit {done.returncode}"


def xl_info_field(output: str, name: str) -> str:
    match = re.search(rf"^{name}\s*:\s*(.*)$", output, re.M)
    return match.group(1).strip() if match else ""


# ---------------------------------------------------------------- the lab


class Lab:
    """The lab of one checkout: its description file and its run directory beside it."""

    def __init__(self, state_path: Path | None = None, cache: Cache | None = None) -> None:
        self.state_path = state_path or default_path()
        self.run_dir = self.state_path.parent / "xenlab"
        self.cache = cache or Cache.from_env()

    def info(self) -> LabInfo | None:
        return load(self.state_path)

    def running(self, info: LabInfo | None = None) -> bool:
        info = info or self.info()
        if info is None:
            return False
        return all(is_our_qemu(h.qemu_pid, Path(h.run_dir) / "overlay.qcow2") for h in info.hosts.values())

    # -- up

    def up(self, hosts: int, first_port: int | None = None, timeout: float | None = None) -> LabInfo:
        if hosts not in (1, 2):
            raise LabError("--hosts must be 1 or 2")
        info = self.info()
        if info and self.running(info):
            if len(info.hosts) == hosts and info.ready:
                log(f"already running: {', '.join(f'{h.name} port {h.port}' for h in info.hosts.values())}")
                return info
            raise LabError(
                f"a lab with {len(info.hosts)} host(s) is already running "
                f"({self.state_path}): run `xenlab down` first"
            )
        self.down(quiet=True)
        preflight.check_machine(hosts=hosts, run_dir=self.run_dir, packages=host_packages())
        image = build(self.cache)
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            return self._start(image, hosts, first_port, timeout or boot_timeout())
        except BaseException:
            self.down(quiet=True)
            raise

    def _start(self, image: Image, count: int, first_port: int | None, timeout: float) -> LabInfo:
        for attempt in range(3):
            taken: set[int] = set()
            if first_port:
                ports = [first_port + i for i in range(count)]
            else:
                ports = [free_port(taken) for _ in range(count)]
            link_port = free_port(taken | set(ports)) if count == 2 else None
            plans = plan_hosts(self.run_dir, count, ports, link_port)
            keys = self._prepare(plans, image)
            try:
                pids = {p.name: start_qemu(p, image) for p in plans}
                break
            except LabError as error:
                self.down(quiet=True)
                if first_port or "Address already in use" not in str(error) or attempt == 2:
                    raise
                log(f"port taken, trying others: {error}")
        info = self._describe(plans, keys, pids, image)
        save(info, self.state_path)
        log(
            f"QEMU started ({', '.join(f'{p.name} pid {pids[p.name]} port {p.port}' for p in plans)}); "
            f"waiting for SSH with the known host keys (timeout {timeout:.0f}s)"
        )
        self._wait(info, plans, timeout)
        info.ready = True
        save(info, self.state_path)
        return info

    def _prepare(self, plans: list[HostPlan], image: Image) -> dict[str, str]:
        """Fresh overlays, keys and config drives for every host; known_hosts for the outside."""
        peer_key = self.run_dir / "peer_ed25519"
        peer_pub = keygen(peer_key, "onexen-xenlab-dom0")
        client_pub = self.cache.client_key.with_suffix(".pub").read_text().strip()
        keys = {}
        for plan in plans:
            plan.dir.mkdir(mode=0o700, exist_ok=True)
            for stale in (plan.overlay, plan.config_drive, plan.dir / "config"):
                if stale.is_dir():
                    run(["rm", "-rf", stale])
                stale.unlink(missing_ok=True)
            run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", image.disk, "-F", "raw", plan.overlay])
            keys[plan.name] = keygen(plan.host_key, f"onexen-xenlab-{plan.name}-host")
        for plan in plans:
            make_config_drive(plan, plans, keys, f"{client_pub}\n{peer_pub}\n", peer_key)
        (self.run_dir / "known_hosts").write_text(outside_known_hosts(plans, keys))
        return keys

    def _describe(
        self, plans: list[HostPlan], keys: dict[str, str], pids: dict[str, int], image: Image
    ) -> LabInfo:
        known_hosts = str(self.run_dir / "known_hosts")
        hosts = {}
        for plan in plans:
            peer = next((p for p in plans if p.name == plan.peer), None)
            hosts[plan.name] = HostInfo(
                name=plan.name,
                address="127.0.0.1",
                port=plan.port,
                user=USER,
                key=str(self.cache.client_key),
                known_hosts=known_hosts,
                host_key=public_key(keys[plan.name]),
                serial_log=str(plan.serial_log),
                qemu_pid=pids[plan.name],
                run_dir=str(plan.dir),
                link_address=plan.link_ip,
                peer=Peer(peer.name, peer.link_ip or "") if peer else None,
            )
        return LabInfo(
            run_dir=str(self.run_dir),
            image=str(image.dir),
            recipe=image.dir.name.removeprefix("image-"),
            key=str(self.cache.client_key),
            known_hosts=known_hosts,
            hosts=hosts,
            started_at=datetime.datetime.now().isoformat(timespec="seconds"),
        )

    def _wait(self, info: LabInfo, plans: list[HostPlan], timeout: float) -> None:
        t0 = time.monotonic()
        pending = {p.name: p for p in plans}
        last_error: dict[str, str] = {}
        while pending:
            for name, plan in list(pending.items()):
                host = info.hosts[name]
                if not is_our_qemu(host.qemu_pid, plan.overlay):
                    raise self._boot_failure(plan, "QEMU exited during boot")
                if PANIC.search(tail(plan.serial_log, 400)):
                    raise self._boot_failure(plan, "dom0 or Xen failed during boot (see the serial log)")
                answered, output = probe(host)
                if answered:
                    scheduler = xl_info_field(output, "xen_scheduler")
                    if scheduler != "credit":
                        raise self._boot_failure(plan, f"xen_scheduler is {scheduler!r}, expected 'credit'")
                    host.boot_seconds = round(time.monotonic() - t0, 1)
                    log(
                        f"{name}: up after {host.boot_seconds}s ({xl_info_field(output, 'xen_version')}, "
                        f"scheduler {scheduler}), ssh -p {host.port} {host.user}@{host.address}"
                    )
                    del pending[name]
                elif "HOST IDENTIFICATION HAS CHANGED" in output or "verification failed" in output:
                    raise self._boot_failure(plan, f"host key mismatch: {output}")
                else:
                    last_error[name] = output
            if pending and time.monotonic() - t0 > timeout:
                plan = next(iter(pending.values()))
                last = last_error.get(plan.name)
                raise self._boot_failure(plan, f"no SSH answer in {timeout:.0f}s (last: {last})")
            if pending:
                time.sleep(2)

    def _boot_failure(self, plan: HostPlan, why: str) -> LabError:
        return LabError(
            f"{plan.name}: {why}\n--- last {SERIAL_TAIL} lines of {plan.serial_log}:\n"
            f"{tail(plan.serial_log, SERIAL_TAIL)}\n--- end of serial log"
        )

    # -- down

    def down(self, *, quiet: bool = False) -> int:
        """Stop every QEMU this lab started (pids from its own files, cmdline checked). Idempotent."""
        stopped = 0
        info = self.info()
        pids: dict[Path, tuple[str, int]] = {}
        if info:
            for host in info.hosts.values():
                pids[Path(host.run_dir)] = (host.name, host.qemu_pid)
        for pidfile in self.run_dir.glob("*/qemu.pid"):
            pid = read_pid(pidfile)
            if pid is not None:
                pids[pidfile.parent] = (pidfile.parent.name, pid)
        for host_dir, (name, pid) in sorted(pids.items()):
            if is_our_qemu(pid, host_dir / "overlay.qcow2"):
                stop_qemu(pid, host_dir / "overlay.qcow2", name)
                stopped += 1
            # the overlay and the config drive (private keys) go; serial and QEMU logs stay for diagnosis
            for path in ("qemu.pid", "overlay.qcow2", "config.img", "ssh_host_ed25519_key"):
                (host_dir / path).unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)
        (self.run_dir / "peer_ed25519").unlink(missing_ok=True)
        if not quiet:
            log(f"stopped {stopped} lab host(s)" if stopped else "no lab host running")
        return stopped

    # -- status

    def status(self) -> tuple[bool, str]:
        info = self.info()
        if info is None:
            return False, f"no lab ({self.state_path} does not exist)"
        lines = [f"lab {self.state_path} (ready: {info.ready}, image {Path(info.image).name})"]
        alive_all = True
        for host in info.hosts.values():
            alive = is_our_qemu(host.qemu_pid, Path(host.run_dir) / "overlay.qcow2")
            alive_all &= alive
            usage = process_usage(host.qemu_pid) if alive else "not running"
            peer = f", peer {host.peer.name} {host.peer.address}" if host.peer else ""
            lines.append(
                f"  {host.name}: ssh -p {host.port} {host.user}@{host.address}, pid {host.qemu_pid} "
                f"({usage}){peer}"
            )
        return alive_all, "\n".join(lines)

    def host(self, name: str | None) -> HostInfo:
        info = self.info()
        if info is None:
            raise LabError(f"no lab running ({self.state_path} does not exist): run `xenlab up`")
        if name is None:
            return next(iter(info.hosts.values()))
        if name not in info.hosts:
            raise LabError(f"no host {name!r} in the lab (hosts: {', '.join(info.hosts)})")
        return info.hosts[name]


def process_usage(pid: int) -> str:
    """Resident and peak memory and CPU time of a process, from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return "gone"
    rss = re.search(r"VmRSS:\s*(\d+)", status)
    hwm = re.search(r"VmHWM:\s*(\d+)", status)
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return f"RSS {_mib(rss)} MiB, peak {_mib(hwm)} MiB, CPU {cpu:.0f}s"


def _mib(match: re.Match[str] | None) -> int:
    return int(match.group(1)) // 1024 if match else 0


def shell_command(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
