"""`python -m stack up|demo` — what `make up` and `make demo` run."""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType

from stack.launcher import SERVICES, Stack, StackError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="onexen-stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the stack in the foreground until Ctrl-C or SIGTERM")
    up.add_argument("--workdir", type=Path, default=Path(".onexen"))
    demo = sub.add_parser("demo", help="start the stack, show it working, stop it")
    demo.add_argument("--workdir", type=Path, default=Path(".onexen/demo"))
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            sys.exit(run_up(args.workdir))
        from stack.demo import run_demo

        # The demo owns its workdir: start from nothing so what it prints is this run's alone.
        shutil.rmtree(args.workdir, ignore_errors=True)
        sys.exit(run_demo(Stack(args.workdir.resolve(), ports=free_ports())))
    except StackError as exc:
        print(f"onexen-stack: {exc}", file=sys.stderr)
        sys.exit(1)


def run_up(workdir: Path) -> int:
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with Stack(workdir.resolve()) as stack:
        print("onexen stack is up:")
        for name, service in stack.services.items():
            print(f"  {name:<10} {service.address}   log {service.log_path}")
        for host in stack.hosts:
            print(f"  host {host.name:<5} ssh -i {host.key_path} -p {host.port} {host.user}@{host.address}")
        print(f"written to {stack.stack_file}; Ctrl-C stops everything")
        stopped.wait()
        print("stopping...")
    print("stopped")
    return 0


def free_ports() -> dict[str, int]:
    """Ports for a demo that must not collide with a `make up` already running."""
    sockets = []
    ports: dict[str, int] = {}
    for name in SERVICES:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports[name] = s.getsockname()[1]
    for s in sockets:
        s.close()
    return ports
