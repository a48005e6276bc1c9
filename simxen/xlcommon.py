"""What every simulated xl verb shares: the call context, xl's option parsing and domain lookup."""

from __future__ import annotations

import os
import sys
import time

from simxen.facts import HostFacts
from simxen.model import Domain, HostState, no_domain_type_error
from simxen.records import dataclass
from simxen.store import Store
from simxen.xl_help import VERB_HELP

TYPE_CHECKING = False  # typing and contextlib would cost every simulated xl call several ms
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import NoReturn, TextIO

    from simxen.store import Transaction


def run_as_command(main: Callable[[], int]) -> NoReturn:
    """What ``bin/xl`` and ``bin/xentop`` run: ``main()``, then exit at once with its code.

    The interpreter's teardown (module cleanup, garbage collection) costs a short command
    several ms of CPU and does nothing a finished command needs: the commands keep no open
    files with unwritten data and start no threads, and stdout/stderr are flushed here.
    """
    rc = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            rc = 120  # what the interpreter's own exit returns when it cannot flush them
    os._exit(rc & 0xFF)


class XlExit(Exception):
    """Leave the command with this exit code (xl's many ``exit()`` calls)."""

    def __init__(self, rc: int) -> None:
        super().__init__(rc)
        self.rc = rc


@dataclass
class Ctx:
    store: Store
    facts: HostFacts
    out: TextIO
    err: TextIO
    dryrun: bool = False  # global -N
    verbose: int = 0  # global -v count
    progress_cr: bool = False  # global -t

    def now(self) -> float:
        return time.time()

    def state(self) -> Transaction:
        """``with ctx.state() as state:`` the host's state, saved at the end of the block."""
        return self.store.transaction(facts=self.facts)

    def error(self, *lines: str) -> None:
        for line in lines:
            self.err.write(line + "\n")
        self.err.flush()


@dataclass(frozen=True)
class LongOpt:
    name: str
    has_arg: bool
    val: str  # the short option it stands for (xl reports it in errors)


COMMON_LONG = (LongOpt("help", False, "h"),)


def help_text(verb: str) -> str:
    return VERB_HELP.get(verb, f'command "{verb}" not implemented\n')


def print_help(ctx: Ctx, verb: str) -> None:
    ctx.out.write(help_text(verb))
    ctx.out.flush()


class GetoptError(Exception):
    def __init__(self, optopt: str) -> None:
        super().__init__(optopt)
        self.optopt = optopt  # what glibc leaves in optopt: the letter, or NUL for long options


def gnu_getopt(
    args: Sequence[str], shortopts: str, longopts: Sequence[LongOpt]
) -> tuple[list[tuple[str, str]], list[str]]:
    """glibc getopt_long() without "+": options anywhere (permuted), "--" ends them, clustered
    short options, "-dVALUE"/"-d VALUE", "--name=VALUE"/"--name VALUE", unique long prefixes.
    Returns ([(letter or long option's val, value)], positional)."""
    opts: list[tuple[str, str]] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            exact = [lo for lo in longopts if lo.name == name]
            matches = exact or [lo for lo in longopts if lo.name.startswith(name)]
            if len(matches) != 1:
                raise GetoptError("\0")
            lo = matches[0]
            val = lo.val if len(lo.val) == 1 else "\0"
            if lo.has_arg:
                if not eq:
                    if i >= len(args):
                        raise GetoptError(val)
                    value = args[i]
                    i += 1
            elif eq:
                raise GetoptError(val)
            opts.append((lo.val, value))
        elif arg.startswith("-") and arg != "-":
            j = 1
            while j < len(arg):
                ch = arg[j]
                pos = shortopts.find(ch)
                if ch == ":" or pos < 0:
                    raise GetoptError(ch)
                if shortopts[pos + 1 : pos + 2] == ":":
                    value = arg[j + 1 :]
                    if not value:
                        if i >= len(args):
                            raise GetoptError(ch)
                        value = args[i]
                        i += 1
                    opts.append((ch, value))
                    break
                opts.append((ch, ""))
                j += 1
        else:
            rest.append(arg)
    return opts, rest


def xl_getopt(
    ctx: Ctx,
    args: Sequence[str],
    shortopts: str,
    longopts: Sequence[LongOpt],
    verb: str,
    reqargs: int,
) -> tuple[list[tuple[str, str]], list[str]]:
    """SWITCH_FOREACH_OPT/def_getopt: GNU getopt with permutation and xl's error handling.

    Returns ([(short letter, value)], positional).  Long options come back as their letter.
    """
    try:
        opts, rest = gnu_getopt(args, shortopts, [*longopts, *COMMON_LONG])
    except GetoptError as e:
        if e.optopt == "h":
            print_help(ctx, verb)
            raise XlExit(0) from None
        ctx.err.write(f"option `{e.optopt}' not supported.\n")
        raise XlExit(2) from None
    for letter, _ in opts:
        if letter == "h":
            print_help(ctx, verb)
            raise XlExit(0)
    if len(rest) < reqargs:
        ctx.err.write(f"'xl {verb}' requires at least {reqargs} argument{'s' if reqargs > 1 else ''}.\n\n")
        ctx.err.flush()
        print_help(ctx, verb)
        raise XlExit(2)
    return opts, rest


def find_domain(ctx: Ctx, state: HostState, qualifier: str) -> tuple[int, Domain | None]:
    """xl's find_domain(): a name must exist (else exit 1); a number is taken as it is."""
    domid, dom = state.resolve(qualifier)
    if domid is None:
        ctx.error(f"{qualifier} is an invalid domain identifier (rc=-6)")
        raise XlExit(1)
    return domid, dom


def require_existing(ctx: Ctx, state: HostState, qualifier: str, what: str) -> Domain:
    """find_domain() and then a libxl operation on a domid with no domain behind it."""
    domid, dom = find_domain(ctx, state, qualifier)
    if dom is None:
        ctx.error(no_domain_type_error(domid), f"{what} failed (rc=-3)")
        raise XlExit(1)
    return dom


def c_strtol(text: str) -> tuple[int, str]:
    """C strtol(text, &end, 10): the leading number and what follows it."""
    s = text.lstrip()
    i = 1 if s[:1] in "+-" else 0
    j = i
    while j < len(s) and s[j].isdigit():
        j += 1
    if j == i:
        return 0, text
    return int(s[:j]), s[j:]


def parse_mem_size_kb(text: str) -> int | None:
    """xl's parse_mem_size_kb(): a number with an optional b/k/m/g/t suffix, MiB by default."""
    digits = ""
    i = 0
    if text[:1] in "+-":
        digits, i = text[0], 1
    while i < len(text) and text[i].isdigit():
        digits += text[i]
        i += 1
    suffix = text[i:]
    if len(suffix) > 1 or digits in ("", "+", "-"):
        return None
    n = int(digits)
    shifts = {"t": 30, "g": 20, "": 10, "m": 10, "k": 0}
    s = suffix.lower()
    if s == "b":
        return n >> 10
    if s not in shifts:
        return None
    return n << shifts[s]
