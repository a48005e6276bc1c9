"""``onexen-simxen``: run simulated Xen hosts and inject faults and events into them.

    onexen-simxen up --workdir DIR --name xen1 [--port N] [--fact nr_cpus=8 ...]
    onexen-simxen fault --state-dir DIR add VERB (--fail RC [--stderr TEXT] | --hang | --slow SECONDS)
                        [--count N] [--match TEXT]
    onexen-simxen fault --state-dir DIR clear [VERB] | list
    onexen-simxen event --state-dir DIR crash|poweroff|reboot|pause|unpause DOMAIN
    onexen-simxen event --state-dir DIR ignore-acpi DOMAIN [--off]
    onexen-simxen event --state-dir DIR load DOMAIN FRACTION
    onexen-simxen event --state-dir DIR wild NAME [--memory MB] [--vcpus N] [--type pv|pvh|hvm]
    onexen-simxen domains --state-dir DIR

``--state-dir`` defaults to $SIMXEN_STATE.  ``up`` prints one JSON line describing the host once
sshd serves its banner, and stops the host on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from simxen import inject
from simxen.facts import facts_field_names


def _fact_value(text: str) -> tuple[str, Any]:
    name, eq, raw = text.partition("=")
    if not eq or name not in facts_field_names():
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE with NAME one of: {', '.join(facts_field_names())}"
        )
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw  # a bare string
    return name, value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="onexen-simxen", description="Simulated Xen 4.17 hosts for onexen.")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start a simulated host (sshd) and keep it running")
    up.add_argument("--workdir", required=True, help="directory for this and sibling hosts' files")
    up.add_argument("--name", default="xen1", help="host name (also the ssh_config alias)")
    up.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: pick a free one)")
    up.add_argument(
        "--fact",
        action="append",
        type=_fact_value,
        default=[],
        metavar="NAME=VALUE",
        help="override a host fact",
    )

    state_dir = argparse.ArgumentParser(add_help=False)
    state_dir.add_argument("--state-dir", default=os.environ.get("SIMXEN_STATE"), help="host state directory")

    fault = sub.add_parser("fault", parents=[state_dir], help="make xl/xentop verbs fail, hang or crawl")
    fsub = fault.add_subparsers(dest="action", required=True)
    add = fsub.add_parser("add")
    add.add_argument("verb", help='xl verb ("create", "list", ...), "xentop", or "*"')
    mode = add.add_mutually_exclusive_group(required=True)
    mode.add_argument("--fail", type=int, metavar="RC", help="exit with RC without doing anything")
    mode.add_argument("--hang", action="store_true", help="sleep until killed")
    mode.add_argument("--slow", type=float, metavar="SECONDS", help="wait, then work normally")
    add.add_argument("--stderr", default="", help="text printed on stderr with --fail")
    add.add_argument("--stdout", default="", help="text printed on stdout with --fail")
    add.add_argument("--count", type=int, help="only the next N calls (default: until cleared)")
    add.add_argument("--match", help="only calls whose arguments contain this text")
    clear = fsub.add_parser("clear")
    clear.add_argument("verb", nargs="?")
    fsub.add_parser("list")

    event = sub.add_parser("event", parents=[state_dir], help="things happening to guests")
    esub = event.add_subparsers(dest="action", required=True)
    for name, text in (
        ("crash", "the guest crashes (stays listed as crashed)"),
        ("poweroff", "the guest powers itself off"),
        ("reboot", "the guest reboots itself"),
        ("pause", "the guest is paused"),
        ("unpause", "the guest is unpaused"),
    ):
        e = esub.add_parser(name, help=text)
        e.add_argument("domain")
        if name == "crash":
            e.add_argument(
                "--honour-on-crash", action="store_true", help="let on_crash act (default: keep it)"
            )
    acpi = esub.add_parser("ignore-acpi", help="the guest ignores shutdown/reboot requests")
    acpi.add_argument("domain")
    acpi.add_argument("--off", action="store_true", help="honour them again")
    load = esub.add_parser("load", help="CPU load of the guest (fraction per vCPU)")
    load.add_argument("domain")
    load.add_argument("fraction", type=float)
    wild = esub.add_parser("wild", help="a guest started by hand on the host")
    wild.add_argument("name")
    wild.add_argument("--memory", type=int, default=128, help="MiB")
    wild.add_argument("--vcpus", type=int, default=1)
    wild.add_argument("--type", default="pv", choices=["pv", "pvh", "hvm"])

    sub.add_parser("domains", parents=[state_dir], help="print the host's domains as JSON")
    return p


def _up(args: argparse.Namespace) -> int:
    from simxen.host import SimHost, SimHostError

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        host = SimHost.start(args.workdir, args.name, args.port, **dict(args.fact))
    except (SimHostError, TypeError) as e:
        print(f"onexen-simxen: {e}", file=sys.stderr)
        return 1
    try:
        print(json.dumps(host.describe()), flush=True)
        while not stop.wait(1.0):
            if not host.running:
                print(f"onexen-simxen: sshd of {host.name} exited, see {host.sshd_log_path}", file=sys.stderr)
                return 1
    finally:
        host.stop()
    return 0


def _fault(args: argparse.Namespace) -> int:
    if args.action == "add":
        if args.fail is not None:
            inject.fail(
                args.state_dir,
                args.verb,
                rc=args.fail,
                stderr=args.stderr,
                stdout=args.stdout,
                count=args.count,
                match=args.match,
            )
        elif args.hang:
            inject.hang(args.state_dir, args.verb, count=args.count, match=args.match)
        else:
            inject.slow(args.state_dir, args.verb, args.slow, count=args.count, match=args.match)
    elif args.action == "clear":
        inject.clear_faults(args.state_dir, args.verb)
    else:
        for f in inject.list_faults(args.state_dir):
            print(json.dumps(f.__dict__))
    return 0


def _event(args: argparse.Namespace) -> int:
    sd = args.state_dir
    action = args.action
    if action == "crash":
        inject.crash(sd, args.domain, honour_on_crash=args.honour_on_crash)
    elif action == "poweroff":
        inject.guest_poweroff(sd, args.domain)
    elif action == "reboot":
        inject.guest_reboot(sd, args.domain)
    elif action == "pause":
        inject.pause(sd, args.domain)
    elif action == "unpause":
        inject.unpause(sd, args.domain)
    elif action == "ignore-acpi":
        inject.ignore_acpi(sd, args.domain, not args.off)
    elif action == "load":
        inject.set_load(sd, args.domain, args.fraction)
    elif action == "wild":
        domid = inject.add_wild_domain(
            sd, args.name, memory_mb=args.memory, vcpus=args.vcpus, dtype=args.type
        )
        print(domid)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        return _up(args)
    if not args.state_dir:
        print("onexen-simxen: --state-dir (or SIMXEN_STATE) is required", file=sys.stderr)
        return 2
    if not os.path.isdir(args.state_dir):
        print(f"onexen-simxen: no state directory {args.state_dir}", file=sys.stderr)
        return 2
    try:
        if args.command == "fault":
            return _fault(args)
        if args.command == "event":
            return _event(args)
        print(json.dumps(inject.domains(args.state_dir), indent=2))
        return 0
    except (inject.NoSuchDomain, ValueError) as e:
        print(f"onexen-simxen: {e}", file=sys.stderr)
        return 1
