"""Request values that reach a host's command line: what is accepted, and hostile values refused."""

import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onexen.runtime.errors import InvalidArgument
from services.executor import commands, validate
from services.executor.inventory import HostSettings

ROOTS = ("/var/lib/one/datastores",)

HOSTILE_WORDS = [
    "",
    "-rf",
    "--help",
    "one-1; rm -rf /",
    "one-1 && reboot",
    "$(reboot)",
    "`reboot`",
    "one 1",
    "one-1\nreboot",
    "one-1\x00",
    "../one-1",
    "one|1",
    "0",
    "42",
    "a" * 65,
    "Domain-0",
    "'quoted'",
    '"quoted"',
]


@pytest.mark.parametrize("value", HOSTILE_WORDS)
def test_hostile_domain_names_are_refused(value: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate.domain_name(value)
    assert caught.value.violations[0].field == "domain"


@pytest.mark.parametrize("value", ["one-42", "one-0", "vm_1.test", "Domain-0x", "web:1", "a"])
def test_ordinary_domain_names_pass(value: str) -> None:
    assert validate.domain_name(value) == value


def test_domain0_only_where_looking_is_all() -> None:
    assert validate.domain_name("Domain-0", allow_domain0=True) == "Domain-0"


@pytest.mark.parametrize(
    "value",
    [
        "/var/lib/one/datastores/../../../etc/shadow",
        "/var/lib/one/datastores/0/./42/disk.0",
        "/var/lib/one/datastores",  # the root itself is not a file inside it
        "/etc/passwd",
        "var/lib/one/datastores/0/42/disk.0",
        "/var/lib/one/datastores/0/42/disk.0,xvdz,w",
        "/var/lib/one/datastores/0/42/disk 0",
        "/var/lib/one/datastores/0/42/$(reboot)",
        "/var/lib/one/datastores/0/42/disk.0\nreboot",
        "/var/lib/one/datastores/0/42/a:b",
        "/var/lib/one/datastoresX/0/42/disk.0",
        "",
    ],
)
def test_paths_outside_the_datastores_or_odd_are_refused(value: str) -> None:
    with pytest.raises(InvalidArgument):
        validate.path_under(value, ROOTS, "source_path")


def test_paths_inside_are_normalised() -> None:
    assert (
        validate.path_under("/var/lib/one//datastores/0/42/disk.2", ROOTS, "source_path")
        == "/var/lib/one/datastores/0/42/disk.2"
    )
    assert (
        validate.path_under("/var/lib/one/datastores/", ROOTS, "p", allow_root=True)
        == "/var/lib/one/datastores"
    )


@pytest.mark.parametrize("value", ["00:16:3e:00:00:0g", "00:16:3e:00:00", "00-16-3e-00-00-01", "x" * 17, ""])
def test_bad_macs_are_refused(value: str) -> None:
    with pytest.raises(InvalidArgument):
        validate.mac(value)


def test_macs_are_lower_cased() -> None:
    assert validate.mac("00:16:3E:AB:cd:01") == "00:16:3e:ab:cd:01"


@pytest.mark.parametrize("value", ["xvdb", "hdc", "sda", "xvdaa", "xvdb1"])
def test_vdevs(value: str) -> None:
    assert validate.vdev(value) == value


@pytest.mark.parametrize("value", ["xvd", "vda", "/dev/xvdb", "xvdb0", "51712", "xvdb;", "-xvdb"])
def test_bad_vdevs_are_refused(value: str) -> None:
    with pytest.raises(InvalidArgument):
        validate.vdev(value)


@pytest.mark.parametrize("value", ["raw", "raw:", "phy", "tap2:tapdisk:aio", "tap:aio", "file"])
def test_disk_prefixes(value: str) -> None:
    assert validate.disk_prefix(value) == value.rstrip(":")


@pytest.mark.parametrize("value", ["raw;", "RAW", "raw,xvdz", ":", "phy:/dev/sda", "a b"])
def test_bad_disk_prefixes_are_refused(value: str) -> None:
    with pytest.raises(InvalidArgument):
        validate.disk_prefix(value)


@pytest.mark.parametrize("value", ["..", ".", "../fw", "fw/../../x", "-x", "a b", "fw;id", ""])
def test_network_driver_names_cannot_leave_the_vnm_directory(value: str) -> None:
    with pytest.raises(InvalidArgument):
        validate.vnm_driver(value)


def test_network_things() -> None:
    assert validate.vnm_driver("802.1Q") == "802.1Q"
    assert validate.interface_name("xenbr0", "bridge") == "xenbr0"
    assert validate.vif_script("vif-bridge") == "vif-bridge"
    assert validate.vif_script("/etc/xen/scripts/vif-nat") == "/etc/xen/scripts/vif-nat"
    assert validate.ip_address("192.0.2.10") == "192.0.2.10"
    for bad in ("bridge=x", "br0,mac=00", "a" * 16, "br 0"):
        with pytest.raises(InvalidArgument):
            validate.interface_name(bad, "bridge")
    for bad in ("/tmp/evil", "/etc/xen/scripts/../../tmp/x", "vif bridge"):
        with pytest.raises(InvalidArgument):
            validate.vif_script(bad)
    with pytest.raises(InvalidArgument):
        validate.ip_address("192.0.2.300")


def test_weights_and_caps() -> None:
    assert validate.credit_weight(1) == 1
    assert validate.credit_weight(65535) == 65535
    for bad in (0, 65536):
        with pytest.raises(InvalidArgument):
            validate.credit_weight(bad)
    with pytest.raises(InvalidArgument):
        validate.credit_cap(-1)


def test_the_domain_name_comes_from_the_config() -> None:
    assert validate.config_domain_name('name = "one-42"\nmemory = 128\n') == "one-42"
    assert validate.config_domain_name("name='one-42' # set by OpenNebula\n") == "one-42"
    for bad in ("memory = 128\n", 'name = "a"\nname = "b"\n', 'name = "x; reboot"\n', "", 'name = "0"\n'):
        with pytest.raises(InvalidArgument):
            validate.config_domain_name(bad)


@given(st.text(min_size=1, max_size=80))
def test_any_accepted_name_is_one_plain_word_on_the_command_line(value: str) -> None:
    try:
        name = validate.domain_name(value)
    except InvalidArgument:
        return
    line = commands.destroy(HostSettings(name="h", address="h"), name, timeout=10).line()
    assert shlex.split(line)[-1] == name
    assert not name.startswith("-") and not name.isdigit()


@given(st.text(max_size=120))
def test_any_accepted_path_stays_inside_the_roots(value: str) -> None:
    try:
        path = validate.path_under("/var/lib/one/datastores/" + value, ROOTS, "p")
    except InvalidArgument:
        return
    assert path.startswith("/var/lib/one/datastores/")
    assert ".." not in path.split("/")
    assert shlex.split(shlex.quote(path)) == [path]
