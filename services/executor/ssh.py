"""SSH to Xen hosts with paramiko: one long-lived session per host, bounded channels, verified keys.

Everything here blocks: it runs on the executor's dedicated thread pool (servicer.py hands it
over with `run_blocking`), never on the event loop.

- `HostConnection` holds one authenticated transport per host. It is made on first use, reused
  by every action, and made again when it died (sshd restarted, network cut, host rebooted).
- At most `max_channels` channels are open at once per host (sshd refuses sessions past its
  `MaxSessions`, 10 by default, with "Connect failed"); further callers wait for a slot.
- Host keys come from known_hosts. `reject` refuses unknown hosts; `accept-new` (OpenSSH's
  option of that name) records an unknown host's key and still refuses a changed one.
- A command's stdout and stderr are read together as they arrive, so a command that fills
  one of them never waits on us; the exit status is only trusted once both ended.
- The exec request and the end of the command's stdin go out back to back, and never after the
  channel's close (see `_send_in_order`): a stray EOF makes sshd end the whole session.
- AES-GCM is preferred over paramiko's default AES-CTR + HMAC-SHA2: the same strength, and
  both ends do less per packet (paramiko checks each HMAC in a Python loop).
- Files are written by SFTP to a temporary name in the target directory and renamed over the
  target, so a reader never sees half a file.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import io
import os
import posixpath
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import paramiko
from paramiko.common import cMSG_CHANNEL_EOF, cMSG_CHANNEL_REQUEST
from paramiko.ssh_exception import NoValidConnectionsError

from onexen.runtime.errors import DeadlineExceeded, FailedPrecondition
from services.executor.errors import (
    AuthenticationFailed,
    CommandTimedOut,
    ConnectionLost,
    HostKeyMismatch,
    HostKeyUnknown,
    HostUnreachable,
    SftpUnavailable,
)
from services.executor.inventory import HostSettings

# Keep at most this much of a command's output (xl list -l of a full host is a few MiB).
MAX_OUTPUT_BYTES = 32 << 20
_OPEN_RETRIES = 20  # "Connect failed" (MaxSessions) retries before giving up on a slot
_KEEPALIVE_SECONDS = 30
# Tried first when the host offers them (OpenSSH does since 6.2); paramiko's own order follows.
_PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


@dataclass(frozen=True)
class Result:
    """What one command did on a host."""

    host: str
    command: str  # the command line as run
    name: str  # short name, `xl create`
    exit_code: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: SHA256:<unpadded base64>."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(address: str, port: int) -> str:
    # OpenSSH looks host names up in lower case (an upper-case name in the inventory would
    # otherwise miss its hashed entry, OpenNebula/one#4935).
    address = address.lower()
    return address if port == 22 else f"[{address}]:{port}"


class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, known_as: str, key: paramiko.PKey) -> None:
        super().__init__(f"{known_as} is not in known_hosts")
        self.known_as = known_as
        self.key = key


class _Reject(paramiko.RejectPolicy):
    """RejectPolicy that keeps the offered key, so the error can show its fingerprint."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> NoReturn:
        raise _UnknownHostKey(hostname, key)


