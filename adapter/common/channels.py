"""gRPC channels of the adapters: the runtime's options and credentials, and a short reconnect back-off.

gRPC's default back-off between reconnection attempts grows to two minutes; a driver
whose service restarted would keep failing calls fast (no wait-for-ready) for that long.
Capped at a few seconds, a restarted service is found again promptly.
"""

from __future__ import annotations

import grpc

from onexen.runtime.config import ChannelConfig
from onexen.runtime.transport import channel_credentials, client_options

RECONNECT_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 4000),
]


def adapter_channel(config: ChannelConfig) -> grpc.aio.Channel:
    options = client_options(config.server_name) + RECONNECT_OPTIONS
    if config.uses_tls:
        return grpc.aio.secure_channel(config.target, channel_credentials(config), options=options)
    return grpc.aio.insecure_channel(config.target, options=options)
