"""The command lines the executor sends: allow-listed programs, quoted words, bounded by timeout(1)."""

import shlex

import pytest

from services.executor import commands
from services.executor.inventory import HostSettings

HOST = HostSettings(name="xen1", address="10.0.0.11")


def words(command: commands.Command) -> list[str]:
    return shlex.split(command.line())


def test_every_command_is_wrapped_in_timeout_then_sudo() -> None:
    command = commands.create(HOST, "/var/lib/one/datastores/0/42/deployment.0", timeout=120)
    assert command.line() == (
        "timeout --kill-after=5 120 sudo -n /usr/sbin/xl create /var/lib/one/datastores/0/42/deployment.0"
    )
    assert command.name == "xl create"


def test_fractional_deadlines_round_up_and_have_a_floor() -> None:
    assert words(commands.destroy(HOST, "one-1", timeout=2.01))[2] == "2.1"
    assert words(commands.destroy(HOST, "one-1", timeout=0.01))[2] == "0.5"


def test_without_sudo_and_with_another_xl() -> None:
    host = HostSettings(name="x", address="x", use_sudo=False, xm_path="/opt/xen/bin/xl")
    assert words(commands.xl_list(host, "one-1", timeout=30)) == [
        "timeout", "--kill-after=5", "30", "/opt/xen/bin/xl", "list", "one-1",
    ]  # fmt: skip


def test_words_are_quoted() -> None:
    # Validation refuses such values; quoting is the second line of defence.
    line = commands.destroy(HOST, "one-1; reboot", timeout=10).line()
    assert line.endswith("destroy 'one-1; reboot'")


def test_only_allow_listed_verbs_and_options() -> None:
    with pytest.raises(commands.NotAllowed):
        commands.xl(HOST, "debug-keys", "h", timeout=10)
    with pytest.raises(commands.NotAllowed):
        commands.xl(HOST, "destroy", "--force", timeout=10)
    with pytest.raises(commands.NotAllowed):
        commands.network_step(HOST, "fw", "rm", "", b"", timeout=10)


def test_block_attach_is_upstreams_positional_spec() -> None:
    attach = commands.block_attach(
        HOST, "one-42", prefix="tap2:tapdisk:aio", source="/ds/0/42/disk.2", vdev="xvdb",
        readonly=False, cdrom=False, timeout=60,
    )  # fmt: skip
    assert words(attach)[-5:] == ["block-attach", "one-42", "tap2:tapdisk:aio:/ds/0/42/disk.2", "xvdb", "w"]
    cdrom = commands.block_attach(
        HOST, "one-42", prefix="raw", source="/ds/iso", vdev="hdc", readonly=False, cdrom=True, timeout=60
    )
    assert words(cdrom)[-3:] == ["hdc", "r", "devtype=cdrom"]


def test_network_attach_passes_one_word_per_setting() -> None:
    # One comma-joined spec makes xl keep only the MAC (NOTES item 1).
    attach = commands.network_attach(
        HOST, "one-1", mac="00:16:3e:00:00:02", bridge="xenbr0", model="e1000", ip="192.0.2.10",
        vifname="one-1-2", timeout=60,
    )  # fmt: skip
    assert words(attach)[-6:] == [
        "one-1", "bridge=xenbr0", "mac=00:16:3e:00:00:02", "model=e1000", "ip=192.0.2.10", "vifname=one-1-2",
    ]  # fmt: skip


def test_xentop_reads_full_names_twice() -> None:
    assert words(commands.xentop(HOST, 1.0, timeout=40))[3:] == [
        "sudo", "-n", "/usr/sbin/xentop", "-b", "-f", "-i", "2", "-d", "1",
    ]  # fmt: skip


def test_migration_transport_comes_from_the_destinations_inventory() -> None:
    source = HostSettings(name="xen1", address="10.0.0.11", user="oneadmin")
    target = HostSettings(name="xen2", address="10.0.0.12", port=2222, user="xenops", xm_path="/opt/xl")
    argv = words(commands.migrate(source, "one-7", target, timeout=600))
    assert argv[-5:-3] == ["migrate", "-s"]
    assert argv[-2:] == ["one-7", "10.0.0.12"]
    transport = shlex.split(argv[-3])
    assert transport[:3] == ["su", "-", "oneadmin"]
    assert shlex.split(transport[4]) == [
        "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-p", "2222", "-l", "xenops",
        "10.0.0.12", "sudo", "-n", "/opt/xl", "migrate-receive",
    ]  # fmt: skip


def test_migration_uses_the_destinations_migration_address_when_it_has_one() -> None:
    # The executor reaches xen2 through a forward (127.0.0.1:40002); xen1 reaches it as xen2:22.
    source = HostSettings(name="xen1", address="127.0.0.1", port=40001)
    target = HostSettings(
        name="xen2", address="127.0.0.1", port=40002, migration_address="xen2", migration_port=22
    )
    argv = words(commands.migrate(source, "one-7", target, timeout=600))
    assert argv[-2:] == ["one-7", "xen2"]
    ssh = shlex.split(shlex.split(argv[-3])[4])
    assert ssh[ssh.index("-p") + 1] == "22" and ssh[ssh.index("-l") + 2] == "xen2"
    # Without the settings the destination's own address and port are used, as before.
    plain = HostSettings(name="xen2", address="10.0.0.12", port=2222)
    assert plain.migration_target == ("10.0.0.12", 2222)


def test_migration_transport_without_su_keeps_xls_extra_words_harmless() -> None:
    source = HostSettings(
        name="xen1", address="a", migration_via_su=False, migration_key="/k", migration_known_hosts="/kh"
    )
    target = HostSettings(name="xen2", address="b")
    transport = commands.migration_transport(source, target)
    assert transport.startswith("sh -c ")
    # xl runs `exec <transport> b xl migrate-receive`: the extra words become $0.. of sh -c.
    rune = shlex.split(f"exec {transport} b xl migrate-receive")
    assert rune[1:3] == ["sh", "-c"]
    assert (
        "-i /k -o IdentitiesOnly=yes -o UserKnownHostsFile=/kh b sudo -n /usr/sbin/xl migrate-receive"
        in rune[3]
    )


def test_network_step_runs_the_drivers_script_with_the_message_on_stdin() -> None:
    step = commands.network_step(HOST, "802.1Q", "post", "one-7", b"PFZNPg==", timeout=60)
    assert words(step)[3:] == ["/var/tmp/one/vnm/802.1Q/post", "one-7"]
    assert step.stdin == b"PFZNPg==" and not step.privileged


def test_df_names_each_path() -> None:
    assert words(commands.df(["/ds/0", "/ds/1"], timeout=10))[3:] == [
        "df", "-B1M", "--output=file,size,used,avail", "--", "/ds/0", "/ds/1",
    ]  # fmt: skip


def test_wait_limit_outlasts_the_remote_timeout() -> None:
    command = commands.destroy(HOST, "one-1", timeout=10)
    assert commands.wait_limit(command) > command.timeout + commands.KILL_AFTER