_known_hosts_lock = threading.Lock()


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """OpenSSH's StrictHostKeyChecking=accept-new: record an unknown host, as a hashed line.

    A changed key never reaches a policy: paramiko raises BadHostKeyException for it first.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        line = f"{paramiko.HostKeys.hash_host(hostname)} {key.get_name()} {key.get_base64()}\n"
        directory = os.path.dirname(self.path) or "."
        with _known_hosts_lock:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as f:
                # Other processes (ssh, another executor) may append to the same file.
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    f.write(line)
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)
        client.get_host_keys().add(hostname, key.get_name(), key)


class _Wakeup(threading.Event):
    """Set by a channel buffer when data or EOF arrives; also sets the reader's shared event.

    A channel has two buffers and paramiko clears a buffer's event when it empties, so one
    event shared by both could be cleared by one stream while the other has data. Each
    buffer gets its own, and only the reader clears the shared one.
    """

    def __init__(self, shared: threading.Event) -> None:
        super().__init__()
        self._shared = shared

    def set(self) -> None:
        super().set()
        self._shared.set()


def _transport(
    sock: Any,
    /,
    *,
    gss_kex: bool = False,
    gss_deleg_creds: bool = True,
    disabled_algorithms: Mapping[str, Iterable[str]] | None = None,
) -> paramiko.Transport:
    """paramiko's Transport with the AEAD ciphers first (SSHClient's `transport_factory`).

    (The gss_* parameters are in the type stubs' signature only: this paramiko has no GSS.)
    """
    transport = paramiko.Transport(sock, disabled_algorithms=disabled_algorithms)
    options = transport.get_security_options()
    first = [c for c in _PREFERRED_CIPHERS if c in options.ciphers]
    options.ciphers = (*first, *(c for c in options.ciphers if c not in first))
    return transport


class HostConnection:
    """The SSH session to one host, shared by every action on it."""

    def __init__(self, settings: HostSettings) -> None:
        self.settings = settings
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()  # making or replacing the session
        self._slots = threading.BoundedSemaphore(settings.max_channels)
        self.connects = 0  # sessions made so far (tests and metrics read it)

    # ----- the session -----
    def _transport(self, deadline: float) -> paramiko.Transport:
        with self._lock:
            client = self._client
            transport = client.get_transport() if client is not None else None
            if transport is not None and transport.is_active():
                return transport
            if client is not None:
                client.close()  # a transport never closed leaks its thread
                self._client = None
            self._client = self._connect(deadline)
            transport = self._client.get_transport()
            assert transport is not None
            return transport

    def _drop(self, transport: paramiko.Transport | None) -> None:
        """Forget the session if it is still the one that failed (another thread may have
        replaced it already)."""
        with self._lock:
            client = self._client
            if client is not None and (transport is None or client.get_transport() is transport):
                client.close()
                self._client = None

    def _connect(self, deadline: float) -> paramiko.SSHClient:
        s = self.settings
        known_as = known_hosts_name(s.address, s.port)
        known_hosts = os.path.expanduser(s.known_hosts)
        client = paramiko.SSHClient()
        try:
            if os.path.exists(known_hosts):
                client.load_host_keys(known_hosts)
        except (OSError, paramiko.SSHException) as exc:
            raise HostUnreachable(s.name, s.address, s.port, f"cannot read {known_hosts}: {exc}") from exc
        client.set_missing_host_key_policy(
            _AcceptNew(known_hosts) if s.host_key_policy == "accept-new" else _Reject()
        )
        timeout = max(0.5, min(s.connect_timeout, deadline - time.monotonic()))
        key = os.path.expanduser(s.key) if s.key else None
        try:
            client.connect(
                s.address.lower(),
                port=s.port,
                username=s.user,
                key_filename=key,
                look_for_keys=key is None,
                allow_agent=key is None,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
                transport_factory=_transport,
            )
        except BaseException as exc:
            client.close()
            raise self._connect_error(exc, known_as, known_hosts) from exc
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(_KEEPALIVE_SECONDS)
        if isinstance(transport.sock, socket.socket):
            # Small request/answer packets: without this, Nagle and delayed ACKs add ~40 ms
            # to every channel open.
            transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connects += 1
        return client

    def _connect_error(self, exc: BaseException, known_as: str, known_hosts: str) -> Exception:
        s = self.settings
        if isinstance(exc, paramiko.BadHostKeyException):
            return HostKeyMismatch(
                s.name, known_as, fingerprint(exc.key), fingerprint(exc.expected_key), known_hosts
            )
        if isinstance(exc, _UnknownHostKey):
            return HostKeyUnknown(s.name, exc.known_as, fingerprint(exc.key), known_hosts)
        if isinstance(exc, paramiko.AuthenticationException):
            return AuthenticationFailed(s.name, s.user, str(exc) or type(exc).__name__)
        if isinstance(exc, paramiko.PasswordRequiredException | FileNotFoundError | PermissionError):
            return AuthenticationFailed(s.name, s.user, f"cannot use the key {s.key}: {exc}")
        if isinstance(exc, TimeoutError | socket.timeout):
            return HostUnreachable(s.name, s.address, s.port, "timed out")
        if isinstance(exc, NoValidConnectionsError):
            return HostUnreachable(s.name, s.address, s.port, "connection refused (is sshd running?)")
        if isinstance(exc, socket.gaierror):
            return HostUnreachable(s.name, s.address, s.port, f"cannot resolve {s.address}: {exc.strerror}")
        if isinstance(exc, OSError | EOFError | paramiko.SSHException):
            return HostUnreachable(s.name, s.address, s.port, str(exc) or type(exc).__name__)
        if isinstance(exc, Exception):
            return exc
        raise exc  # KeyboardInterrupt and friends pass through

    # ----- channels -----
    @contextlib.contextmanager
    def _slot(self, deadline: float, what: str) -> Iterator[None]:
        if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            s = self.settings
            raise DeadlineExceeded(
                f"all {s.max_channels} SSH channels to Xen host {s.name} stayed busy;"
                f" {what!r} was never started",
                reason="CHANNELS_BUSY",
                metadata={"host": s.name, "command": what},
            )
        try:
            yield
        finally:
            self._slots.release()

    def _open(
        self, deadline: float, opener: Callable[[paramiko.Transport, float], paramiko.Channel]
    ) -> paramiko.Channel:
        """A new channel on the session, remaking the session once if it turns out dead."""
        remade = False
        busy = 0
        while True:
            transport = self._transport(deadline)
            # A healthy sshd opens a channel in milliseconds; a session that waits longer than
            # a connect would is to a host gone silent (rebooted without closing TCP).
            left = max(0.5, min(deadline - time.monotonic(), self.settings.connect_timeout))
            try:
                return opener(transport, left)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                # sshd refusing the channel (MaxSessions below our max_channels) leaves the
                # session fine. paramiko hands a refusal to whichever thread asks first when
                # several open at once, so the others see "Unable to open channel." instead.
                refused = isinstance(exc, paramiko.ChannelException) or str(exc) == "Unable to open channel."
                if not refused or not transport.is_active():
                    # Dead, or alive but no longer answering: nothing ran yet, so trying again
                    # on a new session is safe.
                    self._drop(transport)
                    if remade or time.monotonic() > deadline:
                        raise HostUnreachable(
                            self.settings.name,
                            self.settings.address,
                            self.settings.port,
                            str(exc) or "session lost",
                        ) from exc
                    remade = True
                    continue
                # Wait for one of the open channels to close.
                busy += 1
                if busy > _OPEN_RETRIES or time.monotonic() > deadline:
                    raise HostUnreachable(
                        self.settings.name, self.settings.address, self.settings.port,
                        f"sshd refused a session: {exc} (MaxSessions lower than max_channels?)",
                    ) from exc  # fmt: skip
                time.sleep(0.05 * busy)

    def run(self, line: str, *, name: str, wait: float, stdin: bytes | None = None) -> Result:
        """Run `line` (already quoted and wrapped in timeout(1)) and collect what it printed.

        `wait` bounds the whole call here; the remote timeout(1) must be shorter. A command
        still running when `wait` passes is abandoned (its channel closed) and reported as
        timed out; one whose session dies raises ConnectionLost.
        """
        started = time.monotonic()
        deadline = started + wait
        with self._slot(deadline, line):
            chan = self._open(deadline, lambda t, left: t.open_session(timeout=left))
            try:
                return self._exec(chan, line, name, stdin, started, deadline)
            finally:
                chan.close()

    def _exec(
        self,
        chan: paramiko.Channel,
        line: str,
        name: str,
        stdin: bytes | None,
        started: float,
        deadline: float,
    ) -> Result:
        host = self.settings.name
        shared = threading.Event()
        chan.in_buffer.set_event(_Wakeup(shared))
        chan.in_stderr_buffer.set_event(_Wakeup(shared))
        out, err = bytearray(), bytearray()
        try:
            chan.settimeout(max(0.5, deadline - time.monotonic()))  # bounds sending stdin
            _start(chan, line, stdin, deadline)
            chan.settimeout(0.0)
            while True:
                shared.clear()
                # Drain both streams before looking at the exit status: the status can
                # arrive while output is still buffered.
                while chan.recv_ready():
                    _append(out, chan.recv(1 << 16))
                while chan.recv_stderr_ready():
                    _append(err, chan.recv_stderr(1 << 16))
                if chan.closed or (chan.eof_received and chan.exit_status_ready()):
                    if not (chan.recv_ready() or chan.recv_stderr_ready()):
                        break
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CommandTimedOut(host, line, deadline - started, killed=False, stderr=_text(err))
                if chan.eof_received:
                    # Only the exit status (or the close) is still to come: paramiko sets this
                    # event for either, and nothing else needs waking us for.
                    chan.status_event.wait(min(left, 1.0))
                else:
                    shared.wait(min(left, 1.0))
        except TimeoutError as exc:
            raise CommandTimedOut(host, line, deadline - started, killed=False, stderr=_text(err)) from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self._drop(chan.get_transport())
            raise ConnectionLost(host, line, str(exc) or type(exc).__name__) from exc
        status = chan.recv_exit_status() if chan.exit_status_ready() else -1
        transport = chan.get_transport()
        if status == -1 and (transport is None or not transport.is_active()):
            self._drop(transport)
            raise ConnectionLost(host, line, "the session closed before the command's exit status came")
        if status == -1 and not chan.event_ready:
            # sshd answered the exec request with a failure (paramiko then closed the channel).
            self._drop(transport)
            raise ConnectionLost(host, line, "sshd refused to run the command")
        return Result(host, line, name, status, _text(out), _text(err), time.monotonic() - started)

    # ----- files -----
    @contextlib.contextmanager
    def _sftp(self, wait: float, what: str) -> Iterator[paramiko.SFTPClient]:
        # One SFTP session per operation: a shared SFTPClient stalls under threads (paramiko#1836).
        deadline = time.monotonic() + wait

        def opener(transport: paramiko.Transport, left: float) -> paramiko.Channel:
            chan = transport.open_session(timeout=left)
            chan.settimeout(left)
            return chan

        with self._slot(deadline, what):
            chan = self._open(deadline, opener)
            try:
                chan.invoke_subsystem("sftp")
                sftp = paramiko.SFTPClient(chan)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                # sshd refused the subsystem, or its sftp-server ended before the version exchange
                # (seen on a dom0 whose memory went bad): the session itself may be fine.
                chan.close()
                transport = chan.get_transport()
                if transport is None or not transport.is_active():
                    raise ConnectionLost(self.settings.name, what, str(exc) or type(exc).__name__) from exc
                raise SftpUnavailable(self.settings.name, what, str(exc) or type(exc).__name__) from exc
            except BaseException:
                chan.close()
                raise
            try:
                yield sftp
            except TimeoutError as exc:
                raise CommandTimedOut(self.settings.name, what, wait, killed=False) from exc
            except (paramiko.SSHException, EOFError) as exc:
                raise ConnectionLost(self.settings.name, what, str(exc) or type(exc).__name__) from exc
            except OSError as exc:
                # The host refused the file operation itself (permissions, full disk, ...).
                raise FailedPrecondition(
                    f"{what} on Xen host {self.settings.name} failed: {exc.strerror or exc}",
                    reason="FILE_OPERATION_FAILED",
                    metadata={"host": self.settings.name, "command": what, "cause": str(exc)},
                ) from exc
            finally:
                sftp.close()

    def upload(self, path: str, data: bytes, *, wait: float, mode: int = 0o644) -> None:
        """Write `data` to `path` atomically, making missing directories (mkdir -p)."""
        directory = posixpath.dirname(path)
        tmp = posixpath.join(directory, f".{posixpath.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
        with self._sftp(wait, f"sftp put {path}") as sftp:
            _makedirs(sftp, directory)
            try:
                sftp.putfo(io.BytesIO(data), tmp, file_size=len(data), confirm=True)
                sftp.chmod(tmp, mode)
                sftp.posix_rename(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
                    sftp.remove(tmp)
                raise

    def read_file(self, path: str, *, wait: float, limit: int = 1 << 20) -> bytes | None:
        """The first `limit` bytes of `path`, or None when it does not exist."""
        with self._sftp(wait, f"sftp get {path}") as sftp:
            try:
                with sftp.open(path, "rb") as f:
                    return bytes(f.read(limit))
            except FileNotFoundError:
                return None

    def rename(self, source: str, target: str, *, wait: float) -> bool:
        """Rename `source` to `target`; False when `source` does not exist."""
        with self._sftp(wait, f"sftp rename {source}") as sftp:
            try:
                sftp.posix_rename(source, target)
            except FileNotFoundError:
                return False
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    return False
                raise
            return True

    def close(self) -> None:
        self._drop(None)


def _makedirs(sftp: paramiko.SFTPClient, directory: str) -> None:
    missing: list[str] = []
    current = directory
    while current not in ("", "/"):
        try:
            if not stat.S_ISDIR(sftp.stat(current).st_mode or 0):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", current)
            break
        except FileNotFoundError:
            missing.append(current)
            current = posixpath.dirname(current)
    for path in reversed(missing):
        with contextlib.suppress(OSError):  # made by a concurrent upload meanwhile
            sftp.mkdir(path, 0o755)


def _start(chan: paramiko.Channel, line: str, stdin: bytes | None, deadline: float) -> None:
    """`exec_command(line)`, then `stdin` and EOF, without waiting for sshd's answer between them.

    The answer to the exec request is not awaited: `_exec` reads on until the channel ends
    either way, and tells a refused request from a command by `event_ready` (paramiko sets it
    on sshd's success reply, which always comes before the command's output and close).
    """
    request = paramiko.Message()
    request.add_byte(cMSG_CHANNEL_REQUEST)
    request.add_int(chan.remote_chanid)
    request.add_string("exec")
    request.add_boolean(True)
    request.add_string(line)
    chan.event.clear()  # what exec_command does before it sends the request
    chan.event_ready = False
    if stdin:
        _send_in_order(chan, request, eof=False, deadline=deadline)
        chan.sendall(stdin)
        _send_in_order(chan, None, eof=True, deadline=deadline)
    else:
        _send_in_order(chan, request, eof=True, deadline=deadline)


def _send_in_order(
    chan: paramiko.Channel, message: paramiko.Message | None, *, eof: bool, deadline: float
) -> None:
    """Send `message` on `chan`, then its EOF if `eof`, unless the channel is already closed.

    paramiko's own `shutdown_write()` makes the EOF under the channel's lock but sends it after
    letting go: when the command ends meanwhile, paramiko's transport thread answers sshd's
    CLOSE with ours first, sshd forgets the channel, and our EOF then makes it end the whole
    session ("ieof packet referred to nonexistent channel", paramiko#1115 and #1705), failing
    every command on it. Every packet goes out under the transport's clear-to-send lock, as
    `Transport._send_user_message` does: deciding and sending under it puts ours before any
    CLOSE of the transport thread. (Nothing waits for the transport thread while holding it.)
    """
    transport = chan.get_transport()
    if transport is None:
        return
    while True:  # the wait of Transport._send_user_message: not in the middle of a key exchange
        transport.clear_to_send.wait(0.1)
        if not transport.is_active():
            return  # as paramiko: dropped; the reader sees the channel closed with the session
        transport.clear_to_send_lock.acquire()
        if transport.clear_to_send.is_set():
            break
        transport.clear_to_send_lock.release()
        if time.monotonic() > deadline:
            raise paramiko.SSHException("key exchange did not finish in time")
    try:
        with chan.lock:
            if chan.closed:
                return  # sshd ended the channel already: nothing more may be sent on it
            if eof:
                eof, chan.eof_sent = not chan.eof_sent, True
        if message is not None:
            transport.packetizer.send_message(message)
        if eof:
            end = paramiko.Message()
            end.add_byte(cMSG_CHANNEL_EOF)
            end.add_int(chan.remote_chanid)
            transport.packetizer.send_message(end)
    finally:
        transport.clear_to_send_lock.release()


def _append(buffer: bytearray, chunk: bytes) -> None:
    room = MAX_OUTPUT_BYTES - len(buffer)
    if room > 0:
        buffer += chunk[:room]


def _text(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")


class SshPool:
    """One `HostConnection` per host name; a changed inventory entry gets a new one."""

    def __init__(self) -> None:
        self._hosts: dict[str, HostConnection] = {}
        self._lock = threading.Lock()

    def connection(self, settings: HostSettings) -> HostConnection:
        with self._lock:
            found = self._hosts.get(settings.name)
            if found is not None and found.settings == settings:
                return found
            if found is not None:
                found.close()
            made = HostConnection(settings)
            self._hosts[settings.name] = made
            return made

    def close(self) -> None:
        with self._lock:
            hosts, self._hosts = list(self._hosts.values()), {}
        for host in hosts:
            host.close()
