"""A simulated host's fork server: xl and xentop calls without an interpreter start each.

A fresh ``python -I -S`` costs a simulated call ~16 ms of CPU before simxen runs at all, several
times what a real xl (a small C program) costs.  So each host runs one server (started by
SimHost, a child of it) that has simxen imported and listens on ``bin/.zygote.sock``.  The
host's ``bin/xl`` and ``bin/xentop`` are a small C client (shim/zygote_client.c) that sends the
call's argv, environment, cwd, umask and its stdin/stdout/stderr (SCM_RIGHTS) and waits; the
server forks a child that takes those fds as 0/1/2 and runs ``simxen.xl.command()`` (or
xentop's) exactly as the Python wrapper would, then sends the child's wait status back.  The
client is the host's ``bin/sudo`` too: ``sudo -n xl ...`` makes the same call without starting
the sudo script's shell (any other use of sudo runs the script, ``bin/.sudo.sh``).  The client
is linked statically when it can be (no dynamic loader at each call), and the server runs a few
calls itself before it forks any (see ``_warm_up``).

Most ``xl`` calls do not fork at all: the server keeps a few workers (forked children that
serve one call after another, see ``_Worker``).  A forked child pays ~3 ms of CPU per call for
the pages it copies on write and frees at exit (CPython writes a reference count on every
object it touches), five times what the call's own work costs; a worker pays that once.  A
worker takes the call's fds, cwd, umask, environment and argv as a forked child would, gives
the fds back (``/dev/null`` in their place) before it answers, and retires rather than carry
anything into the next call: after a call that imported threading or subprocess (save,
restore, migrate), set a signal handler, or could not flush its output, and after
``_WORKER_CALLS`` calls.  ``xentop`` (it sets signal handlers) and the calls that find every
worker busy are forked as before.  ``running_calls()`` tells calls from idle workers.

The call stays the client's: when the client dies (``timeout``, a closed session, ``stop()``)
the connection closes and the server kills the child or the worker.  Children also die with
the server (PR_SET_PDEATHSIG), and the server exits when its SimHost lets go of it (the control
pipe's write end, kept by the SimHost, closes).  Without gcc or a server, the client execs the
Python wrapper (``bin/.xl.py-wrapper``): slower, same behaviour.
"""

from __future__ import annotations

# The server imports this module: only what it needs at module level.  subprocess and tempfile
# would bring threading and random, whose at-fork handlers (and the pages they write) cost every
# child ~1 ms; pathlib and the others only memory, that each fork copies the page tables of.
import contextlib
import ctypes
import gc
import os
import select
import signal
import socket
import struct
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType

CLIENT_SOURCE = os.path.join(os.path.dirname(os.path.realpath(__file__)), "shim", "zygote_client.c")
SOCKET_NAME = ".zygote.sock"
TOOLS = ("xl", "xentop")
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
# A worker's name (/proc/PID/comm) while it waits for a call; while it runs one it is named
# after the tool, as a forked call's process is named after the interpreter.
IDLE_WORKER_NAME = b"simxen-idle"
_WORKERS = 16  # at most this many per host (sshd's MaxSessions in simxen.host); more calls fork
_WORKER_CALLS = 2000  # then a worker retires: a slow leak in a verb stays bounded


# The simulated sudo script, when the client stands in for it as bin/sudo (see zygote_client.c).
SUDO_SCRIPT_NAME = ".sudo.sh"


def fallback_name(tool: str) -> str:
    """The Python wrapper the client execs when there is no server (see zygote_client.c)."""
    return f".{tool}.py-wrapper"


# Static first: every xl, xentop and sudo call starts the client, and a static one skips the
# dynamic loader (~0.2 ms of CPU each); without libc.a (no static glibc), a dynamic one.
_BUILDS = (("-O2", "-Wall", "-Wextra", "-static"), ("-O2", "-Wall", "-Wextra"))


