"""The pipes to oned / onemonitord: whole lines out, one write each; lines in, bounded.

oned 4.x/5.12 reads driver output one character at a time with a 25 ms timeout per
character and reloads the driver when a line stalls mid-way (spec §1.1): every line
goes out in a single write(2), trailing newline included, and writers are serialised
by a lock so two actions never interleave their bytes.

The process keeps the protocol pipe to itself: `claim_stdio` moves the original
stdout to a private descriptor and points fd 1 (and a closed fd 2: oned closes it)
at /dev/null, so a stray print or a C library's message can never corrupt the protocol.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

# A driver message is the base64 of a VM's XML; a few MiB is already an enormous VM.
MAX_LINE_BYTES = 64 * 1024 * 1024
_READ_CHUNK = 64 * 1024


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters turned into single spaces."""
    cleaned = "".join(c if c.isprintable() or c == " " else " " for c in text)
    return " ".join(cleaned.split())


class LineWriter:
    """Writes protocol lines to a file descriptor: one write(2) per line, under a lock."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self.closed = False

    def write_line(self, line: str) -> None:
        data = (one_line(line) + "\n").encode("utf-8", errors="replace")
        with self._lock:
            if self.closed:
                return
            view = memoryview(data)
            try:
                # A blocking pipe takes it whole; the loop only covers a signal interrupting it.
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
            except BrokenPipeError:
                # The reader is gone (oned stopped): nothing left to tell anyone.
                self.closed = True


@dataclass(frozen=True)
class Stdio:
    """The protocol pipes once claimed: read requests from `input_fd`, write to `output_fd`."""

    input_fd: int
    output_fd: int


def claim_stdio() -> Stdio:
    """Keep stdin/stdout for the protocol and send everything else to /dev/null."""
    # oned closes fd 2 before exec, so the lowest free descriptor may be 2: opening
    # /dev/null first makes it stderr, and nothing opened later can take its place.
    devnull = os.open(os.devnull, os.O_RDWR)
    if devnull != 2 and not _is_open(2):
        os.dup2(devnull, 2)
    output_fd = os.dup(1)
    os.dup2(devnull, 1)
    if devnull > 2:
        os.close(devnull)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    return Stdio(input_fd=0, output_fd=output_fd)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


class OversizedLine:
    """A line longer than the reader accepts (its bytes were dropped)."""

    def __init__(self, size: int) -> None:
        self.size = size


async def read_lines(fd: int, max_bytes: int = MAX_LINE_BYTES) -> AsyncIterator[bytes | OversizedLine]:
    """The lines arriving on `fd` (without their newline) until end of file.

    A pipe is read through the event loop; anything else (a file, a terminal) falls back
    to a thread, so the drivers also run with input redirected from a file.
    """
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    stop = await _feed(fd, queue, loop)
    pending = bytearray()
    dropping = 0
    try:
        while True:
            chunk = await queue.get()
            if chunk is None:
                break
            start = 0
            while True:
                newline = chunk.find(b"\n", start)
                if newline < 0:
                    rest = chunk[start:]
                    if dropping or len(pending) + len(rest) > max_bytes:
                        dropping += len(pending) + len(rest)
                        pending.clear()
                    else:
                        pending += rest
                    break
                piece = chunk[start:newline]
                start = newline + 1
                if dropping or len(pending) + len(piece) > max_bytes:
                    yield OversizedLine(dropping + len(pending) + len(piece))
                    dropping = 0
                    pending.clear()
                    continue
                pending += piece
                line = bytes(pending)
                pending.clear()
                yield line
        if dropping:
            yield OversizedLine(dropping + len(pending))
        elif pending:
            yield bytes(pending)
    finally:
        stop()


async def _feed(
    fd: int, queue: asyncio.Queue[bytes | None], loop: asyncio.AbstractEventLoop
) -> Callable[[], None]:
    class _Protocol(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            queue.put_nowait(data)

        def eof_received(self) -> bool | None:
            queue.put_nowait(None)
            return None

        def connection_lost(self, exc: Exception | None) -> None:
            queue.put_nowait(None)

    pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
    try:
        transport, _ = await loop.connect_read_pipe(_Protocol, pipe)
    except ValueError:
        pipe.close()
        return _thread_feed(fd, queue, loop)
    return transport.close


def _thread_feed(
    fd: int, queue: asyncio.Queue[bytes | None], loop: asyncio.AbstractEventLoop
) -> Callable[[], None]:
    def pump() -> None:
        while True:
            try:
                data = os.read(fd, _READ_CHUNK)
            except OSError:
                data = b""
            loop.call_soon_threadsafe(queue.put_nowait, data or None)
            if not data:
                return

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    return _nothing


def _nothing() -> None:
    return None
