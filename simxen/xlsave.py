# ruff: noqa: UP031  (the printf formats of xl and xentop, kept verbatim for exact columns)
"""xl save, restore, migrate and migrate-receive.

Migration follows tools/xl/xl_migrate.c: the sender runs ``sh -c "exec <ssh command> <host> xl
migrate-receive"``, both ends exchange xl's fixed handshake messages over that pipe, the stream
carries the xl header and the JSON domain config, and the domain is renamed to
``NAME--incoming`` (receiver) and ``NAME--migratedaway`` (sender) around the final "go".
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import time
from typing import IO, Any, BinaryIO

from simxen import savefile, xlparse
from simxen.model import CreateError, Domain, GuestRates, HostState
from simxen.savefile import TRUNCATED, StreamError
from simxen.xlcommon import Ctx, LongOpt, XlExit, find_domain, print_help, xl_getopt
from simxen.xlverbs import warn_stale_devices

# xl.h: the handshake messages.  The banner is sent without its NUL, the others with it.
BANNER = b"xl migration receiver ready, send binary domain data.\n"
READY = b"domain received, ready to unpause\0"
GO = b"domain is yours, you are cleared to unpause\0"
REPORT = b"my copy unpause results are as follows\0"

FAILED_BADLY = (
    "** Migration failed during final handshake **\n"
    "Domain state is now undefined !\n"
    "Please CHECK AT BOTH ENDS for running instances, before renaming and\n"
    " resuming at most one instance.  Two simultaneous instances of the domain\n"
    " would probably result in SEVERE DATA LOSS and it is now your\n"
    " responsibility to avoid that.  Sorry.\n"
)


def _arch(dom_type: str) -> str:
    return "HVM" if dom_type == "hvm" else "PV"


def guest_record(dom: Domain) -> dict[str, Any]:
    """What the stream carries in place of guest memory: how the guest behaves."""
    return {
        "load": dom.load,
        "ignore_acpi": dom.ignore_acpi,
        "rates": {
            "net_rx_bps": dom.rates.net_rx_bps,
            "net_tx_bps": dom.rates.net_tx_bps,
            "vbd_rd_rps": dom.rates.vbd_rd_rps,
            "vbd_wr_rps": dom.rates.vbd_wr_rps,
            "sectors_per_request": dom.rates.sectors_per_request,
        },
    }


def apply_guest_record(dom: Domain, record: dict[str, Any]) -> None:
    dom.load = float(record.get("load", dom.load))
    dom.ignore_acpi = bool(record.get("ignore_acpi", False))
    rates = record.get("rates")
    if isinstance(rates, dict):
        dom.rates = GuestRates(**rates)


def _restore_info_lines(dtype: str) -> tuple[list[str], list[str]]:
    """libxc's messages before and after it reads the guest's part of the stream."""
    mfn = random.randrange(0x60000, 0x7FFFF)
    before = [f"xc: info: Found x86 {_arch(dtype)} domain from Xen 4.17", "xc: info: Restoring domain"]
    after = [
        "xc: info: Restore successful",
        f"xc: info: XenStore: mfn {mfn:#x}, dom 0, evt 1",
        f"xc: info: Console: mfn {mfn - 1:#x}, dom 0, evt 2",
    ]
    return before, after


def _progress_lines(max_memkb: int) -> list[str]:
    total = max(max_memkb // 4, 1)
    step = max(total // 16, 1)
    lines = []
    done = 0
    while done < total:
        done = min(done + step, total)
        lines.append("xc: progress: Frames: %d/%d  %3d%%" % (done, total, done * 100 // total))
    lines.append("xc: progress: End of stream: 0/0    0%")
    return lines


def _domain_to_save(ctx: Ctx, state: HostState, qualifier: str) -> Domain:
    domid, dom = find_domain(ctx, state, qualifier)
    if dom is None:
        ctx.error(
            f"libxl: error: libxl_domain.c:2105:libxl_retrieve_domain_configuration: Domain {domid}:"
            "Fail to get domain name",
            "unable to retrieve domain configuration",
        )
        raise XlExit(1)
    return dom


def _override_config(ctx: Ctx, path: str) -> dict[str, Any]:
    result = xlparse.dry_run_file(path)
    if not result.ok or not isinstance(result.json, dict):
        ctx.err.write(result.stderr)
        raise XlExit(1)
    ctx.err.write(result.stderr)
    return result.json


# ----------------------------------------------------------------------------- save / restore


def cmd_save(ctx: Ctx, args: list[str]) -> int:
    opts, rest = xl_getopt(ctx, args, "cpD", [], "save", 2)
    if len(rest) > 3:
        print_help(ctx, "save")
        return 1
    flags = {o for o, _ in opts}
    filename = rest[1]
    with ctx.state() as state:
        dom = _domain_to_save(ctx, state, rest[0])
        if len(rest) > 2:
            config = _override_config(ctx, rest[2])
        else:
            warn_stale_devices(ctx, dom)
            config = dom.retrieved_config(for_save="D" not in flags)
        blob, hdr = savefile.header_and_config(config)
        try:
            fd = os.open(filename, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError:
            ctx.error(f"Failed to open temp file {filename} for writing")
            return 1
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            ctx.error(f"Saving to {filename} new xl format (info {hdr.info()})")
            ctx.error(f"xc: info: Saving domain {dom.domid}, type x86 {_arch(dom.dtype)}")
            f.write(savefile.encode_guest(guest_record(dom)))
        ctx.error(*_progress_lines(dom.max_memkb))
        if "c" in flags or "p" in flags:
            # The guest suspended and resumed: its xl monitor saw "suspended" and exited, so a
            # later shutdown leaves it as "---s--" until destroyed (NOTES item 4).
            dom.monitor = False
            if "p" in flags:
                dom.paused = True
        else:
            state.remove(dom.domid)
    return 0


def cmd_restore(ctx: Ctx, args: list[str]) -> int:
    longs = [LongOpt("vncviewer", False, "V"), LongOpt("vncviewer-autopass", False, "A")]
    opts, rest = xl_getopt(ctx, args, "FcpdeVA", longs, "restore", 1)
    flags = {o for o, _ in opts}
    if len(rest) == 1:
        cfg_file, path = None, rest[0]
    elif len(rest) == 2:
        cfg_file, path = rest[0], rest[1]
    else:
        print_help(ctx, "restore")
        return 1
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below, after reading the whole stream)
    except OSError as e:
        ctx.error(f"Can't open restore file: {e.strerror}")
        return 1
    with f:
        try:
            hdr = savefile.read_header(f, path)
            ctx.error(f"Loading new save file {path} (new xl fmt info {hdr.info()})")
            unsupported = hdr.mandatory_flags & ~(savefile.FLAG_JSON | savefile.FLAG_STREAMV2)
            if unsupported:
                ctx.error(
                    f"Savefile has mandatory flag(s) 0x{unsupported:x} which are not supported; need newer xl"
                )
                return 1
            if hdr.optional_data_len:
                json_note = " in JSON format" if hdr.mandatory_flags & savefile.FLAG_JSON else ""
                ctx.error(f" Savefile contains xl domain config{json_note}")
            config = savefile.read_config(f, hdr, path)
            if cfg_file is not None:
                config = _override_config(ctx, cfg_file)
            elif config is None:
                ctx.error("Config file not specified and none in save file")
                return 1
            else:
                ctx.error("Parsing config from <saved>")
            record = savefile.read_guest(f, path)
        except StreamError as e:
            ctx.error(*e.lines)
            return 1
    return _start_restored(ctx, config, record, paused="p" in flags, monitor="e" not in flags)


def _start_restored(
    ctx: Ctx, config: dict[str, Any], record: dict[str, Any], *, paused: bool, monitor: bool
) -> int:
    if ctx.facts.create_seconds:
        time.sleep(ctx.facts.create_seconds)
    now = ctx.now()
    with ctx.state() as state:
        try:
            dom = state.build_domain(config, now, ctx.facts, paused=paused, booting=False)
        except CreateError as e:
            ctx.error(*e.lines)
            return 1
        apply_guest_record(dom, record)
        dom.monitor = monitor
        before, after = _restore_info_lines(dom.dtype)
        ctx.error(*before, *after)
    return 0


# ----------------------------------------------------------------------------- migrate


def _read_exactly(stream: IO[bytes] | BinaryIO, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_fixed(ctx: Ctx, stream: IO[bytes] | BinaryIO, msg: bytes, what: str, rune: str | None) -> bool:
    source = "migration receiver stream" if rune is not None else "migration stream"
    data = _read_exactly(stream, len(msg))
    if data is None:
        ctx.error(f"{TRUNCATED} reading {what} from {source}")
        return False
    if data != msg:
        ctx.error(f"{source} contained unexpected data instead of {what}")
        if rune is not None:
            ctx.error(f"(command run was: {rune} )")
        return False
    return True


def _child_report(ctx: Ctx, child: subprocess.Popen[bytes]) -> None:
    """migration_child_report(): give the transport 2 s to exit and report a failure status."""
    try:
        status = child.wait(timeout=2)
    except subprocess.TimeoutExpired:
        ctx.error(
            f"migration child [{child.pid}] not exiting, no longer waiting (exit status will be unreported)"
        )
        return
    if status > 0:
        ctx.error(
            "libxl: info: libxl_exec.c:117:libxl_report_child_exitstatus: migration transport process "
            f"[{child.pid}] exited with error status {status}"
        )
    elif status < 0:
        ctx.error(
            "libxl: info: libxl_exec.c:117:libxl_report_child_exitstatus: migration transport process "
            f"[{child.pid}] died due to fatal signal {-status}"
        )


def build_rune(ssh_command: str, host: str, *, tty: bool, verbose: int, daemonize: bool, debug: bool,
               pause_after: bool) -> str:  # fmt: skip
    """The shell command xl runs to reach the receiver (main_migrate())."""
    if not ssh_command:
        return host
    return "exec {} {} xl{}{} migrate-receive{}{}{}".format(
        ssh_command,
        host,
        " -t" if tty else "",
        " -" + "v" * verbose if verbose else "",
        "",
        "" if daemonize else " -e",
        (" -d" if debug else "") + (" -p" if pause_after else ""),
    )


def cmd_migrate(ctx: Ctx, args: list[str]) -> int:
    longs = [LongOpt("debug", False, "debug"), LongOpt("live", False, "live")]
    opts, rest = xl_getopt(ctx, args, "FC:s:epD", longs, "migrate", 2)
    values = dict(opts)
    flags = set(values)
    ssh_command = values.get("s", "ssh")
    host = rest[1]
    with ctx.state() as state:
        dom = _domain_to_save(ctx, state, rest[0])
        if "C" in values:
            config = _override_config(ctx, values["C"])
        else:
            warn_stale_devices(ctx, dom)
            config = dom.retrieved_config(for_save="D" not in flags)
        domid, name, dtype = dom.domid, dom.name, dom.dtype
        record = guest_record(dom)
    rune = build_rune(
        ssh_command,
        host,
        tty=ctx.progress_cr or os.isatty(2),
        verbose=ctx.verbose,
        daemonize="e" not in flags,
        debug="debug" in flags,
        pause_after="p" in flags,
    )
    ctx.err.flush()
    ctx.out.flush()
    child = subprocess.Popen(["sh", "-c", rune], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    send, recv = child.stdin, child.stdout

    def failed_resume() -> int:
        _close(send)
        _child_report(ctx, child)
        ctx.error("Migration failed, resuming at sender.")
        return 1

    def failed_badly() -> int:
        ctx.err.write(FAILED_BADLY)
        _close(send)
        _child_report(ctx, child)
        return 1

    if not _read_fixed(ctx, recv, BANNER, "banner", rune):
        _close(send)
        _child_report(ctx, child)
        return 1
    blob, hdr = savefile.header_and_config(config)
    if not _write(send, blob):
        return failed_resume()
    ctx.error(f"Saving to migration stream new xl format (info {hdr.info()})")
    ctx.error(f"xc: info: Saving domain {domid}, type x86 {_arch(dtype)}")
    if not _write(send, savefile.encode_guest(record)):
        ctx.error("migration sender: libxl_domain_suspend failed (rc=-3)")
        return failed_resume()
    if not _read_fixed(ctx, recv, READY, "ready message", rune):
        return failed_resume()
    ctx.error("migration sender: Target has acknowledged transfer.")
    away = f"{name}--migratedaway"
    if not _rename(ctx, domid, away):
        return failed_resume()
    ctx.error("migration sender: Giving target permission to start.")
    if not _write(send, GO):
        return failed_badly()
    if not _read_fixed(ctx, recv, REPORT, "success/failure report message", rune):
        return failed_badly()
    status = _read_exactly(recv, 1)
    if status is None:
        ctx.error(f"{TRUNCATED} reading success/failure status from migration ack stream")
        return failed_badly()
    if status[0]:
        ctx.error(f"migration sender: Target reports startup failure (status code {status[0]}).")
        if not _read_fixed(ctx, recv, GO, "permission for sender to resume", rune):
            return failed_badly()
        ctx.error("migration sender: Trying to resume at our end.")
        _rename(ctx, domid, name)
        ctx.error("migration sender: Resumed OK.")
        ctx.error("Migration failed due to problems at target.")
        return 1
    # Let the transport relay the receiver's last messages before ours (xl itself just exits,
    # so over ssh its output could otherwise arrive in any order).
    _close(send)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=2)
    ctx.error("migration sender: Target reports successful startup.")
    with ctx.state() as state:
        state.remove(domid)
    ctx.error("Migration successful.")
    return 0


def _rename(ctx: Ctx, domid: int, new_name: str) -> bool:
    with ctx.state() as state:
        dom = state.get(domid)
        if dom is None:
            return False
        dom.name = new_name
    return True


def _write(stream: IO[bytes], data: bytes) -> bool:
    try:
        stream.write(data)
        stream.flush()
    except (BrokenPipeError, OSError, ValueError):
        return False
    return True


def _close(stream: IO[bytes]) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        stream.close()


def cmd_migrate_receive(ctx: Ctx, args: list[str]) -> int:
    longs = [
        LongOpt("colo", False, "colo"),
        LongOpt("coloft-script", True, "coloft"),
        LongOpt("userspace-colo-proxy", False, "proxy"),
    ]
    opts, rest = xl_getopt(ctx, args, "Fedrp", longs, "migrate-receive", 0)
    if rest:
        print_help(ctx, "migrate-receive")
        return 1
    flags = {o for o, _ in opts}
    recv = os.fdopen(0, "rb", buffering=0, closefd=False)
    send = os.fdopen(1, "wb", buffering=0, closefd=False)
    ctx.out = open(os.devnull, "w")  # noqa: SIM115  (stdout is the binary stream now)
    source = "<incoming migration stream>"

    ctx.error("migration target: Ready to receive domain.")
    if not _write(send, BANNER):
        return 1
    try:
        hdr = savefile.read_header(recv, source)
        ctx.error(f"Loading new save file {source} (new xl fmt info {hdr.info()})")
        if hdr.optional_data_len:
            ctx.error(" Savefile contains xl domain config in JSON format")
        config = savefile.read_config(recv, hdr, source)
        if config is None:
            ctx.error("Config file not specified and none in save file")
            raise StreamError([])
        ctx.error("Parsing config from <saved>")
        name = str(config.get("c_info", {}).get("name", ""))
        incoming = f"{name}--incoming"
        if ctx.facts.create_seconds:
            time.sleep(ctx.facts.create_seconds)
        now = ctx.now()
        with ctx.state() as state:
            try:
                dom = state.build_domain(config, now, ctx.facts, paused=True, name=incoming, booting=False)
            except CreateError as e:
                ctx.error(*e.lines)
                raise StreamError([]) from None
            dom.monitor = "e" not in flags
            domid, dtype = dom.domid, dom.dtype
        before, after = _restore_info_lines(dtype)
        ctx.error(*before)
        try:
            record = savefile.read_guest(recv, source)
        except StreamError:
            with ctx.state() as state:
                state.remove(domid)
            raise
    except StreamError as e:
        ctx.error(*e.lines)
        ctx.error("migration target: Domain creation failed (code -3).")
        return 1
    with ctx.state() as state:
        dom2 = state.get(domid)
        if dom2 is not None:
            apply_guest_record(dom2, record)
    ctx.error(*after)
    ctx.error("migration target: Transfer complete, requesting permission to start domain.")
    if not _write(send, READY):
        return 1
    rc = 0
    if not _read_fixed(ctx, recv, GO, "GO message", None):
        rc = 1
    else:
        ctx.error("migration target: Got permission, starting domain.")
        with ctx.state() as state:
            dom3 = state.get(domid)
            if dom3 is None:
                rc = 3
            elif state.by_name(name) is not None:
                ctx.error(
                    f"libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain {domid}:"
                    f'Domain with name "{name}" already exists.'
                )
                rc = 6
            else:
                dom3.name = name
                if "p" not in flags:
                    dom3.paused = False
                    dom3.started_at = ctx.now()
        if rc == 0:
            ctx.error("migration target: Domain started successsfully.")
    if not _write(send, REPORT) or not _write(send, bytes([rc & 0xFF])):
        return 1
    if rc:
        ctx.error("migration target: Failure, destroying our copy.")
        with ctx.state() as state:
            state.remove(domid)
        ctx.error("migration target: Cleanup OK, granting sender permission to resume.")
        if not _write(send, GO):
            return 1
    sys.stdout.flush()
    return 0
