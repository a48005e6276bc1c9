"""Fixtures of the runtime tests: captured logs, an in-process server, a channel to it, a PKI."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
import structlog
from runtime_helpers import (
    LogCapture,
    Pki,
    Scripted,
    ScriptedMonitor,
    ScriptedTranslator,
    make_config,
    make_pki,
)

from onexen.runtime.logging import configure_logging
from onexen.runtime.server import RunningServer, started_server
from onexen.v1 import translator_pb2_grpc


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    configure_logging("debug", "json", stream=capture.stream)
    yield capture
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)


@pytest.fixture
def scripted() -> Scripted:
    return Scripted(ScriptedTranslator(), ScriptedMonitor())


@pytest.fixture
async def server(scripted: Scripted, logs: LogCapture) -> AsyncIterator[RunningServer]:
    async with started_server(make_config(), scripted.add_to_server) as running:
        yield running


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.target) as opened:
        yield opened


@pytest.fixture
def translator(channel: grpc.aio.Channel) -> translator_pb2_grpc.TranslatorServiceStub:
    return translator_pb2_grpc.TranslatorServiceStub(channel)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))
