"""The simulated ``xl``: global options, verb dispatch, injected faults, call log.

Started for every command a test or the executor runs on a simulated host, so a call must cost
little more than the interpreter's start: it imports only simxen's own small modules and the
few standard modules the interpreter has already loaded or that are plain C (no typing,
dataclasses, json, contextlib, importlib: see simxen.records, simxen.fastjson, and
tests/simxen/test_call_cost.py, which keeps it so).  The host is chosen by ``SIMXEN_STATE``
(baked into each host's ``bin/xl`` wrapper).
"""

from __future__ import annotations

import sys
import time

from simxen.errors import XlParserUnavailable
from simxen.store import Store, state_dir_from_env
from simxen.xl_help import FULL_USAGE, VERB_HELP
from simxen.xlcommon import Ctx, XlExit, help_text, run_as_command

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Verb = Callable[[Ctx, list[str]], int]

REAL_XL_ARGV0 = "/usr/lib/xen-4.17/bin/xl"  # Debian's /usr/sbin/xl wrapper execs this path

# verb -> module.function; a call imports only the module it needs (xl starts for every command).
VERBS: dict[str, str] = {
    "info": "xlverbs.cmd_info",
    "list": "xlverbs.cmd_list",
    "vm-list": "xlverbs.cmd_vm_list",
    "uptime": "xlverbs.cmd_uptime",
    "vcpu-list": "xlverbs.cmd_vcpu_list",
    "domid": "xlverbs.cmd_domid",
    "domname": "xlverbs.cmd_domname",
    "create": "xlverbs.cmd_create",
    "destroy": "xlverbs.cmd_destroy",
    "shutdown": "xlverbs.cmd_shutdown",
    "reboot": "xlverbs.cmd_reboot",
    "pause": "xlverbs.cmd_pause",
    "unpause": "xlverbs.cmd_unpause",
    "sched-credit": "xlverbs.cmd_sched_credit",
    "sched-credit2": "xlverbs.cmd_sched_credit2",
    "mem-set": "xlverbs.cmd_mem_set",
    "mem-max": "xlverbs.cmd_mem_max",
    "vcpu-set": "xlverbs.cmd_vcpu_set",
    "block-attach": "xldevices.cmd_block_attach",
    "block-list": "xldevices.cmd_block_list",
    "block-detach": "xldevices.cmd_block_detach",
    "network-attach": "xldevices.cmd_network_attach",
    "network-list": "xldevices.cmd_network_list",
    "network-detach": "xldevices.cmd_network_detach",
    "save": "xlsave.cmd_save",
    "restore": "xlsave.cmd_restore",
    "migrate": "xlsave.cmd_migrate",
    "migrate-receive": "xlsave.cmd_migrate_receive",
}


def verb_impl(verb: str) -> Verb | None:
    target = VERBS.get(verb)
    if target is None:
        return None
    module, func = target.split(".")
    name = f"simxen.{module}"
    __import__(name)  # importlib.import_module would import importlib itself
    impl: Verb = getattr(sys.modules[name], func)
    return impl


# Verbs whose cmd_spec has can_dryrun set in xl 4.17 (the others refuse a global -N).
DRYRUN_VERBS = {
    "create", "config-update", "cd-insert", "cd-eject", "vcpu-pin", "network-attach", "block-attach",
    "vtpm-attach", "vkb-attach", "vdispl-attach", "vsnd-attach", "cpupool-create",
}  # fmt: skip


def parse_global(ctx: Ctx, argv: list[str]) -> list[str]:
    """``getopt(argc, argv, "+vftNT")``: options up to the verb, with glibc's messages."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return argv[i + 1 :]
        if not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("--"):
            ctx.err.write(f"{REAL_XL_ARGV0}: unrecognized option '{arg}'\nunknown global option\n")
            raise XlExit(1)
        for ch in arg[1:]:
            if ch == "v":
                ctx.verbose += 1
            elif ch == "N":
                ctx.dryrun = True
            elif ch == "t":
                ctx.progress_cr = True
            elif ch in "fT":
                pass  # force, timestamps: nothing the simulation does depends on them
            else:
                ctx.err.write(f"{REAL_XL_ARGV0}: invalid option -- '{ch}'\nunknown global option\n")
                raise XlExit(1)
        i += 1
    return argv[i:]


def apply_fault(ctx: Ctx, verb: str, args: list[str]) -> None:
    if not ctx.store.has_faults():
        return  # the usual case, decided without importing inject
    from simxen.inject import take_fault

    fault = take_fault(ctx.store, verb, args)
    if fault is None:
        return
    if fault.mode == "hang":
        while True:  # until the caller's timeout kills us, like an xl stuck on xenstored
            time.sleep(3600)
    if fault.mode == "slow":
        time.sleep(fault.delay)
        return
    ctx.out.write(fault.stdout)
    ctx.err.write(fault.stderr if not fault.stderr or fault.stderr.endswith("\n") else fault.stderr + "\n")
    raise XlExit(fault.rc)


def run(ctx: Ctx, argv: list[str]) -> int:
    rest = parse_global(ctx, argv)
    if not rest:
        ctx.out.write(FULL_USAGE)
        return 1
    verb, args = rest[0], rest[1:]
    if verb == "help":
        ctx.out.write(help_text(args[0]) if args else FULL_USAGE)
        return 0
    if verb not in VERB_HELP:
        ctx.err.write("command not implemented\n")
        return 1
    if ctx.dryrun and verb not in DRYRUN_VERBS:
        ctx.err.write("command does not implement -N (dryrun) option\n")
        return 1
    impl = verb_impl(verb)
    if impl is None:
        ctx.err.write(f"simxen: 'xl {verb}' is not simulated\n")
        return 1
    apply_fault(ctx, verb, args)
    return impl(ctx, args)


def main(argv: list[str] | None = None, state_dir: str | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    store = Store(state_dir or state_dir_from_env())
    ctx = Ctx(store=store, facts=store.facts(), out=sys.stdout, err=sys.stderr)
    started = time.time()
    try:
        rc = run(ctx, argv[1:])
    except XlExit as e:
        rc = e.rc
    except XlParserUnavailable as e:
        ctx.err.write(f"simxen: {e}\n")
        rc = 1
    except BrokenPipeError:
        rc = 1
    try:
        ctx.out.flush()
        ctx.err.flush()
    except BrokenPipeError:
        pass
    store.log_call(["xl", *argv[1:]], rc, started)
    return rc


def command() -> None:
    """``bin/xl``."""
    run_as_command(main)


if __name__ == "__main__":
    raise SystemExit(main())
