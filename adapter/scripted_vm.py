"""A VM as oned sees it, for a scripted oned: its XML and the driver message of each action.

`OnedVm` keeps the VM's template (disks, NICs, context) and placement (host, system
datastore, history sequence) and writes what oned would: the deployment file
(`TYPE="xml"`: the VM's XML; `TYPE="xen"`: an xl config as oned's XenDriver renders it)
and `<VMM_DRIVER_ACTION_DATA>` with the fields of spec §1.4 for each action. Changes an
action makes to the template (a disk marked `ATTACH="YES"`, a new host after a
migration) become the VM's state with `commit()` once the action succeeded.

`install_fake_remotes` writes what an OpenNebula front-end and its hosts would hold for
the steps the driver delegates: tm scripts (run locally) and vnm scripts (run on the
hosts). They record each call and create or delete the disk files in the datastores, so
a deploy finds its disks as after oned's prolog.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

CDATA_OPEN, CDATA_CLOSE = "<![CDATA[", "]]>"


def _cdata(text: object) -> str:
    value = str(text).replace(CDATA_CLOSE, "]]]]><![CDATA[>")
    return f"{CDATA_OPEN}{value}{CDATA_CLOSE}"


def _plain(tag: str, text: object) -> str:
    value = str(text)
    if not value:
        return f"<{tag}/>"
    escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<{tag}>{escaped}</{tag}>"


def _vector(tag: str, values: dict[str, str]) -> str:
    inner = "".join(f"<{k}>{_cdata(v)}</{k}>" for k, v in values.items())
    return f"<{tag}>{inner}</{tag}>"


@dataclass
class OnedVm:
    """One VM of a scripted oned. Paths are those a real front-end and host would use:
    `datastores` is DATASTORE_LOCATION (shared here by the front-end and the simulated hosts)."""

    vm_id: int
    host: str
    datastores: Path
    vms_dir: Path  # oned's /var/lib/one/vms
    name: str = ""
    memory_mb: int = 64
    cpu: float = 0.1
    vcpu: int = 1
    system_ds: int = 0
    image_ds: int = 1
    tm_mad: str = "ssh"
    vn_mad: str = "dummy"
    bridge: str = "xenbr0"
    kernel: str = "/boot/vmlinuz"
    seq: int = 0
    deploy_id: str = ""
    disks: list[dict[str, str]] = field(default_factory=list)
    nics: list[dict[str, str]] = field(default_factory=list)
    context: bool = True
    previous_host: str = ""
    _pending: str = field(default="", repr=False)  # the action commit() makes true
    _moving_to: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or f"vm-{self.vm_id}"
        if not self.disks:
            self.disks = [
                {
                    "DISK_ID": "0",
                    "IMAGE": "debian",
                    "IMAGE_ID": "0",
                    "TARGET": "xvda",
                    "TYPE": "FILE",
                    "READONLY": "NO",
                    "SOURCE": f"{self.datastores}/{self.image_ds}/debian.img",
                },
            ]
        if not self.nics:
            self.add_nic()

    # ------------------------------------------------------------------ paths

    @property
    def system_dir(self) -> str:
        return f"{self.datastores}/{self.system_ds}/{self.vm_id}"

    @property
    def context_disk_id(self) -> int:
        return max((int(d["DISK_ID"]) for d in self.disks), default=-1) + 1

    @property
    def local_deployment_file(self) -> Path:
        return self.vms_dir / str(self.vm_id) / f"deployment.{self.seq}"

    @property
    def remote_deployment_file(self) -> str:
        return f"{self.system_dir}/deployment.{self.seq}"

    @property
    def checkpoint(self) -> str:
        return f"{self.system_dir}/checkpoint"

    @property
    def domain(self) -> str:
        return self.deploy_id or f"one-{self.vm_id}"

    # ------------------------------------------------------------------ template

    def add_nic(self, mac: str | None = None, bridge: str | None = None, vn_mad: str | None = None) -> str:
        nic_id = len(self.nics)
        mac = mac or f"02:00:0a:{self.vm_id >> 8 & 0xFF:02x}:{self.vm_id & 0xFF:02x}:{nic_id + 1:02x}"
        self.nics.append(
            {
                "NIC_ID": str(nic_id),
                "NETWORK": "private",
                "NETWORK_ID": "0",
                "MAC": mac,
                "BRIDGE": bridge or self.bridge,
                "VN_MAD": vn_mad or self.vn_mad,
                "TARGET": f"one-{self.vm_id}-{nic_id}",
            },
        )
        return mac

    def vm_xml(self) -> str:
        """`<VM>` as oned writes it (VirtualMachine::to_xml, last history record)."""
        template = [
            _vector("CONTEXT", {"DISK_ID": str(self.context_disk_id), "NETWORK": "YES", "TARGET": "hda"})
            if self.context
            else "",
            f"<CPU>{_cdata(self.cpu)}</CPU>",
            *(_vector("DISK", d) for d in self.disks),
            f"<MEMORY>{_cdata(self.memory_mb)}</MEMORY>",
            *(_vector("NIC", n) for n in self.nics),
            _vector("OS", {"KERNEL": self.kernel, "KERNEL_CMD": "ro console=hvc0", "ROOT": "xvda1"}),
            f"<VCPU>{_cdata(self.vcpu)}</VCPU>",
            f"<VMID>{_cdata(self.vm_id)}</VMID>",
        ]
        history = (
            f"<HISTORY><OID>{self.vm_id}</OID><SEQ>{self.seq}</SEQ><HOSTNAME>{self.host}</HOSTNAME>"
            f"<HID>0</HID><CID>0</CID><STIME>1700000000</STIME><ETIME>0</ETIME>"
            f"<VM_MAD>{_cdata('xen')}</VM_MAD><TM_MAD>{_cdata(self.tm_mad)}</TM_MAD>"
            f"<DS_ID>{self.system_ds}</DS_ID><ACTION>0</ACTION></HISTORY>"
        )
        return (
            f"<VM><ID>{self.vm_id}</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME>"
            f"<NAME>{self.name}</NAME><STATE>3</STATE><LCM_STATE>2</LCM_STATE>"
            f"{_plain('DEPLOY_ID', self.deploy_id)}<TEMPLATE>{''.join(template)}</TEMPLATE>"
            f"<USER_TEMPLATE><DESCRIPTION>{_cdata('a VM of the scripted oned')}</DESCRIPTION></USER_TEMPLATE>"
            f"<HISTORY_RECORDS>{history}</HISTORY_RECORDS></VM>"
        )

    def xen_config(self) -> str:
        """The deployment file of `TYPE="xen"`: an xl config in XenDriver's shape (spec §3.11)."""
        disks = [f"'raw:{self.system_dir}/disk.{d['DISK_ID']},{d['TARGET']},w'" for d in self.disks]
        if self.context:
            disks.append(f"'raw:{self.system_dir}/disk.{self.context_disk_id},hda,r'")
        vifs = [f"' mac={n['MAC']},bridge={n['BRIDGE']}'" for n in self.nics]
        return (
            f"name = 'one-{self.vm_id}'\n"
            f"#O CPU_CREDITS = {math.ceil(self.cpu * 256)}\n"
            f"memory = {self.memory_mb}\n"
            f"vcpus = {self.vcpu}\n"
            f"kernel = '{self.kernel}'\n"
            "root = '/dev/xvda1'\n"
            "extra = 'ro console=hvc0'\n"
            "disk = [\n" + "".join(f"    {d},\n" for d in disks) + "]\n"
            "vif = [\n" + "".join(f"    {v},\n" for v in vifs) + "]\n"
        )

    # ------------------------------------------------------------------ what oned does around the driver

    def prolog(self) -> None:
        """The disks oned's TM prolog would have put in the system datastore before DEPLOY."""
        os.makedirs(self.system_dir, exist_ok=True)
        for disk in self.disks:
            path = Path(self.system_dir) / f"disk.{disk['DISK_ID']}"
            if not path.exists():
                with open(path, "wb") as f:
                    f.truncate(1 << 20)

    def write_deployment_file(self, kind: Literal["xml", "xen"] = "xml") -> Path:
        path = self.local_deployment_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.vm_xml() if kind == "xml" else self.xen_config())
        return path

    def commit(self) -> None:
        """The last action succeeded: what it changed becomes the VM's state."""
        action, self._pending = self._pending, ""
        if action == "DEPLOY":
            self.deploy_id = f"one-{self.vm_id}"
        elif action == "MIGRATE" and self._moving_to:
            self.previous_host, self.host = self.host, self._moving_to
            self.seq += 1
            self._moving_to = ""
        elif action in ("DETACHDISK", "DETACHNIC"):
            attached = [d for d in (*self.disks, *self.nics) if d.get("ATTACH") == "YES"]
            self.disks = [d for d in self.disks if d not in attached]
            self.nics = [n for n in self.nics if n not in attached]
        for device in (*self.disks, *self.nics):
            device.pop("ATTACH", None)

    # ------------------------------------------------------------------ driver messages

    def message(self, action: str, **fields: str) -> str:
        """`<VMM_DRIVER_ACTION_DATA>` with the elements in oned's order (spec §1.4)."""
        self._pending = action
        order = (
            "HOST",
            "MIGR_HOST",
            "DEPLOY_ID",
            "LOCAL_DEPLOYMENT_FILE",
            "REMOTE_DEPLOYMENT_FILE",
            "CHECKPOINT_FILE",
            "TM_COMMAND",
            "TM_COMMAND_ROLLBACK",
            "DISK_TARGET_PATH",
            "SECURITY_GROUP_ID",
        )
        # HOST, MIGR_HOST and DEPLOY_ID are always there (empty: `<MIGR_HOST/>`), the rest when set.
        values = {"HOST": self.host, "MIGR_HOST": "", "DEPLOY_ID": self.deploy_id, **fields}
        parts = [_plain(key, values[key]) for key in order if key in values]
        datastore = (
            f"<DATASTORE><ID>{self.system_ds}</ID><NAME>system</NAME><TYPE>1</TYPE>"
            f"<TM_MAD>{_cdata(self.tm_mad)}</TM_MAD><BASE_PATH>{self.datastores}/{self.system_ds}</BASE_PATH>"
            "</DATASTORE>"
        )
        return f"<VMM_DRIVER_ACTION_DATA>{''.join(parts)}{self.vm_xml()}{datastore}</VMM_DRIVER_ACTION_DATA>"

    def _context_command(self) -> dict[str, str]:
        if not self.context:
            return {}
        target = f"{self.system_dir}/disk.{self.context_disk_id}"
        return {
            "TM_COMMAND": f"CONTEXT {self.tm_mad}  {self.host}:{target} {self.vm_id} {self.system_ds}",
            "DISK_TARGET_PATH": target,
        }

    def deploy(self, kind: Literal["xml", "xen"] = "xml") -> str:
        """DEPLOY's message, after the prolog and writing the deployment file as oned does."""
        self.prolog()
        self.write_deployment_file(kind)
        message = self.message(
            "DEPLOY",
            DEPLOY_ID="",
            LOCAL_DEPLOYMENT_FILE=str(self.local_deployment_file),
            REMOTE_DEPLOYMENT_FILE=self.remote_deployment_file,
            **self._context_command(),
        )
        return message

    def shutdown(self) -> str:
        return self.message("SHUTDOWN")

    def cancel(self) -> str:
        return self.message("CANCEL")

    def reboot(self) -> str:
        return self.message("REBOOT")

    def reset(self) -> str:
        return self.message("RESET")

    def save(self) -> str:
        return self.message("SAVE", CHECKPOINT_FILE=self.checkpoint)

    def restore(self) -> str:
        return self.message("RESTORE", CHECKPOINT_FILE=self.checkpoint, **self._context_command())

    def migrate(self, destination: str) -> str:
        """MIGRATE: HOST is the source, MIGR_HOST the destination, and the VM's last history
        record already names the destination (oned adds it first); commit() moves the VM."""
        source = self.host
        command = (
            f"MIGRATE {self.tm_mad} {source} {destination} {self.system_dir} {self.vm_id} {self.system_ds}"
        )
        self.host, self.seq = destination, self.seq + 1
        try:
            message = self.message("MIGRATE", HOST=source, MIGR_HOST=destination, TM_COMMAND=command)
        finally:
            self.host, self.seq = source, self.seq - 1
        self._moving_to = destination
        return message

    def attach_disk(self, target: str = "xvdb", size_mb: int = 16) -> str:
        disk_id = self.context_disk_id + (1 if self.context else 0)
        path = f"{self.system_dir}/disk.{disk_id}"
        self.disks.append(
            {
                "DISK_ID": str(disk_id),
                "TARGET": target,
                "TYPE": "FILE",
                "SIZE": str(size_mb),
                "FORMAT": "raw",
                "ATTACH": "YES",
            },
        )
        where = f"{self.host}:{path} {self.vm_id} {self.system_ds}"
        return self.message(
            "ATTACHDISK",
            TM_COMMAND=f"MKIMAGE {self.tm_mad} {size_mb} raw {where}",
            TM_COMMAND_ROLLBACK=f"DELETE {self.tm_mad} {where}",
            DISK_TARGET_PATH=path,
        )

    def detach_disk(self, target: str) -> str:
        disk = next(d for d in self.disks if d["TARGET"] == target)
        disk["ATTACH"] = "YES"
        path = f"{self.system_dir}/disk.{disk['DISK_ID']}"
        return self.message(
            "DETACHDISK",
            TM_COMMAND=f"DELETE {self.tm_mad} {self.host}:{path} {self.vm_id} {self.system_ds}",
            DISK_TARGET_PATH=path,
        )

    def attach_nic(self, mac: str | None = None, bridge: str | None = None) -> str:
        self.add_nic(mac, bridge)
        self.nics[-1]["ATTACH"] = "YES"
        return self.message("ATTACHNIC", **self._context_command())

    def detach_nic(self, mac: str) -> str:
        nic = next(n for n in self.nics if n["MAC"] == mac)
        nic["ATTACH"] = "YES"
        return self.message("DETACHNIC", **self._context_command())

    def update_conf(self) -> str:
        return self.message("UPDATECONF", **self._context_command())

    def cleanup(self) -> str:
        """CLEANUP (recover --delete, or after a failed deploy): delete every disk, then the VM dir."""
        prefix = f"DELETE {self.tm_mad} {self.host}:{self.system_dir}"
        lines = [f"{prefix}/disk.{d['DISK_ID']} {self.vm_id} {self.image_ds}" for d in self.disks]
        lines.append(f"DELETE {self.tm_mad} {self.host}:{self.system_dir} {self.vm_id} {self.system_ds}")
        return self.message("CLEANUP", TM_COMMAND="\n".join(lines))


