"""The executor's host inventory: how to reach each Xen host and how to drive its `xl`.

Pure: text in, frozen settings out. The file is TOML:

    [defaults]                      # applies to every host, and to hosts not listed
    user = "oneadmin"
    key = "/var/lib/one/.ssh/id_rsa"
    known_hosts = "/var/lib/one/.ssh/known_hosts"
    xenrc = "/var/lib/one/remotes/etc/vmm/xen/xenrc"   # optional, loaded as is
    FORCE_DESTROY = true            # xenrc names, with xenrc meanings

    [hosts.xen1]
    address = "10.0.0.11"
    port = 22

Xen settings keep the xenrc names operators already know (`XM_PATH`, `SHUTDOWN_TIMEOUT`,
`FORCE_DESTROY`, `DEFAULT_FILE_PREFIX`, with the Xen guide's `IMAGE_PREFIX` as an alias),
so an existing xenrc can be loaded unchanged. Precedence, lowest first: built-in
defaults, the defaults' xenrc, `[defaults]`, the host's xenrc, the host's table.

Every setting (either table; names are case-insensitive):
    address, port (22), user (oneadmin), key, known_hosts (~/.ssh/known_hosts)
    host_key_policy   "reject" (default: unknown hosts refused) or "accept-new" (OpenSSH's:
                      an unknown host's key is recorded, a changed key is still refused)
    max_channels (8)  SSH channels open at once on the host's one session (< sshd MaxSessions)
    connect_timeout (10 s), sudo / use_sudo (true: `sudo -n` before xl and xentop)
    XM_PATH (/usr/sbin/xl), xentop_path (/usr/sbin/xentop), SHUTDOWN_TIMEOUT (300 s),
    FORCE_DESTROY (false), DEFAULT_FILE_PREFIX / IMAGE_PREFIX (raw)
    remote_dir / SCRIPTS_REMOTE_DIR (/var/tmp/one: where vnm/<driver>/<step> live)
    datastore_roots (["/var/lib/one/datastores"]: every path a request names must lie inside)
    migration_via_su (true: xl's ssh to the destination runs as `user`, via `su - user`),
    migration_key, migration_known_hosts (paths on the host for that ssh; empty: its defaults)
    migration_address, migration_port (how the OTHER hosts reach this one for `xl migrate`;
                      empty/0: address and port. Differs when the executor reaches hosts through
                      a forward or a management network that the hosts themselves do not use)
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


class InventoryError(ValueError):
    """The inventory (or a xenrc it names) cannot be used; the message says where and why."""


HOST_KEY_POLICIES = ("reject", "accept-new")


@dataclass(frozen=True)
class HostSettings:
    """Everything the executor needs to act on one host. Never holds key material, only paths."""

    name: str
    address: str
    port: int = 22
    user: str = "oneadmin"
    key: str = ""  # private key path; empty = the SSH agent / default identities
    known_hosts: str = "~/.ssh/known_hosts"
    host_key_policy: str = "reject"
    max_channels: int = 8
    connect_timeout: float = 10.0
    use_sudo: bool = True
    xm_path: str = "/usr/sbin/xl"
    xentop_path: str = "/usr/sbin/xentop"
    shutdown_timeout: int = 300
    force_destroy: bool = False
    default_file_prefix: str = "raw"
    remote_dir: str = "/var/tmp/one"
    datastore_roots: tuple[str, ...] = ("/var/lib/one/datastores",)
    # Live migration: xl (root, under sudo) opens the stream to the destination with ssh.
    # Upstream runs that ssh as the executor's user (`su - oneadmin -c ...`) so the
    # destination's authorized_keys decides; key and known_hosts are paths on this host
    # (empty: that user's defaults).
    migration_via_su: bool = True
    migration_key: str = ""
    migration_known_hosts: str = ""
    # This host as a migration destination, seen from the source host (not from the executor).
    migration_address: str = ""
    migration_port: int = 0

    @property
    def migration_target(self) -> tuple[str, int]:
        """(address, port) the source host's ssh uses when this host receives a migration."""
        return (self.migration_address or self.address, self.migration_port or self.port)


