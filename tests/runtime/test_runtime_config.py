"""Flags win over ONEXEN_* variables, which win over defaults."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import pytest

from onexen.runtime.config import (
    ChannelConfig,
    ServiceConfig,
    add_channel_options,
    add_option,
    channel_config,
    env_name,
    load_config,
)


@pytest.mark.parametrize(
    ("service", "port"), [("translator", 50051), ("executor", 50052), ("monitor", 50053)]
)
def test_defaults(service: str, port: int) -> None:
    config, _ = load_config(service, [], environ={})
    assert config == ServiceConfig(service=service, port=port)
    assert (config.listen_address, config.metrics_port, config.tls_mode) == ("127.0.0.1", 0, "insecure")
    assert (config.grace_seconds, config.log_level, config.log_format, config.max_concurrent_rpcs) == (
        5.0,
        "info",
        "json",
        0,
    )


def test_environment_over_default_and_flag_over_environment() -> None:
    environ = {
        "ONEXEN_PORT": "6000",
        "ONEXEN_METRICS_PORT": "9152",
        "ONEXEN_LOG_LEVEL": "DEBUG",
        "ONEXEN_GRACE_SECONDS": "2.5",
        "ONEXEN_LISTEN": "0.0.0.0",
    }
    from_env, _ = load_config("executor", [], environ=environ)
    assert (from_env.port, from_env.metrics_port, from_env.log_level, from_env.grace_seconds) == (
        6000,
        9152,
        "debug",
        2.5,
    )
    assert from_env.listen_address == "0.0.0.0"
    from_flags, _ = load_config("executor", ["--port", "7000", "--log-level", "warning"], environ=environ)
    assert (from_flags.port, from_flags.log_level, from_flags.metrics_port) == (7000, "warning", 9152)


def test_an_empty_variable_counts_as_unset() -> None:
    config, _ = load_config("monitor", [], environ={"ONEXEN_PORT": ""})
    assert config.port == 50053


def test_tls_options(tmp_path: Path) -> None:
    cert, key, ca = (tmp_path / name for name in ("c.pem", "k.pem", "ca.pem"))
    config, _ = load_config(
        "translator",
        ["--tls-cert", str(cert), "--tls-key", str(key)],
        environ={"ONEXEN_TLS_CLIENT_CA": str(ca)},
    )
    assert (config.tls_cert, config.tls_key, config.tls_client_ca, config.tls_mode) == (cert, key, ca, "mtls")


@pytest.mark.parametrize(
    ("argv", "environ", "complaint"),
    [
        (["--port", "http"], {}, "is not a port number"),
        ([], {"ONEXEN_PORT": "70000"}, "is not a port number"),
        ([], {"ONEXEN_LOG_FORMAT": "xml"}, "not one of json, console"),
        (["--tls-cert", "c.pem"], {}, "both a certificate and its key"),
        (["--tls-client-ca", "ca.pem"], {}, "needs --tls-cert"),
        (["--max-concurrent-rpcs", "-1"], {}, "is not a whole number"),
    ],
)
def test_bad_settings_are_usage_errors(
    argv: list[str], environ: Mapping[str, str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        load_config("translator", argv, environ=environ)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


def test_a_service_adds_its_own_options_with_the_same_precedence() -> None:
    def add_options(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
        add_option(parser, "--inventory", environ, default="/etc/onexen/hosts.yaml", help="host inventory")
        add_option(parser, "--ssh-workers", environ, default=8, type=int, help="SSH threads")
        add_channel_options(parser, environ, "executor", "127.0.0.1:50052")

    environ = {"ONEXEN_SSH_WORKERS": "16", "ONEXEN_EXECUTOR_TLS_CA": "/etc/onexen/ca.pem"}
    _, args = load_config(
        "monitor", ["--inventory", "/tmp/hosts.yaml"], environ=environ, add_options=add_options
    )
    assert (args.inventory, args.ssh_workers) == ("/tmp/hosts.yaml", 16)
    assert channel_config(args, "executor") == ChannelConfig(
        target="127.0.0.1:50052", ca_cert=Path("/etc/onexen/ca.pem")
    )
    assert channel_config(args, "executor").uses_tls


def test_env_names_follow_the_flags() -> None:
    assert env_name("--tls-client-ca") == "ONEXEN_TLS_CLIENT_CA"
    assert env_name("--metrics-port") == "ONEXEN_METRICS_PORT"
