"""What the monitor asks of other services, behind two small protocols.

The monitor never reaches a host: `Prober` is ExecutorService/Probe, `Importer` is
TranslatorService/Import. The gRPC implementations turn a failed call back into the typed
error with `from_rpc_error`, so the monitor handles `Unavailable`, `DeadlineExceeded` or
`CommandFailed`, never status codes. Tests and the benchmark pass in-process stand-ins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import grpc

from onexen.runtime.errors import Unavailable, from_rpc_error
from onexen.runtime.interceptor import outgoing_metadata
from onexen.v1 import executor_pb2, executor_pb2_grpc, translator_pb2, translator_pb2_grpc


class Prober(Protocol):
    async def probe(
        self, host: str, datastore_paths: Sequence[str], sample_seconds: float, timeout: float
    ) -> executor_pb2.ProbeResponse:
        """One round trip to `host`; raises an `OnexenError` when the host cannot be probed."""
        ...


class Importer(Protocol):
    async def import_template(self, domain_json: str, timeout: float) -> str:
        """The OpenNebula template that imports the domain whose `xl list -l` object this is."""
        ...


class ExecutorProber:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = executor_pb2_grpc.ExecutorServiceStub(channel)

    async def probe(
        self, host: str, datastore_paths: Sequence[str], sample_seconds: float, timeout: float
    ) -> executor_pb2.ProbeResponse:
        request = executor_pb2.ProbeRequest(
            host=host, datastore_paths=datastore_paths, sample_seconds=sample_seconds
        )
        try:
            response: executor_pb2.ProbeResponse = await self._stub.Probe(
                request, timeout=timeout, metadata=outgoing_metadata()
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return response


class TranslatorImporter:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = translator_pb2_grpc.TranslatorServiceStub(channel)

    async def import_template(self, domain_json: str, timeout: float) -> str:
        request = translator_pb2.ImportRequest(domain_json=domain_json)
        try:
            response: translator_pb2.ImportResponse = await self._stub.Import(
                request, timeout=timeout, metadata=outgoing_metadata()
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return response.template


class NoExecutor:
    """For a monitor built without a peer (tests of the servicer's own checks)."""

    async def probe(
        self, host: str, datastore_paths: Sequence[str], sample_seconds: float, timeout: float
    ) -> executor_pb2.ProbeResponse:
        raise Unavailable("this monitor has no executor to probe hosts through", reason="NO_EXECUTOR")
