"""one_im_grpc's options: the stock IM driver's (-r, -t, -w, the hypervisor name) plus where
the monitor service is and where messages go, from flags or ONEXEN_* variables."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from adapter.common.options import (
    add_env_option,
    add_logging_options,
    non_negative_int,
    one_location,
    positive_int,
    seconds,
)
from adapter.common.startup import Parser
from onexen.runtime.config import DEFAULT_PORTS, ChannelConfig, add_channel_options, channel_config

DEFAULT_THREADS = 15
LOG_FILE_NAME = "onexen_im.log"
MESSAGE_MODES = ("stdout", "network")


@dataclass(frozen=True)
class ImOptions:
    threads: int
    retries: int
    timeout: float | None
    hypervisor: str
    messages: str
    monitord_address: str
    datastore_location: str
    log_file: str
    log_level: str
    monitor: ChannelConfig


def _mode(text: str) -> str:
    value = text.lower()
    if value not in MESSAGE_MODES:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(MESSAGE_MODES)}")
    return value


def _absolute(text: str) -> str:
    if text and not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"{text!r} is not an absolute path")
    return text


def _datastores(environ: Mapping[str, str]) -> str:
    location = one_location(environ)
    return str(location / "var" / "datastores") if location is not None else "/var/lib/one/datastores"


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = Parser(
        prog="one_im_grpc",
        description="OpenNebula IM_MAD (for onemonitord) watching Xen hosts through the onexen monitor"
        " service. onemonitord passes ARGUMENTS as one argument; it is split here.",
    )
    parser.add_argument(
        "-t", "--threads", type=positive_int, default=DEFAULT_THREADS, help="START/STOP_MONITOR run at once"
    )
    parser.add_argument(
        "-r", "--retries", type=non_negative_int, default=0, help="retries when the monitor cannot be reached"
    )
    parser.add_argument(
        "-w", "--timeout", type=seconds, default=0.0, help="seconds AddHost may take; 0 = 90 s"
    )
    parser.add_argument("-l", "--local", action="store_true", help="ignored (stock: probes run locally)")
    parser.add_argument("-c", "--copy", action="store_true", help="ignored (stock: copy remotes)")
    parser.add_argument("hypervisor", nargs="?", default="xen", help="the IM_MAD's hypervisor name (xen)")
    add_env_option(
        parser,
        "--messages",
        "ONEXEN_IM_MESSAGES",
        environ,
        default="stdout",
        type=_mode,
        help="where monitoring messages go: stdout (to monitord through this driver) or network"
        " (monitord's UDP/TCP port, as the host agent)",
    )
    add_env_option(
        parser,
        "--monitord-address",
        "ONEXEN_IM_MONITORD_ADDRESS",
        environ,
        default="",
        help="monitord's address in network mode; empty = monitord.conf's NETWORK/MONITOR_ADDRESS"
        " (auto = 127.0.0.1)",
    )
    add_env_option(
        parser,
        "--datastore-location",
        "ONEXEN_IM_DATASTORE_LOCATION",
        environ,
        default=_datastores(environ),
        type=_absolute,
        help="the hosts' DATASTORE_LOCATION, whose space SYSTEM_HOST reports; empty for none",
    )
    add_logging_options(parser, environ, "ONEXEN_IM", LOG_FILE_NAME)
    add_channel_options(parser, environ, "monitor", f"127.0.0.1:{DEFAULT_PORTS['monitor']}")
    return parser


def parse_options(args: Sequence[str], environ: Mapping[str, str]) -> ImOptions:
    parser = build_parser(environ)
    ns = parser.parse_args(list(args))
    try:
        monitor = channel_config(ns, "monitor")
    except ValueError as exc:
        parser.error(str(exc))
    return ImOptions(
        threads=ns.threads,
        retries=ns.retries,
        timeout=ns.timeout or None,
        hypervisor=ns.hypervisor,
        messages=ns.messages,
        monitord_address=ns.monitord_address,
        datastore_location=ns.datastore_location,
        log_file=ns.log_file,
        log_level=ns.log_level,
        monitor=monitor,
    )
