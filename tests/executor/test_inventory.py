from pathlib import Path

import pytest

from services.executor.inventory import (
    HostSettings,
    InventoryError,
    load_inventory,
    parse_inventory,
    parse_xenrc,
    render_inventory,
)

# The xenrc OpenNebula's Xen add-on ships, trimmed to its shape.
UPSTREAM_XENRC = """
export LANG=C
export XM_PATH="/usr/sbin/xl"
export XM_CREATE="sudo $XM_PATH create"
export XM_CREDITS="sudo ${XM_PATH} sched-credit"
export XM_POLL="sudo /usr/sbin/xentop -fbi2"
export DEFAULT_FILE_PREFIX="raw"
export SHUTDOWN_TIMEOUT=300
#export FORCE_DESTROY=yes
"""


def test_upstream_xenrc_is_read_with_its_meanings() -> None:
    assert parse_xenrc(UPSTREAM_XENRC) == {
        "xm_path": "/usr/sbin/xl",
        "default_file_prefix": "raw",
        "shutdown_timeout": 300,
    }
    assert parse_xenrc("export FORCE_DESTROY=yes\nexport IMAGE_PREFIX='tap2:tapdisk:aio'\n") == {
        "force_destroy": True,
        "image_prefix": "tap2:tapdisk:aio",
    }


def test_defaults_apply_to_every_host_and_unknown_names(tmp_path: Path) -> None:
    (tmp_path / "xenrc").write_text("export FORCE_DESTROY=yes\nexport SHUTDOWN_TIMEOUT=60\n")
    inv = parse_inventory(
        """
        [defaults]
        user = "oneadmin"
        key = "keys/id_ed25519"
        xenrc = "xenrc"
        IMAGE_PREFIX = "tap2:tapdisk:aio"

        [hosts.xen1]
        address = "127.0.0.1"
        port = 2201
        SHUTDOWN_TIMEOUT = 10

        [hosts.xen2]
        address = "127.0.0.1"
        port = 2202
        user = "root"
        FORCE_DESTROY = false
        """,
        base_dir=tmp_path,
    )
    xen1 = inv.host("xen1")
    assert (xen1.address, xen1.port, xen1.user) == ("127.0.0.1", 2201, "oneadmin")
    assert xen1.key == str(tmp_path / "keys/id_ed25519")
    assert (xen1.shutdown_timeout, xen1.force_destroy) == (10, True)
    assert xen1.default_file_prefix == "tap2:tapdisk:aio"
    assert (inv.host("xen2").user, inv.host("xen2").force_destroy) == ("root", False)
    other = inv.host("node7.example")
    assert (other.name, other.address, other.port, other.shutdown_timeout) == (
        "node7.example",
        "node7.example",
        22,
        60,
    )
    assert inv.names() == ["xen1", "xen2"]


def test_no_inventory_means_builtin_defaults() -> None:
    host = load_inventory(None).host("xen9")
    assert host == HostSettings(name="xen9", address="xen9")
    assert (host.user, host.xm_path, host.shutdown_timeout, host.force_destroy) == (
        "oneadmin",
        "/usr/sbin/xl",
        300,
        False,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[hosts.a]\nport = 70000\n", "port 70000 is out of range"),
        ("[hosts.a]\nportt = 22\n", "unknown setting 'portt'"),
        ("[hosts.a]\nFORCE_DESTROY = 'maybe'\n", "true/false"),
        ("[hosts.a]\nhost_key_policy = 'accept-all'\n", "host_key_policy must be one of"),
        ("[defaults]\ndatastore_roots = ['relative']\n", "absolute paths"),
        ("[host.a]\n", "unknown table"),
        ("[hosts.a\n", "inventory"),
    ],
)
def test_bad_inventories_say_where_and_why(text: str, message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        parse_inventory(text)


def test_missing_xenrc_is_named(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot read xenrc"):
        parse_inventory('[defaults]\nxenrc = "nope"\n', base_dir=tmp_path)


def test_rendered_inventory_reads_back(tmp_path: Path) -> None:
    text = render_inventory(
        {"user": "root", "FORCE_DESTROY": True},
        {"xen1": {"address": "127.0.0.1", "port": 2201, "known_hosts": 'odd "path"\n'}},
    )
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    host = load_inventory(path).host("xen1")
    assert (host.user, host.force_destroy, host.port) == ("root", True, 2201)
    assert host.known_hosts == str(tmp_path / 'odd "path"\n')


def test_migration_address_and_port_are_read_and_checked() -> None:
    text = (
        '[hosts.xen2]\naddress = "127.0.0.1"\nport = 40002\nmigration_address = "xen2"\nmigration_port = 22\n'
    )
    host = parse_inventory(text).host("xen2")
    assert (host.address, host.port, host.migration_target) == ("127.0.0.1", 40002, ("xen2", 22))
    with pytest.raises(InventoryError, match="migration_port 70000 is out of range"):
        parse_inventory("[hosts.xen2]\nmigration_port = 70000\n")