def check_message(xml: str) -> None:
    """Raise if `xml` is not well-formed (a guard for hand-made messages in tests)."""
    ET.fromstring(xml)


# ---------------------------------------------------------------------------- fake remotes

_TM_ACTIONS = (
    "context",
    "clone",
    "ln",
    "mkimage",
    "mkswap",
    "cpds",
    "mv",
    "delete",
    "premigrate",
    "postmigrate",
    "failmigrate",
)
_VNM_STEPS = ("pre", "post", "clean", "update_sg")

_TM_SCRIPT = """#!/bin/sh
# A stand-in for an OpenNebula TM script (onexen's scripted oned): it records its call and
# makes or removes the files a real one would, inside the datastores only.
action=$(basename "$0")
tm=$(basename "$(dirname "$0")")
echo "$tm/$action $*" >> @LOG@
if [ -e "$(dirname "$0")/../FAIL_$action" ]; then
    echo "ERROR: $action: failing on purpose (remove FAIL_$action)" >&2
    echo "ERROR MESSAGE --8<------" >&2
    echo "$action failed as the test asked" >&2
    echo "ERROR MESSAGE ------>8--" >&2
    exit 1
fi
for arg in "$@"; do
    case "$arg" in
        *:/*) path="${arg#*:}" ;;
        *) continue ;;
    esac
    case "$path" in
        @DATASTORES@/*) ;;
        *) continue ;;
    esac
    case "$action" in
        delete) rm -rf -- "$path" ;;
        context|clone|ln|mkimage|mkswap|cpds)
            mkdir -p "$(dirname "$path")"
            [ -e "$path" ] || truncate -s 1M -- "$path" ;;
    esac
done
echo "INFO: $action: $tm/$action done" >&2
exit 0
"""

