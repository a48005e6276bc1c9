"""The onexen-executor process."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from onexen.runtime.config import add_option, load_config
from onexen.runtime.logging import configure_logging, get_logger
from onexen.runtime.server import run
from services.executor.inventory import Inventory, InventoryError, load_inventory
from services.executor.servicer import DEFAULT_SSH_THREADS, servicers, ssh_actions

DEFAULT_INVENTORY = "/etc/onexen/inventory.toml"


def add_executor_options(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    add_option(parser, "--inventory", environ, default=DEFAULT_INVENTORY, help="TOML host inventory")
    add_option(
        parser,
        "--ssh-threads",
        environ,
        default=DEFAULT_SSH_THREADS,
        type=_positive_int,
        help="threads running SSH commands (all hosts together; each busy channel holds one)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    config, args = load_config("executor", argv, add_options=add_executor_options)
    configure_logging(config.log_level, config.log_format)
    try:
        inventory = read_inventory(args.inventory)
    except InventoryError as exc:
        get_logger(__name__).error("startup_failed", service="executor", error=str(exc))
        sys.exit(1)
    actions, _ = ssh_actions(inventory, args.ssh_threads)
    run(config, servicers(inventory, actions))


def read_inventory(path: str) -> Inventory:
    """The inventory file; the built-in defaults when the default path does not exist
    (every host then reached by its OpenNebula name), an error for any other missing file."""
    if path == DEFAULT_INVENTORY and not Path(path).exists():
        get_logger(__name__).warning("inventory_missing", path=path, using="built-in defaults")
        return load_inventory(None)
    inventory = load_inventory(path)
    get_logger(__name__).info("inventory_loaded", path=path, hosts=inventory.names())
    return inventory


if __name__ == "__main__":
    main()
