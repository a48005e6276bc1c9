"""The adapters' local machinery: the pipe reader, the TM script runner, options, the explainers."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from pathlib import Path

import pytest

from adapter.common.lineio import OversizedLine, read_lines
from adapter.common.startup import OptionsError
from adapter.explain import explain_im, explain_vmm
from adapter.im.config import parse_options as im_options
from adapter.im.protocol import Message, encode_payload, message_line
from adapter.scripted import host_action, monitor_configuration
from adapter.scripted_vm import OnedVm
from adapter.vmm.config import parse_options as vmm_options
from adapter.vmm.tm import LocalTransferManager
from onexen.runtime.errors import FailedPrecondition


async def collect(fd: int, max_bytes: int = 1 << 20) -> list[bytes | int]:
    out: list[bytes | int] = []
    async for line in read_lines(fd, max_bytes):
        out.append(line.size if isinstance(line, OversizedLine) else line)
    return out


async def test_lines_are_split_across_reads_and_oversized_ones_dropped() -> None:
    read, write = os.pipe()
    reader = asyncio.create_task(collect(read, max_bytes=20))
    for chunk in (b"INI", b"T\nDEPLOY 1 ", b"QUJD\n", b"x" * 25, b"\nlast"):
        os.write(write, chunk)
        await asyncio.sleep(0.01)
    os.close(write)
    assert await asyncio.wait_for(reader, 5) == [b"INIT", b"DEPLOY 1 QUJD", 25, b"last"]
    os.close(read)


async def test_input_from_a_file_works_too(tmp_path: Path) -> None:
    path = tmp_path / "input"
    path.write_bytes(b"INIT\nFINALIZE\n")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert await asyncio.wait_for(collect(fd), 5) == [b"INIT", b"FINALIZE"]
    finally:
        os.close(fd)


def gone(pid: int) -> bool:
    """Dead (a zombie whose parent died may wait a while for init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def tm_script(root: Path, name: str, body: str) -> None:
    path = root / "tm" / "ssh" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


async def test_tm_scripts_run_with_argv_and_stdin(tmp_path: Path) -> None:
    tm_script(tmp_path, "premigrate", 'echo "args: $*"; cat; echo "INFO: premigrate: done" >&2\n')
    result = await LocalTransferManager(tmp_path).run(
        "PREMIGRATE", "ssh", ["xen1", "a b;$(id)"], stdin=b"vm64", timeout=10
    )
    assert result.ok and result.stdout == "args: xen1 a b;$(id)\nvm64"  # no shell anywhere
    assert result.stderr == "INFO: premigrate: done\n"
    assert result.argv == (str(tmp_path / "tm/ssh/premigrate"), "xen1", "a b;$(id)")


async def test_tm_timeout_and_cancel_kill_the_script_and_its_children(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    tm_script(tmp_path, "clone", f"sleep 60 & echo $! > {marker}\nwait\n")
    tm = LocalTransferManager(tmp_path)
    started = time.monotonic()
    result = await tm.run("CLONE", "ssh", [], stdin=None, timeout=0.5)
    assert result.exit_code < 0 and "-w" in result.stderr and time.monotonic() - started < 5
    child = int(marker.read_text())
    await asyncio.sleep(0.1)
    assert gone(child)

    marker.unlink()
    task = asyncio.create_task(tm.run("CLONE", "ssh", [], stdin=None, timeout=None))
    while not marker.exists() or not marker.read_text().strip():
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    child = int(marker.read_text())
    await asyncio.sleep(0.1)
    assert gone(child)


async def test_a_missing_tm_script_says_where_it_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match=r"no executable TM script .*/tm/ceph/clone"):
        await LocalTransferManager(tmp_path).run("CLONE", "ceph", [], stdin=None, timeout=None)


def test_vmm_options_upstream_and_onexen() -> None:
    options = vmm_options(["-t", "4", "-r", "2", "-p", "-w", "30", "-l", "deploy", "-s", "sh", "xen"], {})
    assert (options.threads, options.retries, options.parallel_per_host, options.timeout) == (
        4,
        2,
        True,
        30.0,
    )
    assert options.executor.target == "127.0.0.1:50052" and options.translator.target == "127.0.0.1:50051"
    assert str(options.remotes) == "/var/lib/one/remotes" and options.deploy_type == "auto"
    env = {"ONE_LOCATION": "/opt/one", "ONEXEN_EXECUTOR": "exec:1", "ONEXEN_VMM_TYPE": "xen"}
    options = vmm_options([], env)
    assert options.executor.target == "exec:1" and options.deploy_type == "xen" and options.timeout is None
    assert str(options.remotes) == "/opt/one/var/remotes"
    assert str(options.defaults) == "/opt/one/etc/vmm_exec/vmm_exec_xen.conf"
    with pytest.raises(OptionsError, match="--type"):
        vmm_options(["--type", "kvm"], {})
    with pytest.raises(OptionsError, match="certificate needs its key"):
        vmm_options(["--executor-tls-cert", "/c.pem"], {})


def test_im_options() -> None:
    options = im_options(["-r", "3", "-t", "15", "-w", "90", "xen"], {})
    assert (options.retries, options.threads, options.timeout, options.messages) == (3, 15, 90.0, "stdout")
    assert options.monitor.target == "127.0.0.1:50053"
    assert options.datastore_location == "/var/lib/one/datastores"
    with pytest.raises(OptionsError, match="absolute"):
        im_options(["--datastore-location", "relative"], {})
    assert im_options([], {"ONEXEN_IM_MESSAGES": "network"}).messages == "network"


def test_explainers_decode_payloads(tmp_path: Path) -> None:
    vm = OnedVm(7, "xen1", datastores=tmp_path / "ds", vms_dir=tmp_path / "vms")
    line = f"DEPLOY 7 {base64.b64encode(vm.deploy().encode()).decode()}"
    text = explain_vmm(line)
    assert (
        text.startswith("DEPLOY 7 [driver message, ")
        and 'HOST="xen1"' in text
        and "REMOTE_DEPLOYMENT_FILE" in text
    )
    assert explain_vmm("DEPLOY SUCCESS 7 one-7") == "DEPLOY SUCCESS 7 one-7"

    action = host_action(0, "xen1", monitor_configuration({"STATE_VM": 1}))
    start = f"START_MONITOR - 0 0 {encode_payload(action)}"
    assert explain_im(start).startswith("START_MONITOR host 0 [host xen1; PROBES_PERIOD ")
    state = message_line(
        Message("STATE_VM", "SUCCESS", 0, 5, 'VM = [ ID="7", DEPLOY_ID="one-7", STATE="RUNNING" ]\n')
    )
    assert explain_im(state) == "STATE_VM SUCCESS host 0 @5 [one-7 (7) RUNNING]"
    failure = message_line(Message("MONITOR_HOST", "FAILURE", 0, 5, "cannot reach Xen host xen1"))
    assert explain_im(failure) == "MONITOR_HOST FAILURE host 0 @5 [cannot reach Xen host xen1]"