_VNM_SCRIPT = """#!/bin/sh
# A stand-in for an OpenNebula network driver step on a host (onexen's scripted oned):
# records the call with the host and the VM id read from the driver message on stdin.
step=$(basename "$0")
driver=$(basename "$(dirname "$0")")
host=$(basename "$(dirname "${SIMXEN_STATE:-/unknown/host}")")
vm=$(base64 -d 2>/dev/null | grep -o '<ID>[0-9]*</ID>' | head -n 1 | tr -dc 0-9)
echo "$host $driver/$step vm=$vm $*" >> @LOG@
echo "INFO: $step: Executed \\"$driver $step for VM $vm\\" (simulated)." >&2
exit 0
"""


def _write_script(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def install_fake_remotes(
    front_end_remotes: Path,
    host_remote_dir: Path,
    datastores: Path,
    *,
    tm_mads: tuple[str, ...] = ("ssh", "shared"),
    vn_mads: tuple[str, ...] = ("dummy", "802.1Q", "vxlan"),
) -> tuple[Path, Path]:
    """Write fake tm scripts under `front_end_remotes/tm/` and vnm scripts under
    `host_remote_dir/vnm/`; returns the two call logs (tm, vnm)."""
    tm_log = front_end_remotes / "tm-calls.log"
    vnm_log = host_remote_dir / "vnm-calls.log"
    for log in (tm_log, vnm_log):
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()
    tm_text = _TM_SCRIPT.replace("@LOG@", _sh_quote(str(tm_log))).replace("@DATASTORES@", str(datastores))
    for tm_mad in tm_mads:
        for action in _TM_ACTIONS:
            _write_script(front_end_remotes / "tm" / tm_mad / action, tm_text)
    vnm_text = _VNM_SCRIPT.replace("@LOG@", _sh_quote(str(vnm_log)))
    for vn_mad in vn_mads:
        for step in _VNM_STEPS:
            _write_script(host_remote_dir / "vnm" / vn_mad / step, vnm_text)
    return tm_log, vnm_log


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
