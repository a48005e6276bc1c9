"""Where monitoring messages go: onemonitord's stdin pipe (default), or its network port
as the host agent sends them (spec §4.5.2): UDP datagrams, STATE_VM over TCP (one
connection per message), the payload RSA-encrypted first when monitord has a public key.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import zlib
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from adapter.common.lineio import LineWriter
from adapter.im.protocol import Message, message_line

# monitord's UDP reader takes datagrams below 64 KiB (UDPStream MESSAGE_SIZE).
MAX_DATAGRAM_BYTES = 65_000
TCP_SECONDS = 5.0
_PKCS1_OVERHEAD = 11


class Sink(Protocol):
    async def send(self, message: Message) -> None: ...


class StdoutSink:
    """The messages go to monitord on the driver's own output, like every reply."""

    def __init__(self, out: LineWriter) -> None:
        self.out = out

    async def send(self, message: Message) -> None:
        self.out.write_line(message_line(message))


def load_public_key(pubkey: str) -> rsa.RSAPublicKey | None:
    """monitord's NETWORK/PUBKEY: PEM text (monitord passes the file's content) or a path."""
    text = pubkey.strip()
    if not text:
        return None
    if not text.startswith("-----BEGIN"):
        with open(text, "rb") as f:
            data = f.read()
    else:
        data = text.encode()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("monitord's PUBKEY is not an RSA public key")
    return key


def encrypt(data: bytes, key: rsa.RSAPublicKey) -> bytes:
    """RSA PKCS#1 v1.5 over chunks of (key size - 11) bytes, concatenated, as the agent does."""
    size = key.key_size // 8 - _PKCS1_OVERHEAD
    return b"".join(key.encrypt(data[i : i + size], padding.PKCS1v15()) for i in range(0, len(data), size))


def network_line(message: Message, key: rsa.RSAPublicKey | None) -> bytes:
    data = message.data.encode("utf-8")
    if key is not None:
        data = encrypt(data, key)
    payload = base64.b64encode(zlib.compress(data, 9)).decode("ascii")
    return f"{message.type} {message.status} {message.oid} {message.timestamp} {payload}\n".encode()


class NetworkSink:
    """Sends to monitord's UDP/TCP port like the host agent (monitord-client.rb)."""

    def __init__(self, address: str, port: int, key: rsa.RSAPublicKey | None = None) -> None:
        self.address = address
        self.port = port
        self.key = key
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._udp = socket.socket(family, socket.SOCK_DGRAM)
        self._udp.setblocking(False)

    async def send(self, message: Message) -> None:
        line = network_line(message, self.key)
        if message.type == "STATE_VM" or len(line) > MAX_DATAGRAM_BYTES:
            await self._tcp(line)
        else:
            self._udp.sendto(line, (self.address, self.port))

    async def _tcp(self, line: bytes) -> None:
        async with asyncio.timeout(TCP_SECONDS):
            _, writer = await asyncio.open_connection(self.address, self.port)
            try:
                writer.write(line)
                await writer.drain()
            finally:
                writer.close()
                await writer.wait_closed()

    def close(self) -> None:
        self._udp.close()
