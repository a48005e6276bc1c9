"""A VM's whole life, driven through one_vmm_grpc and one_im_grpc exactly as OpenNebula drives
them, printed for a newcomer: for `make demo` (stack/demo.py calls `vm_life`).

Each exchange is shown as it happens: `oned >` what the scripted oned writes to the VM_MAD,
`oned <` what the driver answers (LOG lines and the reply), `monitord >`/`monitord <` the
same for the IM_MAD, payloads decoded (adapter.explain).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from adapter.explain import explain_im, explain_vmm
from adapter.scripted import Message, OnedVm, ScriptedMonitord, ScriptedOned, install_fake_remotes, vm_entries

Say = Callable[[str], None]
# Short monitord periods, so the demo sees each state change within a second or two.
DEMO_PERIODS = {
    "STATE_VM": 1,
    "MONITOR_VM": 5,
    "MONITOR_HOST": 10,
    "BEACON_HOST": 30,
    "SYSTEM_HOST": 60,
    "SYNC_STATE_VM": 30,
}


class _Service(Protocol):
    address: str


class _Host(Protocol):
    name: str


class StackLike(Protocol):
    """What the demo needs of stack.launcher.Stack."""

    workdir: Path

    @property
    def services(self) -> Mapping[str, _Service]: ...

    @property
    def hosts(self) -> Sequence[_Host]: ...

    @property
    def datastores(self) -> Path: ...


def vm_life(stack: StackLike, say: Say, *, vm_id: int = 7) -> int:
    """Run the life of VM `vm_id` on the stack's first two hosts; 0 when every step went as expected."""
    frontend = stack.workdir / "frontend"
    tm_log, vnm_log = install_fake_remotes(frontend / "remotes", stack.workdir / "remotes", stack.datastores)
    env = {f"ONEXEN_{name.upper()}": service.address for name, service in stack.services.items()}
    first, second = (h.name for h in stack.hosts[:2])
    lock = threading.Lock()

    def echo(who: str, explain: Callable[[str], str]) -> Callable[[str, str], None]:
        def show(direction: str, line: str) -> None:
            if who == "monitord" and direction == "<" and line.startswith(("BEACON_HOST", "MONITOR_HOST")):
                return  # host figures every few seconds would drown the VM's story
            text = explain(line)
            if text.endswith("[no VMs]"):
                return
            with lock:
                say(f"    {who} {direction} {text}")

        return show

    def step(title: str) -> None:
        with lock:
            say("")
            say(f"  -- {title}")

    arguments = f"--remotes {frontend / 'remotes'} --log-file {frontend / 'one_vmm_grpc.log'}"
    im_arguments = f"--datastore-location {stack.datastores} --log-file {frontend / 'one_im_grpc.log'}"
    say(f"  oned starts:        one_vmm_grpc '-t 15 -r 0 xen {arguments}'  (ARGUMENTS as one argument)")
    say(f"  onemonitord starts: one_im_grpc '-r 3 -t 15 -w 90 xen {im_arguments}'")
    with (
        ScriptedMonitord.start(
            f"-r 3 -t 15 -w 90 xen {im_arguments}", env=env, echo=echo("monitord", explain_im)
        ) as monitord,
        ScriptedOned.start(f"-t 15 -r 0 xen {arguments}", env=env, echo=echo("oned", explain_vmm)) as oned,
    ):
        step(f"onemonitord starts monitoring {first} (host 0) and {second} (host 1)")
        for host_id, name in ((0, first), (1, second)):
            if not monitord.start_monitor(host_id, name, periods=DEMO_PERIODS).ok:
                return 1

        vm = OnedVm(vm_id, first, datastores=stack.datastores, vms_dir=frontend / "vms")
        life: list[tuple[str, Callable[[], str], str | None]] = [
            (
                'DEPLOY: oned wrote the VM\'s XML to the deployment file (VM_MAD TYPE="xml")',
                lambda: vm.deploy("xml"),
                "RUNNING",
            ),
            ("ATTACHDISK: a new 16 MiB disk as xvdb", lambda: vm.attach_disk("xvdb"), None),
            ("DETACHDISK: take it away again", lambda: vm.detach_disk("xvdb"), None),
            ("ATTACHNIC: a second NIC", lambda: vm.attach_nic(mac="02:00:0a:00:00:77"), None),
            ("DETACHNIC", lambda: vm.detach_nic("02:00:0a:00:00:77"), None),
            ("SAVE (suspend): the guest's memory goes to a checkpoint file", vm.save, "POWEROFF"),
            ("RESTORE (resume)", vm.restore, "RUNNING"),
            (f"MIGRATE (live) from {first} to {second}", lambda: vm.migrate(second), "RUNNING"),
            ("REBOOT", vm.reboot, None),
            ("SHUTDOWN (terminate)", vm.shutdown, "POWEROFF"),
        ]
        for title, build, expect in life:
            action = title.split(":")[0].split(" ")[0]
            step(title)
            mark = len(monitord.lines)
            reply = oned.request(action, vm.vm_id, build(), timeout=120)
            if not reply.ok:
                say(f"  !! {reply}")
                return 1
            vm.commit()
            if expect is not None:
                host_id = 0 if vm.host == first else 1
                _wait_state(monitord, host_id, vm.domain, expect, mark)
        for host_id, name in ((0, first), (1, second)):
            monitord.stop_monitor(host_id, name)
    say("")
    say(f"  The front-end's transfer-manager steps ran locally ({tm_log}):")
    for line in tm_log.read_text().splitlines():
        say(f"    {line}")
    say(f"  The network steps ran on the hosts through the executor ({vnm_log}):")
    for line in vnm_log.read_text().splitlines():
        say(f"    {line}")
    return 0


def _wait_state(monitord: ScriptedMonitord, host_id: int, domain: str, state: str, start: int) -> None:
    def matches(m: Message) -> bool:
        return (
            m.type == "STATE_VM"
            and m.oid == host_id
            and any(e.get("DEPLOY_ID") == domain and e.get("STATE") == state for e in vm_entries(m.data))
        )

    deadline = time.monotonic() + 30
    monitord.wait_message(matches, timeout=max(1.0, deadline - time.monotonic()), start=start)
