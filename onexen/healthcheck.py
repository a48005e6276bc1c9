"""`python -m onexen.healthcheck ADDRESS [SERVICE]`: exit 0 when grpc.health.v1 says SERVING.

Used by the compose healthchecks, so it needs nothing but the image's own Python."""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str = "", timeout: float = 3.0) -> str:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="onexen-healthcheck", description=__doc__)
    parser.add_argument("address", help="host:port of a onexen service")
    parser.add_argument(
        "service", nargs="?", default="", help="e.g. onexen.v1.ExecutorService; empty = server"
    )
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    try:
        status = check(args.address, args.service, args.timeout)
    except grpc.RpcError as exc:
        print(f"{args.address}: {exc.code().name}", file=sys.stderr)
        sys.exit(1)
    print(f"{args.address} {args.service or '(server)'}: {status}")
    sys.exit(0 if status == "SERVING" else 1)


if __name__ == "__main__":
    main()