@dataclass(frozen=True)
class Inventory:
    defaults: HostSettings
    hosts: Mapping[str, HostSettings] = field(default_factory=dict)

    def host(self, name: str) -> HostSettings:
        """The settings for an OpenNebula host name; unknown names get the defaults, reached by name."""
        found = self.hosts.get(name)
        if found is not None:
            return found
        return replace(self.defaults, name=name, address=name)

    def names(self) -> list[str]:
        return sorted(self.hosts)


# Inventory keys -> HostSettings fields. xenrc names are accepted in either case.
_KEY_ALIASES: dict[str, str] = {
    "address": "address",
    "port": "port",
    "user": "user",
    "key": "key",
    "known_hosts": "known_hosts",
    "host_key_policy": "host_key_policy",
    "max_channels": "max_channels",
    "connect_timeout": "connect_timeout",
    "sudo": "use_sudo",
    "use_sudo": "use_sudo",
    "xm_path": "xm_path",
    "xentop_path": "xentop_path",
    "shutdown_timeout": "shutdown_timeout",
    "force_destroy": "force_destroy",
    "default_file_prefix": "default_file_prefix",
    "image_prefix": "default_file_prefix",
    "remote_dir": "remote_dir",
    "scripts_remote_dir": "remote_dir",
    "datastore_roots": "datastore_roots",
    "migration_via_su": "migration_via_su",
    "migration_key": "migration_key",
    "migration_known_hosts": "migration_known_hosts",
    "migration_address": "migration_address",
    "migration_port": "migration_port",
}

# The xenrc variables that mean something to the executor; the rest of a xenrc
# (XM_CREATE="sudo $XM_PATH create", ...) is derived by the executor from these.
_XENRC_VARIABLES = ("XM_PATH", "SHUTDOWN_TIMEOUT", "FORCE_DESTROY", "DEFAULT_FILE_PREFIX", "IMAGE_PREFIX")

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_EXPANSION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def parse_xenrc(text: str, *, source: str = "xenrc") -> dict[str, Any]:
    """Read the settings the executor uses from a xenrc (plain shell, as OpenNebula ships it).

    Only simple assignments are understood, which is all a xenrc holds; `$VAR` refers to
    earlier assignments. Lines the executor has no use for are ignored.
    """
    variables: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ASSIGNMENT.match(line)
        if not match:
            continue
        name, value = match.groups()
        try:
            words = shlex.split(value, comments=True)
        except ValueError as exc:
            raise InventoryError(f"{source}:{lineno}: cannot read the value of {name}: {exc}") from exc
        joined = " ".join(words)
        variables[name] = _EXPANSION.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), joined)

    settings: dict[str, Any] = {}
    for name in _XENRC_VARIABLES:
        if name in variables:
            settings[name.lower()] = variables[name]
    if "shutdown_timeout" in settings:
        settings["shutdown_timeout"] = _as_int(settings["shutdown_timeout"], f"{source}: SHUTDOWN_TIMEOUT")
    if "force_destroy" in settings:
        settings["force_destroy"] = settings["force_destroy"].strip().lower() == "yes"
    return settings


def load_inventory(path: str | Path | None) -> Inventory:
    """Load an inventory file; None gives built-in defaults and no named hosts."""
    if path is None:
        return Inventory(defaults=HostSettings(name="", address=""))
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InventoryError(f"cannot read inventory {path}: {exc.strerror}") from exc
    return parse_inventory(text, source=str(path), base_dir=path.parent)


def parse_inventory(text: str, *, source: str = "inventory", base_dir: Path | None = None) -> Inventory:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"{source}: {exc}") from exc
    unknown_tables = set(document) - {"defaults", "hosts"}
    if unknown_tables:
        raise InventoryError(
            f"{source}: unknown table(s) {sorted(unknown_tables)}; expected [defaults] and [hosts.NAME]"
        )

    defaults_table = _table(document.get("defaults", {}), f"{source} [defaults]")
    defaults = _apply(HostSettings(name="", address=""), defaults_table, f"{source} [defaults]", base_dir)

    hosts: dict[str, HostSettings] = {}
    for name, table in _table(document.get("hosts", {}), f"{source} [hosts]").items():
        where = f"{source} [hosts.{name}]"
        host_table = _table(table, where)
        settings = _apply(replace(defaults, name=name, address=name), host_table, where, base_dir)
        hosts[name] = settings
    return Inventory(defaults=defaults, hosts=hosts)


