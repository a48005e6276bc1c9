"""Start, serve and drain a service: the one `serve()` all onexen services share.

A server gets the interceptor (request ids, error table, one log event per call,
metrics), grpc.health.v1 (SERVING for "" and each service), reflection
(v1alpha, which grpcurl falls back to), a plaintext, TLS or mutual-TLS port and
onexen's keepalive options. SIGTERM or SIGINT drains it: health turns
NOT_SERVING, new calls are refused, calls in flight get `grace_seconds` to finish
and are cancelled after; the process then exits 0.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from onexen.runtime.config import ServiceConfig
from onexen.runtime.interceptor import ServiceInterceptor
from onexen.runtime.logging import configure_logging, get_logger
from onexen.runtime.metrics import MetricsEndpoint, RpcMetrics, start_metrics_endpoint
from onexen.runtime.transport import server_credentials, server_options

AddServicers = Callable[[grpc.aio.Server], Sequence[str]]
"""Registers a service's servicers on the server; returns the full service names it added."""

_log = get_logger(__name__)


class StartupError(Exception):
    """The server could not start (port taken, unreadable certificate, ...)."""


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


@dataclass
class RunningServer:
    config: ServiceConfig
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    metrics: RpcMetrics
    metrics_endpoint: MetricsEndpoint | None
    port: int
    service_names: tuple[str, ...]
    stopped: bool = False

    @property
    def target(self) -> str:
        """host:port a client on this machine dials (a wildcard address becomes loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1", "": "127.0.0.1"}.get(
            self.config.listen_address, self.config.listen_address
        )
        return bind_address(host, self.port)

    @property
    def metrics_port(self) -> int | None:
        return self.metrics_endpoint.port if self.metrics_endpoint is not None else None

    async def enter_drain(self) -> None:
        """Health NOT_SERVING for every service, for good: load balancers stop sending."""
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float | None = None) -> None:
        """Drain, refuse new calls, give calls in flight `grace` seconds, then cancel them."""
        if self.stopped:
            return
        self.stopped = True
        grace = self.config.grace_seconds if grace is None else grace
        await self.enter_drain()
        await self.server.stop(grace)
        await _let_cancelled_calls_finish()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()
        _log.info("stopped", service=self.config.service)


def _is_grpc_call_task(task: asyncio.Task[object]) -> bool:
    # grpc.aio names the tasks that run a call (an implementation detail: if the
    # names change, stop() merely stops waiting for them).
    name = task.get_name()
    return name == "rpc_task" or name.startswith("HandleExceptions[")


async def _let_cancelled_calls_finish(timeout: float = 1.0) -> None:
    # server.stop() can return while the calls it cancelled are still unwinding;
    # asyncio.run() would then cancel them again at exit and gRPC prints a raw
    # traceback for each. Their `rpc` events also belong before `stopped`.
    unwinding = [task for task in asyncio.all_tasks() if _is_grpc_call_task(task) and not task.done()]
    if unwinding:
        await asyncio.wait(unwinding, timeout=timeout)


def _add_port(server: grpc.aio.Server, config: ServiceConfig) -> int:
    address = bind_address(config.listen_address, config.port)
    try:
        credentials = server_credentials(config)
    except OSError as exc:
        raise StartupError(f"cannot read TLS files: {exc}") from exc
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise StartupError(f"cannot listen on {address}: {exc}") from exc
    if not port:
        raise StartupError(f"cannot listen on {address}")
    return int(port)


async def start_server(config: ServiceConfig, add_servicers: AddServicers) -> RunningServer:
    metrics = RpcMetrics()
    server = grpc.aio.server(
        interceptors=[ServiceInterceptor(metrics)],
        options=server_options(),
        maximum_concurrent_rpcs=config.max_concurrent_rpcs or None,
    )
    service_names = tuple(add_servicers(server))

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflected = (*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(reflected, server)

    port = _add_port(server, config)
    endpoint = None
    if config.metrics_port:
        try:
            endpoint = start_metrics_endpoint(metrics.registry, config.listen_address, config.metrics_port)
        except OSError as exc:
            raise StartupError(f"cannot serve metrics on port {config.metrics_port}: {exc}") from exc
    try:
        await server.start()
    except Exception:
        if endpoint is not None:
            endpoint.close()
        raise

    running = RunningServer(config, server, health_servicer, metrics, endpoint, port, service_names)
    # Everything imported and built so far lives as long as the process: moved out of the
    # collector's sight, the frequent young-generation collections of request handling stop
    # re-scanning it (about 9% of a translation's time).
    gc.collect()
    gc.freeze()
    _log.info(
        "serving",
        service=config.service,
        address=config.listen_address,
        port=port,
        tls=config.tls_mode,
        metrics_port=running.metrics_port,
        services=list(service_names),
        max_concurrent_rpcs=config.max_concurrent_rpcs,
        grace_seconds=config.grace_seconds,
        pid=os.getpid(),
    )
    return running


@asynccontextmanager
async def started_server(config: ServiceConfig, add_servicers: AddServicers) -> AsyncIterator[RunningServer]:
    """A running server for in-process tests; stopped (with the config's grace) on exit."""
    running = await start_server(config, add_servicers)
    try:
        yield running
    finally:
        await running.stop()


async def serve(config: ServiceConfig, add_servicers: AddServicers) -> None:
    """Serve until SIGTERM or SIGINT, then drain and return."""
    running = await start_server(config, add_servicers)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal(signum: signal.Signals) -> None:
        if not stopping.is_set():
            _log.info(
                "draining", service=config.service, signal=signum.name, grace_seconds=config.grace_seconds
            )
        stopping.set()

    handled = (signal.SIGTERM, signal.SIGINT)
    for signum in handled:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await stopping.wait()
    finally:
        await running.stop()
        for signum in handled:
            loop.remove_signal_handler(signum)


def run(config: ServiceConfig, add_servicers: AddServicers) -> None:
    """Entry point of a service's `main()`: configure logging, serve, exit 0 when drained."""
    configure_logging(config.log_level, config.log_format)
    try:
        asyncio.run(serve(config, add_servicers))
    except StartupError as exc:
        _log.error("startup_failed", service=config.service, error=str(exc))
        sys.exit(1)
