"""The step runner of every action pipeline, with upstream's semantics (spec §1.8).

Steps run in order. A failing step logs what went wrong, runs its `on_failure` steps
(best effort) and ends the action with its failure info, unless it is `no_fail`, in
which case the pipeline goes on. Each step logs the stock driver's line, so operators'
greps keep working: `Successfully execute <kind> driver operation: <name>.` or
`Failed to execute <kind> driver operation: <name>.`
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from adapter.vmm.ports import Logger
from adapter.vmm.scripts import error_block, log_lines
from onexen.runtime.errors import InvalidArgument, OnexenError

Kind = Literal["virtualization", "network", "transfer manager"]

# stderr lines forwarded as LOG lines for one failure: the end of stderr holds the error.
MAX_STDERR_LOG_LINES = 20


class StepFailed(Exception):
    """A step failed; `info` is what the FAILURE reply says (one line, for a user)."""

    def __init__(self, info: str) -> None:
        super().__init__(info)
        self.info = info


@dataclass(frozen=True)
class Step:
    name: str
    kind: Kind
    run: Callable[[], Awaitable[None]]
    on_failure: tuple[Step, ...] = ()
    no_fail: bool = False


def error_info(exc: OnexenError) -> str:
    """The one line a user reads in the VM's ERROR: the service's message, with the host's
    own error text when the service's message does not carry it already."""
    text = exc.message or exc.reason
    if isinstance(exc, InvalidArgument) and len(exc.violations) > 1:
        text = "; ".join(f"{v.field}: {v.description}" for v in exc.violations)
    stderr = exc.metadata.get("stderr", "")
    extra = error_block(stderr) or _last_line(stderr)
    if extra and extra not in text:
        text = f"{text}: {extra}"
    return text


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def log_failure(log: Logger, name: str, exc: OnexenError) -> None:
    """What the host or service said, as LOG E lines (the command and its stderr tail)."""
    log("E", f"{name}: {exc.message or exc.reason}")
    command = exc.metadata.get("command")
    if command:
        code = exc.metadata.get("exit_code")
        log("E", f"{name}: command {command!r}" + (f" exited {code}" if code else ""))
    lines = list(log_lines(exc.metadata.get("stderr", "")))
    for _, line in lines[-MAX_STDERR_LOG_LINES:]:
        log("E", f"{name}: {line}")


def forward_stderr(log: Logger, stderr: str) -> None:
    for severity, line in log_lines(stderr):
        log(severity, line)


async def run_steps(steps: Iterable[Step], log: Logger) -> str | None:
    """Run `steps`; None when the action succeeded, else the failure info."""
    for step in steps:
        info = await _run_one(step, log)
        if info is None:
            continue
        if step.on_failure:
            await _run_fallbacks(step.on_failure, log)
        if not step.no_fail:
            return info
    return None


async def _run_one(step: Step, log: Logger) -> str | None:
    try:
        await step.run()
    except StepFailed as exc:
        info = exc.info
    except OnexenError as exc:
        log_failure(log, step.name, exc)
        info = error_info(exc)
    else:
        log("I", f"Successfully execute {step.kind} driver operation: {step.name}.")
        return None
    log("E", f"Failed to execute {step.kind} driver operation: {step.name}.")
    return info


async def _run_fallbacks(steps: Sequence[Step], log: Logger) -> None:
    for step in steps:
        # Each fallback is best effort: one failing must not keep the others from running.
        await _run_one(step, log)
