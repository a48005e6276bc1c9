"""The simulated ``xentop``: batch mode (``-b``) output as Xen 4.17's xentop prints it.

One deliberate difference: ``-d`` accepts fractions of a second (the real one reads it with
atoi()), so tests can sample twice without waiting whole seconds.
"""

from __future__ import annotations

import os
import sys
import time

from simxen import render
from simxen.store import Store, state_dir_from_env
from simxen.xlcommon import Ctx, XlExit, run_as_command

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

REAL_ARGV0 = "/usr/lib/xen-4.17/bin/xentop"

USAGE = (
    "Usage: {prog} [OPTION]\n"
    "Displays ongoing information about xen vm resources \n\n"
    "-h, --help           display this help and exit\n"
    "-V, --version        output version information and exit\n"
    "-d, --delay=SECONDS  seconds between updates (default 3)\n"
    "-n, --networks       output vif network data\n"
    "-x, --vbds           output vbd block device data\n"
    "-r, --repeat-header  repeat table header before each domain\n"
    "-v, --vcpus          output vcpu data\n"
    "-b, --batch\t     output in batch mode, no user input accepted\n"
    "-i, --iterations     number of iterations before exiting\n"
    "-f, --full-name      output the full domain name (not truncated)\n"
    "\n"
    "Report bugs to <xen-devel@lists.xen.org>.\n"
)

VERSION = (
    "xentop 1.0\n"
    "Written by Judy Fischbach, David Hendricks, Josh Triplett\n"
    "\n"
    "Copyright (C) 2005  International Business Machines  Corp\n"
    "This is free software; see the source for copying conditions.There is NO\n"
    "warranty; not even for MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.\n"
)

LONGS = [
    "help",
    "version",
    "networks",
    "vbds",
    "repeat-header",
    "vcpus",
    "delay=",
    "batch",
    "iterations=",
    "full-name",
]
LONG_TO_SHORT = {
    "help": "h", "version": "V", "networks": "n", "vbds": "x", "repeat-header": "r", "vcpus": "v",
    "delay": "d", "batch": "b", "iterations": "i", "full-name": "f",
}  # fmt: skip


class _Stop(Exception):
    pass


class _GetoptError(Exception):
    def __init__(self, opt: str, missing_arg: bool = False) -> None:
        super().__init__(opt)
        self.opt = opt  # as Python's getopt reports it: the letter, or the long name (or prefix)
        self.missing_arg = missing_arg


def _long_has_arg(opt: str, longopts: list[str]) -> tuple[bool, str]:
    possibilities = [o for o in longopts if o.startswith(opt)]
    if not possibilities:
        raise _GetoptError(opt)
    if opt in possibilities:
        return False, opt
    if opt + "=" in possibilities:
        return True, opt
    if len(possibilities) > 1:
        raise _GetoptError(opt)  # not a unique prefix
    match = possibilities[0]
    return match.endswith("="), match.removesuffix("=")