def _apply(base: HostSettings, table: Mapping[str, Any], where: str, base_dir: Path | None) -> HostSettings:
    values: dict[str, Any] = {}
    xenrc = table.get("xenrc")
    if xenrc is not None:
        xenrc_path = _resolve(str(xenrc), base_dir)
        try:
            xenrc_text = Path(xenrc_path).read_text()
        except OSError as exc:
            raise InventoryError(f"{where}: cannot read xenrc {xenrc_path}: {exc.strerror}") from exc
        values.update(parse_xenrc(xenrc_text, source=xenrc_path))
    for key, value in table.items():
        if key == "xenrc":
            continue
        field_name = _KEY_ALIASES.get(key.lower())
        if field_name is None:
            raise InventoryError(f"{where}: unknown setting {key!r}")
        values[field_name] = value
    return replace(base, **_coerce(values, where, base_dir))


def _coerce(values: Mapping[str, Any], where: str, base_dir: Path | None) -> dict[str, Any]:
    types = {f.name: f.type for f in fields(HostSettings)}
    out: dict[str, Any] = {}
    for name, value in values.items():
        kind = types[name]
        if kind == "int":
            out[name] = _as_int(value, f"{where}: {name}")
        elif kind == "float":
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InventoryError(f"{where}: {name} must be a number, not {value!r}")
            out[name] = float(value)
        elif kind == "bool":
            out[name] = _as_bool(value, f"{where}: {name}")
        elif name == "datastore_roots":
            if not isinstance(value, list) or not all(
                isinstance(v, str) and v.startswith("/") for v in value
            ):
                raise InventoryError(f"{where}: datastore_roots must be a list of absolute paths")
            out[name] = tuple(v.rstrip("/") or "/" for v in value)
        else:
            if not isinstance(value, str):
                raise InventoryError(f"{where}: {name} must be a string, not {value!r}")
            out[name] = _resolve(value, base_dir) if name in ("key", "known_hosts") and value else value
    if "port" in out and not 0 < out["port"] < 65536:
        raise InventoryError(f"{where}: port {out['port']} is out of range")
    if out.get("migration_port") and not 0 < out["migration_port"] < 65536:
        raise InventoryError(f"{where}: migration_port {out['migration_port']} is out of range")
    if "max_channels" in out and out["max_channels"] < 1:
        raise InventoryError(f"{where}: max_channels must be at least 1")
    for name in ("migration_key", "migration_known_hosts", "xm_path", "xentop_path", "remote_dir"):
        if out.get(name) and not out[name].startswith("/"):
            raise InventoryError(f"{where}: {name} must be an absolute path on the Xen host")
    if "host_key_policy" in out and out["host_key_policy"] not in HOST_KEY_POLICIES:
        raise InventoryError(f"{where}: host_key_policy must be one of {', '.join(HOST_KEY_POLICIES)}")
    return out


def _resolve(value: str, base_dir: Path | None) -> str:
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return str(path)


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InventoryError(f"{where} must be a table")
    return value


def _as_int(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise InventoryError(f"{where} must be a whole number, not {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise InventoryError(f"{where} must be a whole number, not {value!r}") from exc


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("yes", "no", "true", "false"):
        return value.lower() in ("yes", "true")
    raise InventoryError(f"{where} must be true/false (or xenrc's yes/no), not {value!r}")


def render_inventory(defaults: Mapping[str, Any], hosts: Mapping[str, Mapping[str, Any]]) -> str:
    """Write an inventory file (used by `make up` for its simulated hosts)."""
    lines = ["# written by onexen; see services/executor/inventory.py for the format", "[defaults]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in defaults.items()]
    for name, table in hosts.items():
        lines += ["", f"[hosts.{_toml_key(name)}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value)
    escaped = "".join(
        "\\\\"
        if c == "\\"
        else '\\"'
        if c == '"'
        else f"\\u{ord(c):04x}"
        if ord(c) < 0x20 or c == "\x7f"
        else c
        for c in text
    )
    return f'"{escaped}"'
