"""The state directory of a simulated host: one JSON document under an fcntl lock.

Layout of ``state_dir``::

    host.json    HostFacts (written once when the host is made)
    state.json   domains, domid counter, injected faults (rewritten atomically)
    lock         flock(2) target serialising every read-modify-write
    calls.log    one JSON line per simulated command (argv, rc), for tests and debugging

Every command holds the lock only while it reads, advances and writes the state, never while
it sleeps (``shutdown -w``, ``xentop -d``, a migration in flight), so concurrent ``xl`` calls on
one host interleave safely.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from typing import Any

from simxen.facts import HostFacts, load_facts
from simxen.model import HostState

STATE_FILE = "state.json"
LOCK_FILE = "lock"
CALLS_LOG = "calls.log"
CALLS_LOG_MAX = 8 << 20
ENV_STATE_DIR = "SIMXEN_STATE"


def atomic_write(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` so that readers see the old or the new content, never a mix.

    No fsync: the state only has to survive the processes using it, not a power cut.
    """
    # (tempfile or pathlib would do, but importing them costs every xl call ~20 ms)
    path = os.fspath(path)
    head, name = os.path.split(path)
    tmp = os.path.join(head, f".{name}.{os.getpid()}.{time.monotonic_ns()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def state_dir_from_env() -> str:
    value = os.environ.get(ENV_STATE_DIR)
    if not value:
        raise SystemExit(f"simxen: {ENV_STATE_DIR} is not set (which simulated host is this?)")
    return value


class Store:
    """Access to one host's state directory."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.dir = os.fspath(state_dir)

    @property
    def state_path(self) -> str:
        return os.path.join(self.dir, STATE_FILE)

    def _file(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def facts(self) -> HostFacts:
        return load_facts(self.dir)

    def initialise(self, facts: HostFacts, now: float | None = None) -> None:
        """Create the state directory with only Domain-0, unless it already exists."""
        from simxen.facts import save_facts

        os.makedirs(self.dir, exist_ok=True)
        with self.locked():
            if not os.path.exists(self._file("host.json")):
                save_facts(self.dir, facts)
            if not os.path.exists(self.state_path):
                state = HostState.boot(facts, time.time() if now is None else now)
                atomic_write(self.state_path, json.dumps(state.to_dict()))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        os.makedirs(self.dir, exist_ok=True)
        with open(self._file(LOCK_FILE), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self, facts: HostFacts, now: float) -> tuple[HostState, str]:
        try:
            with open(self.state_path) as f:
                text = f.read()
        except FileNotFoundError:
            return HostState.boot(facts, now), ""
        return HostState.from_dict(json.loads(text)), text

    def read_raw(self) -> dict[str, Any] | None:
        """The state document as stored (call with the lock held)."""
        try:
            with open(self.state_path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return None
        return data if isinstance(data, dict) else None

    def write_raw(self, data: dict[str, Any]) -> None:
        atomic_write(self.state_path, json.dumps(data))

    @contextlib.contextmanager
    def transaction(self, now: float | None = None, facts: HostFacts | None = None) -> Iterator[HostState]:
        """Lock, load, advance to ``now``, yield the state, then save it if it changed."""
        facts = facts or self.facts()
        with self.locked():
            state, before = self._read(facts, time.time() if now is None else now)
            state.advance(time.time() if now is None else now, facts)
            yield state
            after = json.dumps(state.to_dict())
            if after != before:  # the file was written by this same json.dumps(to_dict())
                atomic_write(self.state_path, after)

    def snapshot(self, now: float | None = None, facts: HostFacts | None = None) -> HostState:
        with self.transaction(now, facts) as state:
            return state

    def log_call(self, argv: list[str], rc: int, started: float) -> None:
        line = json.dumps({"t": started, "argv": argv, "rc": rc, "pid": os.getpid()})
        path = self._file(CALLS_LOG)
        # O_APPEND writes of one short line are atomic enough for a log shared by processes.
        with open(path, "a") as f:
            f.write(line + "\n")
            if f.tell() > CALLS_LOG_MAX:  # a demo polled for days must not fill the disk
                os.replace(path, path + ".1")

    def calls(self) -> list[dict[str, Any]]:
        try:
            with open(self._file(CALLS_LOG)) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]
