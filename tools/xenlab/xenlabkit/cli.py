"""xenlab: the project's own Xen lab (see tools/xenlab/README.md)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import preflight
from .build import build
from .errors import EXIT_FAILED, EXIT_NOT_RUNNING, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, LabError, Refused
from .recipe import Cache, host_packages
from .run import Lab, shell_command, ssh_argv
from .util import tail


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="xenlab",
        description="Real Xen 4.17 hosts (Debian 12 dom0) under QEMU TCG, reachable by SSH on 127.0.0.1.",
        epilog=f"exit codes: {EXIT_OK} ok, {EXIT_FAILED} failed (serial log printed), {EXIT_USAGE} usage, "
        f"{EXIT_NOT_RUNNING} not running (status), {EXIT_REFUSED} this machine cannot run the lab",
    )
    sub = top.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="say whether this machine can run the lab (exit 77 and why, if not)")
    check.add_argument("--hosts", type=int, default=2, choices=(1, 2))
    sub.add_parser("build", help="build the cached dom0 image (idempotent)").add_argument(
        "--force", action="store_true", help="rebuild the image even when the recipe is unchanged"
    )
    up = sub.add_parser("up", help="build if needed, start the hosts in the background, wait for SSH")
    up.add_argument("--hosts", type=int, default=int(os.environ.get("XENLAB_HOSTS") or 1), choices=(1, 2))
    up.add_argument("--port", type=int, help="SSH port of xen1 (xen2: PORT+1); default: free ports")
    up.add_argument(
        "--timeout", type=float, help="seconds to wait for SSH (default: XENLAB_BOOT_TIMEOUT, 600)"
    )
    sub.add_parser("down", help="stop what `up` started (idempotent)")
    sub.add_parser("status", help="show the running lab (exit 3 when not running)")
    ssh = sub.add_parser("ssh", help="run a command in a dom0 (as oneadmin, or --root)")
    ssh.add_argument("--host", help="xen1 (default) or xen2")
    ssh.add_argument("--root", action="store_true")
    ssh.add_argument("--print", action="store_true", help="print the ssh command line instead of running it")
    ssh.add_argument("cmd", nargs=argparse.REMAINDER)
    console = sub.add_parser("console", help="print the tail of a host's serial log (Xen and dom0 console)")
    console.add_argument("--host")
    console.add_argument("--lines", type=int, default=200)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return dispatch(args)
    except Refused as refusal:
        print(f"xenlab: cannot run here ({refusal.reason}): {refusal}", file=sys.stderr)
        return EXIT_REFUSED
    except LabError as error:
        print(f"xenlab: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def dispatch(args: argparse.Namespace) -> int:
    lab = Lab()
    if args.command == "check":
        cache = Cache.from_env()
        built = any(cache.root.glob("image-*/built.json"))
        preflight.check_machine(
            hosts=args.hosts,
            build_dir=None if built else cache.root,
            run_dir=lab.run_dir,
            packages=host_packages(),
        )
        print(f"xenlab: this machine can run {args.hosts} lab host(s)")
    elif args.command == "build":
        t0 = time.monotonic()
        image = build(Cache.from_env(), force=args.force)
        print(f"xenlab: image {image.dir} ({time.monotonic() - t0:.0f}s)")
    elif args.command == "up":
        t0 = time.monotonic()
        info = lab.up(args.hosts, args.port, args.timeout)
        took = time.monotonic() - t0
        print(f"xenlab: {len(info.hosts)} host(s) up in {took:.0f}s; description: {lab.state_path}")
    elif args.command == "down":
        lab.down()
    elif args.command == "status":
        running, text = lab.status()
        print(text)
        return EXIT_OK if running else EXIT_NOT_RUNNING
    elif args.command == "ssh":
        host = lab.host(args.host)
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        argv = ssh_argv(host, shell_command(cmd) if cmd else "", user="root" if args.root else None)
        if args.print:
            print(shell_command(argv))
            return EXIT_OK
        os.execvp(argv[0], argv)
    elif args.command == "console":
        print(tail(Path(lab.host(args.host).serial_log), args.lines))
    return EXIT_OK
