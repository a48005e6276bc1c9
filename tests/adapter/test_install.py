"""`make install-opennebula`: the drivers, the defaults file and the snippets where OpenNebula
looks for them, and what is installed works."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from onexen.template import parse
from services.translator.api import parse_defaults

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SHARE = ROOT / "share" / "opennebula"


def install(destdir: Path, *variables: str) -> str:
    done = subprocess.run(
        ["make", "-s", "-f", "adapter/install.mk", "install-opennebula", f"DESTDIR={destdir}", *variables],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "ONE_LOCATION"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_installs_drivers_defaults_and_snippets_under_destdir(tmp_path: Path) -> None:
    out = install(tmp_path)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == [
        "etc/one/vmm_exec/vmm_exec_xen.conf",
        "usr/lib/one/mads/one_im_grpc",
        "usr/lib/one/mads/one_vmm_grpc",
        "usr/share/one/onexen/README.md",
        "usr/share/one/onexen/monitord-im_mad-xen.conf",
        "usr/share/one/onexen/oned-vm_mad-xen.conf",
    ]
    for mad in ("one_vmm_grpc", "one_im_grpc"):
        mode = (tmp_path / "usr/lib/one/mads" / mad).stat().st_mode
        assert stat.S_IMODE(mode) == 0o755
    vmm = (tmp_path / "usr/lib/one/mads/one_vmm_grpc").read_text()
    assert vmm.startswith("#!/bin/sh\n") and vmm.rstrip().endswith('-m adapter.vmm.main "$@"')
    assert str(tmp_path) not in vmm  # DESTDIR is a staging root, not where it will run
    assert (tmp_path / "etc/one/vmm_exec/vmm_exec_xen.conf").read_bytes() == (
        SHARE / "vmm_exec/vmm_exec_xen.conf"
    ).read_bytes()
    assert "onehost create <host> -i xen -v xen" in out


def test_installed_driver_starts_as_oned_starts_it(tmp_path: Path) -> None:
    install(tmp_path)
    # The wrapper, exec'd with stderr closed and ARGUMENTS as one element, answers INIT.
    driver = str(tmp_path / "usr/lib/one/mads/one_vmm_grpc")
    process = subprocess.Popen(
        ["/bin/sh", "-c", 'exec 2>&- "$@"', "oned", driver, "-t 15 -r 0 xen --log-file ''"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    out, _ = process.communicate(b"INIT\nFINALIZE\n", timeout=30)
    assert out == b"INIT SUCCESS - -\n" and process.returncode == 0


def test_an_operators_defaults_file_is_kept(tmp_path: Path) -> None:
    defaults = tmp_path / "etc/one/vmm_exec/vmm_exec_xen.conf"
    defaults.parent.mkdir(parents=True)
    defaults.write_text("CREDIT = 512\n")
    out = install(tmp_path)
    assert defaults.read_text() == "CREDIT = 512\n"
    assert (defaults.parent / "vmm_exec_xen.conf.onexen-new").is_file()
    assert "kept" in out


def test_one_location_installs_a_self_contained_opennebula(tmp_path: Path) -> None:
    install(tmp_path, "ONE_LOCATION=/opt/one")
    assert (tmp_path / "opt/one/lib/mads/one_vmm_grpc").is_file()
    assert (tmp_path / "opt/one/lib/mads/one_im_grpc").is_file()
    assert (tmp_path / "opt/one/etc/vmm_exec/vmm_exec_xen.conf").is_file()
    assert (tmp_path / "opt/one/share/onexen/oned-vm_mad-xen.conf").is_file()


def test_shipped_files_are_valid_opennebula_templates() -> None:
    defaults = parse_defaults((SHARE / "vmm_exec/vmm_exec_xen.conf").read_text())
    assert defaults.get("CREDIT") == "256"
    disk = defaults.vector("DISK")
    assert disk is not None and disk.get("DRIVER") == "raw:"

    vm_mad = parse((SHARE / "oned-vm_mad-xen.conf").read_text()).vector("VM_MAD")
    assert vm_mad is not None
    assert (vm_mad.get("NAME"), vm_mad.get("EXECUTABLE"), vm_mad.get("TYPE")) == (
        "xen",
        "one_vmm_grpc",
        "xml",
    )
    assert vm_mad.get("DEFAULT") == "vmm_exec/vmm_exec_xen.conf"
    actions = {a.strip() for a in (vm_mad.get("IMPORTED_VMS_ACTIONS") or "").split(",")}
    assert "poweroff" not in actions and "poweroff-hard" not in actions and "shutdown" in actions

    im_mad = parse((SHARE / "monitord-im_mad-xen.conf").read_text()).vector("IM_MAD")
    assert im_mad is not None
    assert (im_mad.get("NAME"), im_mad.get("EXECUTABLE")) == ("xen", "one_im_grpc")
