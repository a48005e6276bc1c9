"""Helpers shared by the runtime tests: a scripted servicer, captured logs, a throwaway PKI."""

from __future__ import annotations

import asyncio
import datetime
import io
import ipaddress
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from onexen.runtime import errors
from onexen.runtime.config import ServiceConfig
from onexen.runtime.interceptor import current_request_id, deadline_seconds, run_blocking
from onexen.v1 import monitor_pb2, monitor_pb2_grpc, translator_pb2, translator_pb2_grpc
from services.monitor.servicer import MonitorServicer
from services.translator.servicer import TranslatorServicer

TRANSLATOR = "onexen.v1.TranslatorService"
MONITOR = "onexen.v1.MonitorService"


class ScriptedTranslator(TranslatorServicer):
    """`vm_xml` names what Translate does, so one servicer drives the runtime tests (Import is real)."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.domain_error: errors.OnexenError | None = None

    async def Translate(
        self, request: translator_pb2.TranslateRequest, context: grpc.aio.ServicerContext
    ) -> translator_pb2.TranslateResponse:
        command = request.vm_xml
        if command == "raise":
            assert self.domain_error is not None
            raise self.domain_error
        if command == "crash":
            password = "hunter2"  # a local a traceback with locals would print
            assert password
            raise RuntimeError("secret internals: /etc/onexen/hosts.yaml line 3")
        if command.startswith("sleep:"):
            try:
                await asyncio.sleep(float(command.removeprefix("sleep:")))
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            return translator_pb2.TranslateResponse(config="slept")
        if command == "request-id":
            return translator_pb2.TranslateResponse(config=current_request_id() or "")
        if command == "request-id-in-thread":
            in_thread = await run_blocking(None, current_request_id)
            return translator_pb2.TranslateResponse(config=in_thread or "")
        if command == "deadline":
            return translator_pb2.TranslateResponse(config=repr(deadline_seconds(context)))
        return translator_pb2.TranslateResponse(config="ok")


class ScriptedMonitor(MonitorServicer):
    """Watch: three events, or (host_id 404) one event then NOT_FOUND; the other RPCs are real."""

    async def Watch(
        self, request: monitor_pb2.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[monitor_pb2.WatchResponse]:
        for host_id in range(3):
            if host_id == 1 and request.host_id == 404:
                raise errors.NotFound("host 404 is not watched", reason="HOST_NOT_WATCHED")
            yield monitor_pb2.WatchResponse(event=monitor_pb2.MonitorEvent(host_id=host_id))


@dataclass
class Scripted:
    translator: ScriptedTranslator
    monitor: ScriptedMonitor

    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        translator_pb2_grpc.add_TranslatorServiceServicer_to_server(self.translator, server)
        monitor_pb2_grpc.add_MonitorServiceServicer_to_server(self.monitor, server)
        return (TRANSLATOR, MONITOR)


def make_config(**overrides: Any) -> ServiceConfig:
    return replace(ServiceConfig(service="test", port=0, grace_seconds=0.5), **overrides)


class LogCapture:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[str]:
        return [line for line in self.stream.getvalue().splitlines() if line.strip()]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]

    def rpc_events(self, method_suffix: str = "") -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == "rpc" and e["method"].endswith(method_suffix)]

    async def wait_for_rpc_events(
        self, method_suffix: str, count: int, timeout: float = 3.0
    ) -> list[dict[str, Any]]:
        """The server logs after the client has its status: poll a little."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.rpc_events(method_suffix)) < count and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return self.rpc_events(method_suffix)


# --- throwaway PKI --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # signed by another CA
    stranger_key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    elif server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    ca_key, other_ca_key = key(), key()
    ca = _issue("onexen test CA", ca_key, None, ca_key, ca=True)
    other_ca = _issue("stranger CA", other_ca_key, None, other_ca_key, ca=True)
    server_key, client_key, stranger_key = key(), key(), key()
    return Pki(
        ca_cert=_write_cert(directory / "ca.pem", ca),
        server_cert=_write_cert(
            directory / "server.pem", _issue("localhost", server_key, ca, ca_key, server=True)
        ),
        server_key=_write_key(directory / "server.key", server_key),
        client_cert=_write_cert(directory / "client.pem", _issue("onexen-monitor", client_key, ca, ca_key)),
        client_key=_write_key(directory / "client.key", client_key),
        stranger_cert=_write_cert(
            directory / "stranger.pem", _issue("stranger", stranger_key, other_ca, other_ca_key)
        ),
        stranger_key=_write_key(directory / "stranger.key", stranger_key),
    )


def fetch(url: str) -> str:
    """A blocking GET (run it with asyncio.to_thread)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body.decode()
