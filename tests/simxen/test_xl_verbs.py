"""The simulated xl, run as a process on a host without sshd, against the reference outputs."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path

from simxen_fixtures import FAST, FIXTURES, block

from simxen import render, savefile
from simxen.host import SimHost
from simxen.xl_help import FULL_USAGE, VERB_HELP

UUID = re.compile(r'"uuid": "[0-9a-f-]{36}"')


def xl(host: SimHost, *args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    p = host.run_xl(*args, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def create_domu(host: SimHost, cfg: Path) -> None:
    rc, out, err = xl(host, "create", cfg.name, cwd=cfg.parent)
    assert (rc, out, err) == (0, "", f"Parsing config from {cfg.name}\n")


def wait_gone(host: SimHost, name: str, timeout: float = 5.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if xl(host, "list", name)[0] == 1:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{name} still listed after {timeout} s")


def test_create_then_list_and_list_l_as_on_the_reference_host(local_host: SimHost, domu_cfg: Path) -> None:
    create_domu(local_host, domu_cfg)
    rc, out, _ = xl(local_host, "list")
    lines = out.splitlines()
    assert (
        rc == 0 and lines[0] == "Name                                        ID   Mem VCPUs\tState\tTime(s)"
    )
    assert re.fullmatch(r"Domain-0 {37}0   768     2     r----- +\d+\.\d", lines[1])
    assert re.fullmatch(r"domu1 {40}1   128     1     (------|-b----) +\d+\.\d", lines[2])
    rc, out, _ = xl(local_host, "list", "-l", "domu1")
    ref = block("xl_list_l.txt", "xl list -l domu1").output
    assert rc == 0 and UUID.sub("U", out) == UUID.sub("U", ref)
    rc, out, _ = xl(local_host, "list", "-l")
    assert [d["domid"] for d in json.loads(out)] == [0, 1]
    ref_all = json.loads(block("xl_list_l.txt", "xl list -l").output)
    assert list(json.loads(out)[0]["config"]["b_info"]) == list(ref_all[0]["config"]["b_info"])


def test_unknown_domains_are_refused_like_xl(local_host: SimHost) -> None:
    invalid = (1, "", "nosuch is an invalid domain identifier (rc=-6)\n")
    for args in (["list", "nosuch"], ["destroy", "nosuch"], ["shutdown", "nosuch"], ["save", "nosuch", "/x"],
                 ["sched-credit", "-d", "nosuch", "-w", "256"], ["pause", "nosuch"],
                 ["migrate", "nosuch", "xen2"], ["block-detach", "nosuch", "xvdb"]):  # fmt: skip
        assert xl(local_host, *args)[:3] == invalid, args
    # the list verbs print their header before they look the domain up
    assert xl(local_host, "network-list", "nosuch") == (1, render.NETWORK_HEADER, invalid[2])
    assert xl(local_host, "block-list", "nosuch") == (
        0,
        render.BLOCK_HEADER,
        "nosuch is an invalid domain identifier\n",
    )
    assert xl(local_host, "block-attach", "nosuch", "phy:/x,xvdb,w") == (
        1, "", "nosuch is an invalid domain identifier\n",
    )  # fmt: skip
    assert xl(local_host, "list", "99") == (1, "", "Error: Domain '99' does not exist.\n")
    assert xl(local_host, "domid", "nosuch")[2] == (
        "Can't get domid of domain name 'nosuch', maybe this domain does not exist.\n"
    )
    assert xl(local_host, "domname", "abc") == (1, "", "Invalid domain id.\n\n")
    assert xl(local_host, "domname", "0") == (0, "Domain-0\n", "")


def test_name_clash_exits_3_and_uses_up_a_domid(local_host: SimHost, domu_cfg: Path) -> None:
    create_domu(local_host, domu_cfg)
    rc, _, err = xl(local_host, "create", "domu.cfg", cwd=domu_cfg.parent)
    ref = block("xl_shutdown_destroy.txt", "cd /root/domu && xl create domu.cfg")
    assert rc == ref.rc == 3
    assert err == ref.output.replace("Domain 3:", "Domain 2:")
    assert xl(local_host, "destroy", "domu1")[0] == 0
    create_domu(local_host, domu_cfg)
    assert xl(local_host, "domid", "domu1") == (0, "3\n", "")


def test_configs_the_parser_refuses_are_refused_verbatim(local_host: SimHost, tmp_path: Path) -> None:
    (tmp_path / "bad_access.cfg").write_text((FIXTURES / "testcfg" / "bad_access.cfg").read_text())
    rc, out, err = xl(local_host, "create", "bad_access.cfg", cwd=tmp_path)
    assert (rc, out) == (1, "")
    assert err == (
        "Parsing config from bad_access.cfg\n"
        "bad_access.cfg: config parsing error in disk specification: unknown value for access: "
        "near `zz' in `vdev=xvda, access=zz, target=/img'\n"
    )
    assert xl(local_host, "create", "/nonexistent.cfg") == (
        3, "", "Failed to read config file: /nonexistent.cfg: No such file or directory\n",
    )  # fmt: skip
    assert len(local_host.domains()) == 1


def test_accepted_configs_show_what_they_meant(local_host: SimHost, tmp_path: Path) -> None:
    disk0, disk1 = tmp_path / "disk.0", tmp_path / "disk.1"
    disk0.write_text("")
    disk1.write_text("")
    cfg = (FIXTURES / "testcfg" / "gen_hvm_full.cfg").read_text()
    cfg = cfg.replace("/var/lib/one//datastores/0/42/disk.0", str(disk0))
    cfg = cfg.replace("/var/lib/one//datastores/0/42/disk.1", str(disk1))
    cfg = cfg.replace("bridge=br0", "bridge=xenbr0")
    (tmp_path / "one-42.cfg").write_text(cfg)
    assert xl(local_host, "create", "one-42.cfg", cwd=tmp_path)[0] == 0
    config = json.loads(xl(local_host, "list", "-l", "one-42")[1])[0]["config"]
    assert config["c_info"]["type"] == "hvm"
    assert config["b_info"]["max_vcpus"] == 2 and config["b_info"]["max_memkb"] == 1048576
    assert config["b_info"]["sched_params"] == {"sched": "credit", "weight": 512, "cap": 0}
    assert [d["vdev"] for d in config["disks"]] == ["xvda", "xvdb"]
    assert config["disks"][1]["is_cdrom"] == 1
    nic = config["nics"][0]
    assert (nic["mac"], nic["ip"], nic["ifname"], nic["model"]) == (
        "02:00:c0:a8:7a:02", "192.168.122.2", "one-42-0", "e1000",
    )  # fmt: skip
    rc, out, _ = xl(local_host, "list", "one-42")
    assert rc == 0 and " 1016     2 " in out  # HVM guests show their VGA RAM as missing (248 for 256)


def test_shutdown_wait_and_the_monitor_cleaning_up(local_host: SimHost, domu_cfg: Path) -> None:
    create_domu(local_host, domu_cfg)
    rc, out, err = xl(local_host, "shutdown", "-w", "domu1")
    assert (rc, out) == (0, "")
    assert (
        err == "Shutting down domain 1\nWaiting for 1 domains\nDomain 1 has been shut down, reason code 0\n"
    )
    wait_gone(local_host, "domu1")
    assert xl(local_host, "shutdown") == (1, "", "You must specify -a or a domain id.\n\n")


def test_a_guest_ignoring_acpi_keeps_running(local_host: SimHost, domu_cfg: Path) -> None:
    create_domu(local_host, domu_cfg)
    local_host.ignore_acpi("domu1")
    assert xl(local_host, "shutdown", "domu1") == (0, "", "Shutting down domain 1\n")
    time.sleep(0.7)
    assert local_host.domains()[1]["state"] == "-b----"


def test_reboot_gives_a_new_domid(local_host: SimHost, domu_cfg: Path) -> None:
    create_domu(local_host, domu_cfg)
    assert xl(local_host, "reboot", "domu1") == (0, "", "Rebooting domain 1\n")
    time.sleep(0.8)
    assert xl(local_host, "domid", "domu1") == (0, "2\n", "")


def test_a_shutdown_during_a_pending_reboot_waits_for_the_reboot(local_host: SimHost, domu_cfg: Path) -> None:
    # The rebooting Linux guest ignores the new request without acknowledging it; libxl waits for
    # the acknowledgement until the reboot has replaced the domain (its xenstore node gone).
    create_domu(local_host, domu_cfg)
    assert xl(local_host, "reboot", "domu1") == (0, "", "Rebooting domain 1\n")
    started = time.monotonic()
    assert xl(local_host, "shutdown", "-w", "domu1") == (
        0, "", "Shutting down domain 1\nWaiting for 1 domains\nDomain 1 has been destroyed\n",
    )  # fmt: skip
    assert time.monotonic() - started >= 0.3  # FAST: reboot 0.3 s, then the monitor's 0.3 s
    assert xl(local_host, "domid", "domu1") == (0, "2\n", "")
    time.sleep(0.8)  # well past a shutdown's time: the poweroff was not carried over
    assert xl(local_host, "domid", "domu1") == (0, "2\n", "")
    # the same for a second reboot, and the other way round
    assert xl(local_host, "shutdown", "domu1")[0] == 0
    assert xl(local_host, "reboot", "domu1") == (0, "", "Rebooting domain 2\n")
    assert xl(local_host, "list", "domu1")[0] == 1


def test_a_request_nobody_acknowledges_times_out(tmp_path: Path, xl_parser: Path, domu_cfg: Path) -> None:
    host = SimHost.prepare(tmp_path / "hosts", "xenhost", pvcontrol_timeout_seconds=0.5, **FAST)
    create_domu(host, domu_cfg)
    assert xl(host, "save", "-c", "domu1", str(tmp_path / "ckpt"))[0] == 0  # no monitor any more
    assert xl(host, "shutdown", "domu1")[0] == 0
    time.sleep(0.5)
    assert "---s--" in xl(host, "list", "domu1")[1]  # shut down, and nobody destroys it
    assert xl(host, "reboot", "domu1") == (
        1, "",
        "Rebooting domain 1\n"
        "libxl: error: libxl_domain.c:848:pvcontrol_cb: guest didn't acknowledge control request: -9\n"
        "reboot failed (rc=-9)\n",
    )  # fmt: skip


def test_pause_unpause_and_destroy(local_host: SimHost, domu_cfg: Path) -> None:
    create_domu(local_host, domu_cfg)
    xl(local_host, "pause", "domu1")
    assert "--p---" in xl(local_host, "list", "domu1")[1]
    xl(local_host, "unpause", "domu1")
    assert "--p---" not in xl(local_host, "list", "domu1")[1]
    assert xl(local_host, "destroy", "domu1") == (0, "", "")
    assert xl(local_host, "destroy", "domu1") == (1, "", "domu1 is an invalid domain identifier (rc=-6)\n")
    rc, _, err = xl(local_host, "destroy", "0")
    assert rc == 1 and err.startswith("Not destroying domain 0; use -f to force.\n")


def test_save_restore_and_checkpoint(local_host: SimHost, domu_cfg: Path, tmp_path: Path) -> None:
    create_domu(local_host, domu_cfg)
    save = tmp_path / "domu1.save"
    rc, out, err = xl(local_host, "save", "domu1", str(save))
    assert (rc, out) == (0, "")
    ref = block("xl_save_restore.txt", "xl save -c domu1 /root/domu1.ckpt").output
    expected = ref.replace("/root/domu1.ckpt", str(save)).replace("Saving domain 2", "Saving domain 1")
    assert err == expected.replace("(info 0x3/0x0/1000)", "(info 0x3/0x0/999)")
    with open(save, "rb") as f:
        hdr = savefile.read_header(f, str(save))
        config = savefile.read_config(f, hdr, str(save))
    assert config is not None and config["c_info"]["name"] == "domu1" and "domid" not in config["c_info"]
    assert xl(local_host, "list", "domu1")[0] == 1

    rc, _, err = xl(local_host, "restore", str(save))
    lines = err.splitlines()
    assert rc == 0 and lines[:3] == [
        f"Loading new save file {save} (new xl fmt info 0x3/0x0/999)",
        " Savefile contains xl domain config in JSON format",
        "Parsing config from <saved>",
    ]
    assert [re.sub(r"0x[0-9a-f]+", "M", line) for line in lines[3:]] == [
        "xc: info: Found x86 PV domain from Xen 4.17",
        "xc: info: Restoring domain",
        "xc: info: Restore successful",
        "xc: info: XenStore: mfn M, dom 0, evt 1",
        "xc: info: Console: mfn M, dom 0, evt 2",
    ]
    assert xl(local_host, "domid", "domu1") == (0, "2\n", "")
    assert xl(local_host, "restore", "/nonexistent.save") == (
        1,
        "",
        "Can't open restore file: No such file or directory\n",
    )

    # NOTES item 4: after a checkpoint, a shutdown leaves the domain "---s--" until destroyed
    assert xl(local_host, "save", "-c", "domu1", str(tmp_path / "ckpt"))[0] == 0
    assert xl(local_host, "shutdown", "-w", "domu1")[0] == 0
    time.sleep(0.5)
    assert "---s--" in xl(local_host, "list", "domu1")[1]
    assert xl(local_host, "destroy", "domu1")[0] == 0


def test_block_devices(local_host: SimHost, domu_cfg: Path, tmp_path: Path) -> None:
    create_domu(local_host, domu_cfg)
    disk1, disk2 = tmp_path / "disk1.img", tmp_path / "disk2.img"
    disk1.write_text("")
    disk2.write_text("")
    assert xl(local_host, "block-attach", "domu1", f"format=raw, vdev=xvdb, access=rw, target={disk1}") == (
        0,
        "",
        "",
    )
    assert xl(local_host, "block-attach", "domu1", f"file:{disk2},xvdc,r") == (0, "", "")
    assert xl(local_host, "block-list", "domu1") == (
        0,
        block("xl_block.txt", "xl block-list domu1").output,
        "",
    )
    assert xl(local_host, "block-detach", "domu1", "xvdb") == (0, "", "")
    assert xl(local_host, "block-detach", "domu1", "51744") == (0, "", "")
    missing = block("xl_block.txt", "xl block-detach domu1 xvdz")
    assert xl(local_host, "block-detach", "domu1", "xvdz") == (missing.rc, "", missing.output)
    refused = block("xl_block.txt", "xl block-attach domu1 'phy:/dev/nonexistent,xvdd,w'")
    assert xl(local_host, "block-attach", "domu1", "phy:/dev/nonexistent,xvdd,w") == (
        refused.rc,
        "",
        refused.output,
    )
    rc, _, err = xl(local_host, "block-attach", "domu1", "phy:/x,xvdc,zz")
    assert rc == 1
    assert err == (
        "command line: config parsing error in disk specification: unknown value for access: "
        "near `zz' in `phy:/x,xvdc,zz'\n"
    )
    assert xl(local_host, "block-list", "domu1")[1] == block("xl_block.txt", "xl block-list domu1", 1).output


def test_network_devices_with_the_real_quirks(local_host: SimHost, domu_cfg: Path) -> None:
    create_domu(local_host, domu_cfg)

    def check(command: str, *, index: int = 0) -> None:
        want = block("xl_network.txt", command, index)
        rc, out, err = xl(local_host, *shlex.split(command)[1:])
        pid = re.compile(r"\[\d+\] exited")
        assert (rc, pid.sub("[PID] exited", out + err)) == (want.rc, pid.sub("[PID] exited", want.output)), (
            command
        )

    check("xl network-list domu1")
    check("xl network-attach domu1 bridge=xenbr0 mac=00:16:3e:00:00:02")
    joined = "mac=00:16:3e:00:00:03,bridge=xenbr0,ip=192.0.2.10,model=e1000,vifname=one-1-2"
    check(f'xl network-attach domu1 "{joined}"')
    check("xl network-list domu1", index=1)
    check("xl network-attach domu1 bridge=nosuchbr")
    _, out, _ = xl(local_host, "network-list", "domu1")
    # the half-made vif (NOTES item 2), with a random MAC
    assert re.fullmatch(r"3   0  00:16:3e:[0-9a-f:]{8}     3     4     -1  2062/2063 .*", out.splitlines()[4])
    check("xl network-detach domu1 1")
    check("xl network-detach domu1 00:16:3e:00:00:03")
    check("xl network-detach domu1 7")
    check("xl network-attach domu1 mac=00:16:3e:00:00:04 bridge=xenbr0 vifname=one-1-4 ip=192.0.2.10")
    check("xl network-detach domu1 4")
    check("xl network-detach domu1 3")
    check("xl network-list domu1", index=5)
    # four hot-unplugged devices: libxl warns once for each when it retrieves the config (NOTES item 3)
    _, _, err = xl(local_host, "list", "-l", "domu1")
    assert err.count("Device present in JSON but not in xenstore, ignored") == 4


def test_sched_credit(local_host: SimHost, domu_cfg: Path) -> None:
    create_domu(local_host, domu_cfg)
    assert xl(local_host, "sched-credit") == (0, block("xl_sched_credit.txt", "xl sched-credit").output, "")
    assert xl(local_host, "sched-credit", "-d", "domu1", "-w", "512") == (0, "", "")
    assert xl(local_host, "sched-credit", "-d", "domu1", "-c", "50") == (0, "", "")
    after = block("xl_sched_credit.txt", "xl sched-credit -d domu1", 1).output
    assert xl(local_host, "sched-credit", "-d", "domu1") == (0, after, "")
    zero = block("xl_sched_credit.txt", "xl sched-credit -d domu1 -w 0")
    assert xl(local_host, "sched-credit", "-d", "domu1", "-w", "0") == (zero.rc, "", zero.output)
    credit2 = block("xl_sched_credit.txt", "xl sched-credit2 -d domu1")
    rc, out, err = xl(local_host, "sched-credit2", "-d", "domu1")
    assert (rc, out) == (credit2.rc, "Name                                ID Weight  Cap\n")
    assert credit2.output == err + out  # the capture shows stderr (unbuffered) before stdout
    assert xl(local_host, "sched-credit", "-s") == (
        0,
        block("xl_sched_credit.txt", "xl sched-credit -s").output,
        "",
    )
    list_l = json.loads(xl(local_host, "list", "-l", "domu1")[1])[0]["config"]["b_info"]["sched_params"]
    assert list_l == {"sched": "credit", "weight": 512, "cap": 50}


def test_usage_errors_and_help_come_from_the_real_xl(local_host: SimHost) -> None:
    assert xl(local_host) == (1, FULL_USAGE, "")
    assert xl(local_host, "bogus") == (1, "", "command not implemented\n")
    assert xl(local_host, "help", "list") == (0, VERB_HELP["list"], "")
    assert xl(local_host, "list", "-h") == (0, VERB_HELP["list"], "")
    assert xl(local_host, "list", "--bogus") == (2, "", "option `\0' not supported.\n")
    assert xl(local_host, "sched-credit", "-d") == (2, "", "option `d' not supported.\n")
    assert xl(local_host, "domid") == (2, VERB_HELP["domid"], "'xl domid' requires at least 1 argument.\n\n")
    assert xl(local_host, "list", "a", "b") == (1, VERB_HELP["list"], "")
    assert xl(local_host, "-N", "list") == (1, "", "command does not implement -N (dryrun) option\n")
    assert xl(local_host, "-x", "list") == (
        1, "", "/usr/lib/xen-4.17/bin/xl: invalid option -- 'x'\nunknown global option\n",
    )  # fmt: skip
    assert xl(local_host, "console", "0")[0] == 1  # a real verb the simulation does not offer


def test_global_dry_run_create_prints_the_parsers_json(local_host: SimHost, domu_cfg: Path) -> None:
    rc, out, err = xl(local_host, "-N", "create", "domu.cfg", cwd=domu_cfg.parent)
    assert rc == 0 and json.loads(out)["c_info"]["name"] == "domu1"
    assert err == "Parsing config from domu.cfg\n"
    assert len(local_host.domains()) == 1


def test_info_reports_this_hosts_memory(local_host: SimHost, domu_cfg: Path) -> None:
    assert xl(local_host, "info", "free_memory") == (0, "1256\n", "")
    create_domu(local_host, domu_cfg)
    assert xl(local_host, "info", "free_memory") == (0, "1127\n", "")
    rc, out, _ = xl(local_host, "info")
    assert rc == 0 and out.startswith("host                   : xenhost\n")


def test_sudo_runs_the_simulated_tools_by_name_or_real_path(local_host: SimHost) -> None:
    def sudo(*args: str) -> tuple[int, str, str]:
        p = subprocess.run([str(local_host.sudo_path), *args], capture_output=True, text=True, timeout=30)
        return p.returncode, p.stdout, p.stderr

    assert sudo("-n", "xl", "domid", "Domain-0") == (0, "0\n", "")
    assert sudo("-n", "/usr/sbin/xl", "domid", "Domain-0") == (0, "0\n", "")
    assert sudo("-n", "xentop", "-b", "-i", "1")[1].startswith("      NAME  STATE")
    assert sudo("-n", "true") == (0, "", "")
    assert sudo("-n", "no-such-command") == (1, "", "sudo: no-such-command: command not found\n")
