"""one_vmm_grpc's options: the stock `one_vmm_exec` ones with their meanings (spec §1.2),
plus where the onexen services are, from flags or ONEXEN_* variables.

With no configuration it talks to the local services on their default ports (`make up`).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from adapter.common.options import (
    add_env_option,
    add_logging_options,
    non_negative_int,
    one_location,
    positive_int,
    seconds,
)
from adapter.common.startup import Parser
from adapter.vmm.deployment import DEPLOY_TYPES, DeployType
from onexen.runtime.config import DEFAULT_PORTS, ChannelConfig, add_channel_options, channel_config

DEFAULT_THREADS = 15
LOG_FILE_NAME = "onexen_vmm.log"


@dataclass(frozen=True)
class VmmOptions:
    threads: int
    retries: int
    parallel_per_host: bool
    timeout: float | None
    hypervisor: str
    deploy_type: DeployType
    defaults: Path | None
    remotes: Path
    shutdown_timeout: int
    log_file: str
    log_level: str
    executor: ChannelConfig
    translator: ChannelConfig


def _deploy_type(text: str) -> str:
    value = text.lower()
    if value not in DEPLOY_TYPES:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(DEPLOY_TYPES)}")
    return value


def _defaults_path(environ: Mapping[str, str]) -> str:
    location = one_location(environ)
    etc = location / "etc" if location is not None else Path("/etc/one")
    return str(etc / "vmm_exec" / "vmm_exec_xen.conf")


def _remotes_path(environ: Mapping[str, str]) -> str:
    location = one_location(environ)
    return str(location / "var" / "remotes" if location is not None else Path("/var/lib/one/remotes"))


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = Parser(
        prog="one_vmm_grpc",
        description="OpenNebula VM_MAD for Xen through the onexen services. oned passes ARGUMENTS as one"
        " argument; it is split here.",
    )
    parser.add_argument(
        "-t",
        "--threads",
        type=positive_int,
        default=DEFAULT_THREADS,
        help=f"actions run at once (default {DEFAULT_THREADS})",
    )
    parser.add_argument(
        "-r",
        "--retries",
        type=non_negative_int,
        default=0,
        help="retries of a call that could not reach its host or service (default 0)",
    )
    parser.add_argument(
        "-p",
        "--parallel",
        action="store_true",
        help="allow several actions on one host at once (default: one at a time)",
    )
    parser.add_argument(
        "-w",
        "--timeout",
        type=seconds,
        default=0.0,
        help="seconds each service call and TM script may take; 0 = no limit",
    )
    # Accepted for drop-in ARGUMENTS; they tune the stock SSH stream, which onexen replaces.
    parser.add_argument("-l", "--local", default="", help="ignored (stock: actions run locally)")
    parser.add_argument("-s", "--shell", default="", help="ignored (stock: remote shell)")
    parser.add_argument("-d", "--delegate", default="", help="ignored (stock: SSH agent forwarding)")
    parser.add_argument("-i", "--live-snapshots", action="store_true", help="ignored (4.x option)")
    parser.add_argument("hypervisor", nargs="?", default="xen", help="remotes/vmm directory name (xen)")
    add_env_option(
        parser,
        "--type",
        "ONEXEN_VMM_TYPE",
        environ,
        default="auto",
        type=_deploy_type,
        help='what the deployment file holds: xml (VM_MAD TYPE="xml"), xen (an xl config'
        " from oned's XenDriver) or auto",
    )
    add_env_option(
        parser,
        "--defaults",
        "ONEXEN_VMM_DEFAULTS",
        environ,
        default=_defaults_path(environ),
        help="vmm_exec_xen.conf for translated VMs; a missing file means none",
    )
    add_env_option(
        parser,
        "--remotes",
        "ONEXEN_VMM_REMOTES",
        environ,
        default=_remotes_path(environ),
        help="OpenNebula's remotes directory (its tm/ scripts run on this machine)",
    )
    add_env_option(
        parser,
        "--shutdown-timeout",
        "ONEXEN_VMM_SHUTDOWN_TIMEOUT",
        environ,
        default=0,
        type=non_negative_int,
        help="seconds a guest gets to shut down; 0 = the host's SHUTDOWN_TIMEOUT",
    )
    add_logging_options(parser, environ, "ONEXEN_VMM", LOG_FILE_NAME)
    add_channel_options(parser, environ, "executor", f"127.0.0.1:{DEFAULT_PORTS['executor']}")
    add_channel_options(parser, environ, "translator", f"127.0.0.1:{DEFAULT_PORTS['translator']}")
    return parser


def parse_options(args: Sequence[str], environ: Mapping[str, str]) -> VmmOptions:
    """Raises `OptionsError` for a bad option or variable."""
    parser = build_parser(environ)
    ns = parser.parse_args(list(args))
    try:
        executor, translator = channel_config(ns, "executor"), channel_config(ns, "translator")
    except ValueError as exc:
        parser.error(str(exc))
    return VmmOptions(
        threads=ns.threads,
        retries=ns.retries,
        parallel_per_host=ns.parallel,
        timeout=ns.timeout or None,
        hypervisor=ns.hypervisor,
        deploy_type=ns.type,
        defaults=Path(ns.defaults) if ns.defaults else None,
        remotes=Path(ns.remotes),
        shutdown_timeout=ns.shutdown_timeout,
        log_file=ns.log_file,
        log_level=ns.log_level,
        executor=executor,
        translator=translator,
    )
