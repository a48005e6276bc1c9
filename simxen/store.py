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

import fcntl
import os
import time

from simxen import fastjson
from simxen.facts import HostFacts, load_facts
from simxen.model import HostState

# Every simulated xl call imports this module: the lock and the transaction are small classes
# rather than @contextmanager generators because contextlib (with collections and functools)
# costs each call several ms of CPU; for the same reason typing is only for the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

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
        try:  # noqa: SIM105  (not contextlib.suppress: importing contextlib costs every call)
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def state_dir_from_env() -> str:
    value = os.environ.get(ENV_STATE_DIR)
    if not value:
        raise SystemExit(f"simxen: {ENV_STATE_DIR} is not set (which simulated host is this?)")
    return value


class StateLock:
    """flock(2) on the state directory's lock file, held for the ``with`` block."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        fd, self._fd = self._fd, -1
        os.close(fd)  # closing the only descriptor of the open file releases the flock


class Transaction:
    """Lock, load, advance to ``now``, hand out the state; on a clean exit save it if it changed."""

    def __init__(self, store: Store, now: float | None, facts: HostFacts) -> None:
        self.store = store
        self.now = now
        self.facts = facts
        self.lock = store.locked()
        self.before = ""
        self.advanced: str | None = None
        self.state: HostState | None = None

    def __enter__(self) -> HostState:
        self.lock.__enter__()
        try:
            now = time.time() if self.now is None else self.now
            state, self.before = self.store._read(self.facts, now)
            if not state.advance(now, self.facts) and self.before:
                self.advanced = fastjson.dumps(state.to_dict())
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise
        self.state = state
        return state

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None and self.state is not None:
                after = fastjson.dumps(self.state.to_dict())
                # Not when only time passed (the next reader advances the stored state the same
                # way): read-only commands then never write, which is most of them, and the
                # rename is a good part of what a short command costs.  The comparison with
                # ``before`` works because the file was written by this same dumps(to_dict()).
                if after != self.advanced and after != self.before:
                    atomic_write(self.store.state_path, after)
        finally:
            self.lock.__exit__(None, None, None)


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
                atomic_write(self.state_path, fastjson.dumps(state.to_dict()))

    def locked(self) -> StateLock:
        """``with store.locked():`` serialises a read-modify-write of the state."""
        if not os.path.isdir(self.dir):
            os.makedirs(self.dir, exist_ok=True)
        return StateLock(self._file(LOCK_FILE))

    def _read(self, facts: HostFacts, now: float) -> tuple[HostState, str]:
        try:
            with open(self.state_path) as f:
                text = f.read()
        except FileNotFoundError:
            return HostState.boot(facts, now), ""
        return HostState.from_dict(fastjson.loads(text)), text

    def read_raw(self) -> dict[str, Any] | None:
        """The state document as stored (call with the lock held)."""
        try:
            with open(self.state_path) as f:
                data = fastjson.loads(f.read())
        except FileNotFoundError:
            return None
        return data if isinstance(data, dict) else None

    def has_faults(self) -> bool:
        """Whether any fault rule is stored (a hint: take them with the lock held)."""
        # No lock: state.json is only ever replaced whole, so this reads one complete version.
        data = self.read_raw()
        return bool(data and data.get("faults"))

    def write_raw(self, data: dict[str, Any]) -> None:
        atomic_write(self.state_path, fastjson.dumps(data))

    def transaction(self, now: float | None = None, facts: HostFacts | None = None) -> Transaction:
        """``with store.transaction() as state:`` lock, load, advance to ``now``, then save the
        state if it changed (not when the block raised)."""
        return Transaction(self, now, facts or self.facts())

    def snapshot(self, now: float | None = None, facts: HostFacts | None = None) -> HostState:
        with self.transaction(now, facts) as state:
            return state

    def log_call(self, argv: list[str], rc: int, started: float) -> None:
        line = fastjson.dumps({"t": started, "argv": argv, "rc": rc, "pid": os.getpid()})
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
        return [fastjson.loads(line) for line in lines if line.strip()]
