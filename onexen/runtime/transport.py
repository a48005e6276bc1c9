"""Channel options and credentials, kept together so clients and servers agree.

Keepalive: the server accepts client pings no more often than every 10 s
(`min_ping_interval_without_data_ms`); clients ping every 30 s, even when idle,
so a long-lived monitor -> executor channel notices a dead peer without ever
earning a GOAWAY `too_many_pings`. The server pings idle clients every 60 s so
half-open connections from vanished clients are closed.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from onexen.runtime.config import ChannelConfig, ServiceConfig

# Probe answers carry every domain's `xl list -l` JSON; 4 MiB (gRPC's default) is
# within reach of a host with a few hundred domains.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

SERVER_MIN_CLIENT_PING_INTERVAL_MS = 10_000
CLIENT_KEEPALIVE_MS = 30_000

ChannelOptions = list[tuple[str, int | str]]


def server_options() -> ChannelOptions:
    return [
        # gRPC sets SO_REUSEPORT by default: a second server on a taken port would
        # then start "fine" and share the traffic. Fail the bind instead.
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", SERVER_MIN_CLIENT_PING_INTERVAL_MS),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]


def client_options(server_name: str | None = None) -> ChannelOptions:
    options: ChannelOptions = [
        ("grpc.keepalive_time_ms", CLIENT_KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return options


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def server_credentials(config: ServiceConfig) -> grpc.ServerCredentials | None:
    """None for a plaintext port; with a client CA, clients without a cert it signed are refused."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    client_ca = _read(config.tls_client_ca)
    return grpc.ssl_server_credentials(
        [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def channel_credentials(config: ChannelConfig) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(config.ca_cert),
        private_key=_read(config.client_key),
        certificate_chain=_read(config.client_cert),
    )


def open_channel(config: ChannelConfig) -> grpc.aio.Channel:
    """An aio channel with onexen's keepalive and message limits; use it as `async with`."""
    options = client_options(config.server_name)
    if config.uses_tls:
        return grpc.aio.secure_channel(config.target, channel_credentials(config), options=options)
    return grpc.aio.insecure_channel(config.target, options=options)
