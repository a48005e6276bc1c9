"""Service settings from flags and ONEXEN_* environment variables (flag > env > default).

The listen address defaults to 127.0.0.1: a service reachable from the network
must be asked for (`--listen 0.0.0.0` or ONEXEN_LISTEN), together
with TLS. The metrics endpoint is off unless a port is given, so no process opens
a port nobody declared.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

ENV_PREFIX = "ONEXEN_"

DEFAULT_PORTS: Mapping[str, int] = {"translator": 50051, "executor": 50052, "monitor": 50053}
DEFAULT_LISTEN_ADDRESS = "127.0.0.1"
DEFAULT_GRACE_SECONDS = 5.0
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "console")

LogFormat = Literal["json", "console"]
AddOptions = Callable[[argparse.ArgumentParser, Mapping[str, str]], None]


@dataclass(frozen=True)
class ServiceConfig:
    service: str
    port: int
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    metrics_port: int = 0  # 0 = no metrics endpoint
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set = mutual TLS: clients must present a cert it signed
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    log_level: str = "info"
    log_format: LogFormat = "json"
    max_concurrent_rpcs: int = 0  # 0 = no limit; above it gRPC answers RESOURCE_EXHAUSTED

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate and its key (--tls-cert and --tls-key)")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
        if not 0 <= self.port <= 65535 or not 0 <= self.metrics_port <= 65535:
            raise ValueError("ports must lie in 0..65535")
        if self.grace_seconds < 0:
            raise ValueError("grace seconds must not be negative")
        if self.log_level not in LOG_LEVELS or self.log_format not in LOG_FORMATS:
            raise ValueError(f"log level must be one of {LOG_LEVELS} and log format one of {LOG_FORMATS}")
        if self.max_concurrent_rpcs < 0:
            raise ValueError("max concurrent RPCs must not be negative (0 = no limit)")

    @property
    def tls_mode(self) -> Literal["insecure", "tls", "mtls"]:
        if self.tls_cert is None:
            return "insecure"
        return "mtls" if self.tls_client_ca is not None else "tls"


@dataclass(frozen=True)
class ChannelConfig:
    """How a service reaches another one (monitor -> executor, adapter -> all)."""

    target: str  # host:port
    tls: bool = False
    ca_cert: Path | None = None  # TLS without it trusts the system roots
    client_cert: Path | None = None  # with client_key: mutual TLS
    client_key: Path | None = None
    server_name: str | None = None  # name to check in the server certificate, if not the target's host

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("a client certificate needs its key and the other way round")

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.ca_cert is not None or self.client_cert is not None


def env_name(flag: str) -> str:
    """`--tls-client-ca` -> `ONEXEN_TLS_CLIENT_CA`."""
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def add_option(
    parser: argparse.ArgumentParser,
    flag: str,
    environ: Mapping[str, str],
    *,
    default: Any = None,
    type: Callable[[str], Any] = str,
    help: str,
    **kwargs: Any,
) -> None:
    """An option that falls back to its ONEXEN_* variable, then to `default`.

    The environment value becomes argparse's default as a string, which argparse
    converts with `type` like a command-line value, so a bad variable fails the
    same way (and with the same message) as a bad flag. Services add their own
    options through this to keep one precedence rule.
    """
    variable = env_name(flag)
    value = environ.get(variable)
    shown = "none" if default is None else default
    parser.add_argument(
        flag,
        default=value if value not in (None, "") else default,
        type=type,
        help=f"{help} (env {variable}; default {shown})",
        **kwargs,
    )


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def _number(text: str, convert: Callable[[str], float], what: str, low: float, high: float) -> float:
    try:
        value = convert(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def _port(text: str) -> int:
    return int(_number(text, int, "a port number (0..65535)", 0, 65535))


def _non_negative_int(text: str) -> int:
    return int(_number(text, int, "a whole number >= 0", 0, float("inf")))


def _non_negative_float(text: str) -> float:
    return _number(text, float, "a number of seconds >= 0", 0, float("inf"))


def _one_of(choices: Sequence[str]) -> Callable[[str], str]:
    # argparse checks `choices` for flags only, never for a default: a variable
    # would slip through, so the check lives in the type.
    def choice(text: str) -> str:
        value = text.lower()
        if value not in choices:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(choices)}")
        return value

    choice.__name__ = "choice"
    return choice


def build_parser(
    service: str, default_port: int, environ: Mapping[str, str], add_options: AddOptions | None = None
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"onexen-{service}",
        description=f"onexen {service} gRPC service. Every option also reads an ONEXEN_* variable; "
        "a flag wins over the variable, the variable over the default.",
    )
    add_option(
        parser,
        "--listen",
        environ,
        default=DEFAULT_LISTEN_ADDRESS,
        help="address to listen on; 0.0.0.0 or :: to accept connections from other hosts",
    )
    add_option(
        parser,
        "--port",
        environ,
        default=default_port,
        type=_port,
        help="gRPC port; 0 picks a free one (logged in the 'serving' event)",
    )
    add_option(
        parser,
        "--metrics-port",
        environ,
        default=0,
        type=_port,
        help="Prometheus /metrics port on the listen address; 0 = off",
    )
    add_option(
        parser, "--tls-cert", environ, type=_optional_path, help="PEM server certificate (enables TLS)"
    )
    add_option(parser, "--tls-key", environ, type=_optional_path, help="PEM private key of --tls-cert")
    add_option(
        parser,
        "--tls-client-ca",
        environ,
        type=_optional_path,
        help="PEM CA that signs client certificates (enables mutual TLS)",
    )
    add_option(
        parser,
        "--grace-seconds",
        environ,
        default=DEFAULT_GRACE_SECONDS,
        type=_non_negative_float,
        help="on SIGTERM, how long in-flight calls may finish before they are cancelled",
    )
    add_option(
        parser,
        "--log-level",
        environ,
        default="info",
        type=_one_of(LOG_LEVELS),
        help=f"least severe level logged: {', '.join(LOG_LEVELS)}",
    )
    add_option(
        parser,
        "--log-format",
        environ,
        default="json",
        type=_one_of(LOG_FORMATS),
        help="json (one object per line on stderr) or console (for humans)",
    )
    add_option(
        parser,
        "--max-concurrent-rpcs",
        environ,
        default=0,
        type=_non_negative_int,
        help="calls served at once, beyond which new ones get RESOURCE_EXHAUSTED; 0 = no limit",
    )
    if add_options is not None:
        add_options(parser, environ)
    return parser


def load_config(
    service: str,
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    default_port: int | None = None,
    add_options: AddOptions | None = None,
) -> tuple[ServiceConfig, argparse.Namespace]:
    """Parse flags and environment; the namespace also holds the service's own options.

    Exits with argparse's usage error (status 2) on a bad flag, variable or combination.
    """
    environ = os.environ if environ is None else environ
    port = DEFAULT_PORTS.get(service, 0) if default_port is None else default_port
    parser = build_parser(service, port, environ, add_options)
    args = parser.parse_args(argv)
    try:
        config = ServiceConfig(
            service=service,
            listen_address=args.listen,
            port=args.port,
            metrics_port=args.metrics_port,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
            grace_seconds=args.grace_seconds,
            log_level=args.log_level,
            log_format=args.log_format,
            max_concurrent_rpcs=args.max_concurrent_rpcs,
        )
    except ValueError as exc:
        parser.error(str(exc))
    return config, args


def add_channel_options(
    parser: argparse.ArgumentParser, environ: Mapping[str, str], peer: str, default_target: str
) -> None:
    """`--<peer>` (its host:port) and its TLS options, for a service that calls `peer`."""
    add_option(parser, f"--{peer}", environ, default=default_target, help=f"{peer} service host:port")
    add_option(
        parser,
        f"--{peer}-tls-ca",
        environ,
        type=_optional_path,
        help=f"PEM CA to verify the {peer} service (enables TLS)",
    )
    add_option(
        parser,
        f"--{peer}-tls-cert",
        environ,
        type=_optional_path,
        help=f"PEM client certificate for mutual TLS with the {peer} service",
    )
    add_option(
        parser, f"--{peer}-tls-key", environ, type=_optional_path, help=f"PEM key of --{peer}-tls-cert"
    )
    add_option(
        parser,
        f"--{peer}-tls-server-name",
        environ,
        help=f"name the {peer} service certificate must carry, if not the address's host",
    )


def channel_config(args: argparse.Namespace, peer: str) -> ChannelConfig:
    attr = peer.replace("-", "_")
    return ChannelConfig(
        target=getattr(args, attr),
        ca_cert=getattr(args, f"{attr}_tls_ca"),
        client_cert=getattr(args, f"{attr}_tls_cert"),
        client_key=getattr(args, f"{attr}_tls_key"),
        server_name=getattr(args, f"{attr}_tls_server_name") or None,
    )