def build_client(*, directory: Path | None = None) -> Path:
    """Compile the client unless this version is already built; safe to race (as build_shim)."""
    import hashlib
    import shutil
    import subprocess
    import tempfile

    from simxen.errors import XlParserUnavailable
    from simxen.xlparse import cache_dir

    with open(CLIENT_SOURCE, "rb") as f:
        source = f.read()
    target_dir = directory or cache_dir()
    digest = hashlib.sha256(source + repr(_BUILDS).encode()).hexdigest()[:16]
    target = target_dir / f"simxen-xl-client-{digest}"
    if target.exists():
        return target
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise XlParserUnavailable("no C compiler to build the xl client")
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".simxen-xl-client-", dir=target_dir)
    os.close(fd)
    try:
        for flags in _BUILDS:
            proc = subprocess.run([gcc, *flags, "-o", tmp, CLIENT_SOURCE], capture_output=True, text=True)
            if proc.returncode == 0:
                break
        else:
            raise XlParserUnavailable(f"building the xl client failed:\n{proc.stderr}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return target


def answering(bin_dir: Path) -> bool:
    """True when a server accepts calls on ``bin_dir``'s socket."""
    dirfd = os.open(bin_dir, os.O_PATH | os.O_DIRECTORY)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(f"/proc/self/fd/{dirfd}/{SOCKET_NAME}")
            return True
    except OSError:
        return False
    finally:
        os.close(dirfd)


def children(server_pid: int) -> list[tuple[int, bool]]:
    """The server's live children, each with whether it is an idle worker (the others are
    running a call: forked calls and busy workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{entry}/comm", "rb") as f:
                name = f.read().strip()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[1]) == server_pid and fields[0] != b"Z":
            found.append((int(entry), name == IDLE_WORKER_NAME))
    return found


def running_calls(server_pid: int) -> list[int]:
    """The calls running under the server, for tests that check a call was ended."""
    return [pid for pid, idle in children(server_pid) if not idle]


# ----------------------------------------------------------------------------- the server


def _preimport() -> None:
    """What the calls import, so that no child pays for it (nor for compiling).

    Not simxen.xlsave (save, restore, migrate: calls that take seconds anyway): it imports
    subprocess and random, and with them threading, whose at-fork handlers would cost every
    child ~1 ms of CPU.
    """
    for name in (
        "simxen.xl", "simxen.xentop", "simxen.xlverbs", "simxen.xldevices", "simxen.inject",
        "simxen.render", "simxen.xl_help",
    ):  # fmt: skip
        __import__(name)


class _Worker:
    """A child of the server that runs calls one after another (see the module's docstring)."""

    __slots__ = ("pid", "sock")

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock  # the server's end; a call goes out on it, its answer comes back


# A worker's answer: the call's wait status, as a forked call's waitpid() would give it, and
# whether the worker leaves after it.
_ANSWER = struct.Struct("=ii")
# Handlers a call may set (xentop does): a worker that finds one changed retires.
_WATCHED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM, signal.SIGPIPE)


class _Server:
    def __init__(self, bin_dir: str, control_fd: int, baked_env: dict[str, str]) -> None:
        self.baked_env = baked_env
        self.cwd = os.getcwd()
        self.control_fd = control_fd
        self.dirfd = os.open(bin_dir, os.O_RDONLY | os.O_DIRECTORY)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        tmp = f".zygote.{os.getpid()}.sock"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=self.dirfd)
        self.listener.bind(f"/proc/self/fd/{self.dirfd}/{tmp}")
        self.listener.listen(256)
        os.replace(tmp, SOCKET_NAME, src_dir_fd=self.dirfd, dst_dir_fd=self.dirfd)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        self.poller = select.poll()
        # A running call (a forked child, or a worker) -> its client's connection, and back.
        self.by_pid: dict[int, socket.socket] = {}
        self.by_fd: dict[int, int] = {}  # connection fd -> pid
        self.workers: dict[int, _Worker] = {}  # by the fd of its socket
        self.worker_pids: dict[int, _Worker] = {}
        self.idle: list[_Worker] = []
        self.prctl = ctypes.CDLL(None, use_errno=True).prctl

    def serve(self) -> None:
        poller = self.poller
        poller.register(self.listener, select.POLLIN)
        poller.register(self.control_fd, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            for fd, _ in events:
                if fd == self.control_fd:
                    self._shutdown()
                elif fd == self.wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 4096)
                    self._reap()
                elif fd == self.listener.fileno():
                    self._accept()
                elif fd in self.workers:
                    self._answered(self.workers[fd])
                elif fd in self.by_fd:
                    # The client sends nothing after its request: readable means it is gone.
                    pid = self.by_fd[fd]
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    poller.unregister(fd)
                    worker = self.worker_pids.get(pid)
                    if worker is not None:
                        self._forget(worker)  # its end is reaped like a forked call's
            self._reap()

    def _shutdown(self) -> None:
        for pid in [*self.by_pid, *self.worker_pids]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            st = os.stat(SOCKET_NAME, dir_fd=self.dirfd)
            if st.st_ino == os.fstat(self.listener.fileno()).st_ino:
                os.unlink(SOCKET_NAME, dir_fd=self.dirfd)
        os._exit(0)

    # ----- calls ending
    def _finish(self, pid: int, status: int) -> None:
        """Tell the call's client how it ended, and let go of its connection."""
        conn = self.by_pid.pop(pid, None)
        if conn is None:
            return
        fd = conn.fileno()
        if self.by_fd.pop(fd, None) is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.poller.unregister(fd)
        with contextlib.suppress(OSError):
            conn.sendall(struct.pack("=i", status))
        conn.close()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.worker_pids.get(pid)
            if worker is not None:
                # A worker that answered and left: its answer may still wait in its socket.
                answer = self._read_answer(worker, block=False)
                self._forget(worker)
                if answer is not None:
                    status = answer[0]
            self._finish(pid, status)

    def _read_answer(self, worker: _Worker, *, block: bool) -> tuple[int, int] | None:
        try:
            data = worker.sock.recv(_ANSWER.size, 0 if block else socket.MSG_DONTWAIT)
        except OSError:
            return None
        return _ANSWER.unpack(data) if len(data) == _ANSWER.size else None

    def _answered(self, worker: _Worker) -> None:
        answer = self._read_answer(worker, block=True)
        if answer is None:
            # Gone without answering (killed, or died): the call's end is its wait status.
            self._forget(worker)
            return
        status, retiring = answer
        self._finish(worker.pid, status)
        if retiring:
            self._forget(worker)
        else:
            self.idle.append(worker)

    def _forget(self, worker: _Worker) -> None:
        """The worker serves no more calls (left, killed, or dead); its process is reaped."""
        fd = worker.sock.fileno()
        if self.workers.pop(fd, None) is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.poller.unregister(fd)
        self.worker_pids.pop(worker.pid, None)
        with contextlib.suppress(ValueError):
            self.idle.remove(worker)
        worker.sock.close()

    # ----- calls starting
    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        try:
            conn.settimeout(5.0)  # a client sends its whole request at once
            fds, body = self._receive(conn)
        except (OSError, ValueError):
            conn.close()
            return
        try:
            pid = self._to_a_worker(fds, body)
            if pid is None:
                pid = os.fork()
                if pid == 0:
                    self._child(conn, fds, body)
        except OSError:
            conn.close()
            return
        finally:
            for fd in fds:
                os.close(fd)
        self.by_pid[pid] = conn
        self.by_fd[conn.fileno()] = pid
        self.poller.register(conn, select.POLLIN)

    def _to_a_worker(self, fds: list[int], body: bytes) -> int | None:
        """Hand an xl call to an idle worker (a new one while there are fewer than _WORKERS);
        its pid, or None when the call is to be forked."""
        if not body.startswith(b"xl\0"):
            return None
        for _ in range(3):  # a worker that died idle is replaced; one that dies at once is not
            worker = self.idle.pop() if self.idle else self._new_worker()
            if worker is None:
                return None
            try:
                worker.sock.sendmsg(
                    [struct.pack("=I", len(body)), body],
                    [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"={len(fds)}i", *fds))],
                )
            except OSError:
                self._forget(worker)  # gone meanwhile: the next one
                continue
            return worker.pid
        return None

    def _new_worker(self) -> _Worker | None:
        if len(self.workers) >= _WORKERS:
            return None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            return None
        if pid == 0:
            ours.close()
            self._work(theirs)
        theirs.close()
        worker = _Worker(pid, ours)
        self.workers[ours.fileno()] = worker
        self.worker_pids[pid] = worker
        self.poller.register(ours, select.POLLIN)
        return worker

    @staticmethod
    def _receive(conn: socket.socket) -> tuple[list[int], bytes]:
        fds: list[int] = []
        data, ancdata, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(3 * 4))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += struct.unpack(f"={len(payload) // 4}i", payload[: len(payload) - len(payload) % 4])
        try:
            if len(fds) != 3 or len(data) < 4:
                raise ValueError("bad request")
            (size,) = struct.unpack("=I", data[:4])
            chunks = [data[4:]]
            got = len(data) - 4
            while got < size:
                chunk = conn.recv(size - got)
                if not chunk:
                    raise ValueError("short request")
                chunks.append(chunk)
                got += len(chunk)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return fds, b"".join(chunks)

    # ----- in a child
    def _leave_server(self) -> None:
        """In a new child: nothing of the server's but the interpreter."""
        self.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for other in self.by_pid.values():
            other.close()
        for worker in self.workers.values():
            worker.sock.close()
        self.listener.close()
        for fd in (self.control_fd, self.wake_r, self.wake_w, self.dirfd):
            os.close(fd)

    def _become(self, fds: list[int], body: bytes) -> ModuleType:
        """Take the call's fds, cwd, umask, environment and argv; the tool's module."""
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        fields = [f.decode("utf-8", "surrogateescape") for f in body.split(b"\0")[:-1]]
        tool, cwd, umask, argc = fields[0], fields[1], int(fields[2], 8), int(fields[3])
        args, env = fields[4 : 4 + argc], fields[4 + argc :]
        try:
            os.chdir(cwd)
        except OSError:
            with contextlib.suppress(OSError):
                os.chdir(self.cwd)  # where a forked call stays: the server's (a worker moved)
        os.umask(umask)
        wanted = dict(item.partition("=")[::2] for item in env if "=" in item[1:])
        wanted.update(self.baked_env)  # as the wrapper's exports do
        # Only what differs: every putenv() costs, and the server's own environment is small.
        for key in [key for key in os.environ if key not in wanted]:
            del os.environ[key]
        for key, value in wanted.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        import time

        time.tzset()
        sys.argv = ["-c", *args]  # what `python -c CODE ARGS` shows
        return sys.modules["simxen.xentop" if tool == "xentop" else "simxen.xl"]

    def _child(self, conn: socket.socket, fds: list[int], body: bytes) -> None:
        """Become the call; never returns."""
        try:
            conn.close()
            self._leave_server()
            self._become(fds, body).command()
        except SystemExit as e:
            _flush_and_exit(_exit_code(e))
        except BaseException:
            import traceback

            traceback.print_exc()
            _flush_and_exit(1)
        _flush_and_exit(0)

    def _work(self, sock: socket.socket) -> None:
        """A worker's life: calls until it retires or the server goes; never returns."""
        try:
            self._leave_server()
            # Whatever else the server held when it forked us (the fds of the call that it is
            # about to hand us): a pipe held open here would never end for its reader.
            for name in os.listdir("/proc/self/fd"):
                if int(name) > 2 and int(name) != sock.fileno():
                    with contextlib.suppress(OSError):
                        os.close(int(name))
            handlers = [signal.getsignal(s) for s in _WATCHED_SIGNALS]
            null = os.open(os.devnull, os.O_RDWR)
            for served in range(1, _WORKER_CALLS + 1):
                self.prctl(_PR_SET_NAME, IDLE_WORKER_NAME, 0, 0, 0)
                try:
                    fds, body = self._receive(sock)
                except (OSError, ValueError):
                    os._exit(0)  # the server closed our socket
                self.prctl(_PR_SET_NAME, b"xl", 0, 0, 0)
                rc, flushed = self._call(fds, body)
                for target in (0, 1, 2):
                    os.dup2(null, target)  # the client's pipes end when the client does
                retire = (
                    not flushed
                    or served == _WORKER_CALLS
                    or "threading" in sys.modules
                    or [signal.getsignal(s) for s in _WATCHED_SIGNALS] != handlers
                )
                sock.sendall(_ANSWER.pack((rc & 0xFF) << 8, retire))
                if retire:
                    break
        except BaseException:
            os._exit(70)
        os._exit(0)

    def _call(self, fds: list[int], body: bytes) -> tuple[int, bool]:
        """Run one call as `command()` would, without its exit: (exit code, output flushed)."""
        try:
            rc = self._become(fds, body).main()
        except SystemExit as e:
            rc = _exit_code(e)
        except BaseException:
            import traceback

            traceback.print_exc()
            rc = 1
        flushed = True
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                rc, flushed = 120, False  # as run_as_command (unwritten output must not linger)
        return rc, flushed


