"""The VM_MAD driver loop: read oned's lines, run actions within the limits, answer each once.

Every action request gets exactly one reply line, whatever happens: a request that
cannot be read gets its FAILURE at once (or a `LOG E` when no VM id can be read), an
unexpected error in the adapter becomes a FAILURE too. Only DRIVER_CANCEL silences an
action, as upstream (spec §1.7). FINALIZE and end of input stop reading, drop what has
not started, and return once running actions are answered.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable

from adapter.common.lineio import LineWriter, OversizedLine
from adapter.common.scheduler import Job, Scheduler
from adapter.vmm import protocol
from adapter.vmm.actions import UNSUPPORTED, ActionRun, Ports, Reply, Settings
from adapter.vmm.message import DriverMessage, MessageError, read_message
from adapter.vmm.protocol import Control, Malformed, Request
from onexen.runtime.logging import get_logger

_log = get_logger("adapter.vmm")


class VmmDriver:
    def __init__(
        self,
        ports: Ports,
        settings: Settings,
        out: LineWriter,
        *,
        concurrency: int = 15,
        parallel_per_host: bool = False,
    ) -> None:
        self.ports = ports
        self.settings = settings
        self.out = out
        self.scheduler = Scheduler(concurrency, parallel_per_host=parallel_per_host)
        self.replies = 0

    async def serve(self, lines: AsyncIterable[bytes | OversizedLine]) -> None:
        """Until FINALIZE or end of input; then wait for the running actions."""
        async for raw in lines:
            if isinstance(raw, OversizedLine):
                self._log_line(
                    "E", None, f"ignored an input line of {raw.size} bytes: too long to be a request"
                )
                continue
            if not self.handle(raw.decode("utf-8", errors="replace")):
                break
        for job in self.scheduler.drop_queued():
            _log.warning("dropped", vm_id=job.key, host=job.host, why="the driver is finishing")
        await self.scheduler.wait_idle()
        _log.info("finished", replies=self.replies)

    def handle(self, line: str) -> bool:
        """Act on one input line; False when it says to stop (FINALIZE)."""
        parsed = protocol.parse_line(line)
        if parsed is None:
            return True
        if isinstance(parsed, Control):
            if parsed.command == protocol.INIT:
                self.out.write_line("INIT SUCCESS - -")
            elif parsed.command == protocol.FINALIZE:
                _log.info("finalize")
                return False
            elif parsed.vm_id is not None:
                self._cancel(parsed.vm_id)
            return True
        if isinstance(parsed, Malformed):
            self._malformed(parsed)
            return True
        self._request(parsed)
        return True

    # ------------------------------------------------------------------ requests

    def _request(self, request: Request) -> None:
        if request.action not in protocol.SUPPORTED:
            why = UNSUPPORTED.get(request.action) or (
                f"{request.action} is not supported by the onexen Xen driver (one_vmm_grpc)"
            )
            self._reply(request.action, request.vm_id, Reply.failure(why))
            return
        try:
            message = read_message(protocol.decode_payload(request.payload))
        except (ValueError, MessageError) as exc:
            self._reply(
                request.action, request.vm_id, Reply.failure(f"Cannot read the driver message: {exc}")
            )
            return
        self.scheduler.submit(
            Job(
                key=request.vm_id,
                host=message.host,
                run=lambda: self._execute(request, message),
                on_cancel=lambda: self._cancelled(request),
            )
        )

    async def _execute(self, request: Request, message: DriverMessage) -> None:
        started = time.monotonic()
        vm_id = request.vm_id

        def log(severity: str, text: str) -> None:
            self._log_line(severity, vm_id, text)

        run = ActionRun(request.action, vm_id, message, self.ports, self.settings, log)
        try:
            reply = await run.run()
        except Exception as exc:  # a bug must still answer oned, which would wait forever
            _log.exception("action_bug", action=request.action, vm_id=vm_id)
            reply = Reply.failure(f"internal error in one_vmm_grpc ({type(exc).__name__}); see its log file")
        self._reply(request.action, vm_id, reply)
        _log.info(
            "action",
            action=request.action,
            vm_id=vm_id,
            host=message.host,
            result=reply.result,
            info=reply.info,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )

    def _cancel(self, vm_id: int) -> None:
        if not self.scheduler.cancel(vm_id):
            _log.info("cancel_nothing", vm_id=vm_id)

    def _cancelled(self, request: Request) -> None:
        _log.info("cancelled", action=request.action, vm_id=request.vm_id)
        self._log_line("I", request.vm_id, f"Driver command for {request.vm_id} cancelled")

    def _malformed(self, bad: Malformed) -> None:
        _log.warning("malformed", why=bad.why)
        if bad.action is not None and bad.vm_id is not None:
            self._reply(bad.action, bad.vm_id, Reply.failure(f"Cannot read the request: {bad.why}"))
        else:
            self._log_line("E", bad.vm_id, f"one_vmm_grpc: {bad.why}")

    # ------------------------------------------------------------------ output

    def _reply(self, action: str, vm_id: int, reply: Reply) -> None:
        self.replies += 1
        self.out.write_line(protocol.reply_line(action, reply.result, vm_id, reply.info))

    def _log_line(self, severity: str, vm_id: int | None, text: str) -> None:
        self.out.write_line(protocol.log_line(protocol.severity(severity), vm_id, text))