def gnu_getopt(
    args: list[str], shortopts: str, longopts: list[str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """``getopt.gnu_getopt`` of Python 3.11, step for step: the getopt module imports gettext
    (and with it re and locale), which would double what a ``xentop -b -i 1`` call costs."""
    opts: list[tuple[str, str]] = []
    prog_args: list[str] = []
    all_options_first = bool(os.environ.get("POSIXLY_CORRECT"))
    while args:
        arg, args = args[0], args[1:]
        if arg == "--":
            prog_args += args
            break
        if arg[:2] == "--":
            name, eq, optarg = arg[2:].partition("=")
            has_arg, name = _long_has_arg(name, longopts)
            if has_arg:
                if not eq:
                    if not args:
                        raise _GetoptError(name, missing_arg=True)
                    optarg, args = args[0], args[1:]
            elif eq:
                raise _GetoptError(name)  # must not have an argument
            opts.append(("--" + name, optarg))
        elif arg[:1] == "-" and arg != "-":
            letters = arg[1:]
            while letters:
                opt, letters = letters[0], letters[1:]
                pos = shortopts.find(opt)
                if opt == ":" or pos < 0:
                    raise _GetoptError(opt)
                optarg = ""
                if shortopts.startswith(":", pos + 1):
                    if not letters:
                        if not args:
                            raise _GetoptError(opt, missing_arg=True)
                        letters, args = args[0], args[1:]
                    optarg, letters = letters, ""
                opts.append(("-" + opt, optarg))
        elif all_options_first:
            prog_args += [arg, *args]
            break
        else:
            prog_args.append(arg)
    return opts, prog_args


def _atof(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def _atoi(text: str) -> int:
    digits = ""
    for i, ch in enumerate(text.strip()):
        if ch.isdigit() or (i == 0 and ch in "+-"):
            digits += ch
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return 0


def run(ctx: Ctx, argv: list[str]) -> int:
    try:
        opts, _ = gnu_getopt(argv, "hVnxrvd:bi:f", LONGS)
    except _GetoptError as e:
        # glibc reports the bad option, then xentop prints its usage and exits 0 ('?' case)
        if len(e.opt) == 1 and e.missing_arg:
            ctx.err.write(f"{REAL_ARGV0}: option requires an argument -- '{e.opt}'\n")
        elif len(e.opt) == 1:
            ctx.err.write(f"{REAL_ARGV0}: invalid option -- '{e.opt}'\n")
        else:
            ctx.err.write(f"{REAL_ARGV0}: unrecognized option '--{e.opt}'\n")
        ctx.out.write(USAGE.format(prog=REAL_ARGV0))
        return 0
    view = render.XentopOptions()
    delay = 3.0
    iterations: int | None = None
    batch = False
    for o, v in opts:
        letter = o[1:] if not o.startswith("--") else LONG_TO_SHORT[o[2:]]
        if letter == "h":
            ctx.out.write(USAGE.format(prog=REAL_ARGV0))
            return 0
        if letter == "V":
            ctx.out.write(VERSION)
            return 0
        if letter == "n":
            view.networks = True
        elif letter == "x":
            view.vbds = True
        elif letter == "r":
            view.repeat_header = True
        elif letter == "v":
            view.vcpus = True
        elif letter == "d":
            delay = _atof(v)
        elif letter == "b":
            batch = True
        elif letter == "i":
            iterations = _atoi(v)
        elif letter == "f":
            view.full_name = True
    if not batch:
        # curses needs a terminal; over ssh without -t there is none (and no TERM)
        ctx.err.write("Error opening terminal: unknown.\n")
        return 1

    from simxen.xl import apply_fault

    apply_fault(ctx, "xentop", argv)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    previous: dict[int, render.XentopSample] | None = None
    prev_time = 0.0
    left = iterations
    try:
        while True:
            now = time.time()
            state = ctx.store.snapshot(now, ctx.facts)
            sample = render.xentop_sample(state, now, ctx.facts)
            text = render.xentop_text(
                sample, previous, (now - prev_time) * 1e6, ctx.facts.total_memory_kb, view
            )
            ctx.out.write(text)
            ctx.out.flush()
            previous = {s.domid: s for s in sample}
            prev_time = now
            if left is not None:
                left -= 1
                if left == 0:  # -i 0 wraps around in the real one: it never stops either
                    break
            _stop_on_signals(stop)
            if delay > 0:
                time.sleep(delay)
    except _Stop:
        pass
    return 0


def _stop_on_signals(handler: Callable[[int, FrameType | None], None]) -> None:
    """SIGTERM and SIGINT end the loop cleanly (the call is logged, exit 0).

    Only set up once there is a next iteration to wait for: the signal module imports enum,
    which would cost every ``xentop -b -i 1`` several ms, and a single iteration has no loop to
    leave (a signal then ends it as it would have ended it before the handlers were set).
    """
    import signal

    if signal.getsignal(signal.SIGTERM) is not handler:
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def main(argv: list[str] | None = None, state_dir: str | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    store = Store(state_dir or state_dir_from_env())
    ctx = Ctx(store=store, facts=store.facts(), out=sys.stdout, err=sys.stderr)
    started = time.time()
    try:
        rc = run(ctx, argv[1:])
    except XlExit as e:
        rc = e.rc
    except BrokenPipeError:
        rc = 1
    store.log_call(["xentop", *argv[1:]], rc, started)
    return rc


def command() -> None:
    """``bin/xentop``."""
    run_as_command(main)


if __name__ == "__main__":
    raise SystemExit(main())