def _exit_code(e: SystemExit) -> int:
    code = e.code
    if not isinstance(code, int | None):
        print(code, file=sys.stderr)
    return code if isinstance(code, int) else (0 if code is None else 1)


def _flush_and_exit(rc: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(rc & 0xFF)


# Calls the server runs itself before it forks any, on a throwaway host with only Domain-0: the
# first runs of a code path specialise its bytecode (CPython 3.11) and fill lazy caches, which
# every child would otherwise redo on pages it then has to copy (about 15% of a call's CPU).
_WARM_UP: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("xl", ("list",)),
    ("xl", ("list", "-l")),
    ("xl", ("info",)),
    ("xl", ("domid", "Domain-0")),
    ("xl", ("sched-credit", "-d", "Domain-0")),
    ("xl", ("sched-credit", "-d", "Domain-0", "-w", "")),  # a new weight each round: a write
    ("xentop", ("-b", "-i", "1")),
)
_WARM_UP_ROUNDS = 10
_WARM_UP_SECONDS = 2.0


def _warm_up() -> None:
    import io
    import time

    from simxen.facts import HostFacts
    from simxen.store import Store

    # (not tempfile, see the imports)
    directory = os.path.join(os.environ.get("TMPDIR") or "/tmp", f"simxen-warm-up-{os.getpid()}")
    try:
        os.mkdir(directory, 0o700)
    except OSError:
        return
    saved = sys.stdout, sys.stderr
    try:
        Store(directory).initialise(HostFacts())
        deadline = time.monotonic() + _WARM_UP_SECONDS
        for round_ in range(_WARM_UP_ROUNDS):
            for tool, args in _WARM_UP:
                argv = [tool, *(a or str(256 + round_) for a in args)]
                sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
                with contextlib.suppress(Exception, SystemExit):
                    sys.modules[f"simxen.{tool}"].main(argv, state_dir=directory)
            if time.monotonic() > deadline:
                break
    except Exception:  # a cold start is slower, never wrong
        pass
    finally:
        sys.stdout, sys.stderr = saved
        for name in os.listdir(directory):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def main() -> None:
    """``python -I -S -c ... PACKAGE_ROOT BIN_DIR CONTROL_FD K=V...`` (see SimHost)."""
    bin_dir, control_fd = sys.argv[1], int(sys.argv[2])
    baked = dict(item.partition("=")[::2] for item in sys.argv[3:])
    _preimport()
    server = _Server(bin_dir, control_fd, baked)  # listening: calls wait for the warm-up
    _warm_up()
    # Children would otherwise copy every page the collector touches on their first collection.
    gc.collect()
    gc.freeze()
    server.serve()
