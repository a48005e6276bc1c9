"""Prometheus metrics of gRPC calls, in a registry per server.

A registry per server (not prometheus_client's global one) lets tests, and
several servers in one process, each count their own calls.

Labels: `service` is the full gRPC service name (onexen.v1.TranslatorService),
`method` the method name (Translate), `code` the status code name (OK, NOT_FOUND).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

# From 1 ms (translator calls) to 5 min (a guest that takes its time to shut down).
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def split_method(full_method: str) -> tuple[str, str]:
    """`/onexen.v1.TranslatorService/Translate` -> (`onexen.v1.TranslatorService`, `Translate`)."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service or "unknown", method or full_method


@dataclass
class RpcMetrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        labels = ("service", "method", "code")
        self.calls = Counter(
            "onexen_rpc_calls", "gRPC calls finished, by status code.", labels, registry=self.registry
        )
        self.errors = Counter(
            "onexen_rpc_errors",
            "gRPC calls finished with a status other than OK.",
            labels,
            registry=self.registry,
        )
        self.duration = Histogram(
            "onexen_rpc_duration_seconds",
            "Time from handler start to its status, in seconds.",
            ("service", "method"),
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def observe(self, full_method: str, code: grpc.StatusCode, seconds: float) -> None:
        service, method = split_method(full_method)
        self.calls.labels(service, method, code.name).inc()
        if code != grpc.StatusCode.OK:
            self.errors.labels(service, method, code.name).inc()
        self.duration.labels(service, method).observe(seconds)


@dataclass
class MetricsEndpoint:
    """A running /metrics HTTP server (in a thread, as prometheus_client runs it)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_endpoint(registry: CollectorRegistry, address: str, port: int) -> MetricsEndpoint:
    """Serve `registry` on http://address:port/metrics; port 0 picks a free one."""
    server, thread = start_http_server(port, addr=address, registry=registry)
    return MetricsEndpoint(server, thread)
