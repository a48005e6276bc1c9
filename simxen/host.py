"""A simulated Xen host: a real OpenSSH sshd on 127.0.0.1 whose xl, xentop and sudo are simxen's.

Layout of ``workdir`` (shared by the hosts of one "cluster")::

    client_key, client_key.pub   the key every host authorises (and hosts use to reach each other)
    known_hosts                  all hosts' keys, ``[127.0.0.1]:PORT ssh-ed25519 ...``
    ssh_config                   ``Host xen1`` -> 127.0.0.1:PORT, key, known_hosts, strict checking
    <name>/                      one host: sshd_config, host keys, authorized_keys, known_hosts,
                                 sshd.log, state/ (the simulated toolstack's state), bin/,
                                 home/ (HOME of its SSH sessions, empty)

How commands run over SSH find the simulation: sshd's ``SetEnv`` puts ``<name>/bin`` first in
PATH (and exports SIMXEN_STATE, and HOME=<name>/home so that no dotfile of the developer's
runs in the sessions).  The scripts in ``bin/`` also carry their host's state dir
themselves, so ``sudo`` (which real hosts reset the environment for) and direct calls of
``host.xl_path`` reach the right host too.  ``bin/ssh`` and ``bin/scp`` add ``-F ssh_config`` so
that ``xl migrate DOMAIN xen2`` reaches the other simulated host by name, as in a real cluster.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from simxen import inject, xlparse, zygote
from simxen.errors import XlParserUnavailable
from simxen.facts import HostFacts
from simxen.store import Store

SSHD = "/usr/sbin/sshd"
SSH = "/usr/bin/ssh"
SCP = "/usr/bin/scp"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
ADDRESS = "127.0.0.1"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_START_MARK = "simxen: starting sshd"
# In the environment of the host's sessions (sshd_config's SetEnv), so that stop() finds what they
# run even once sshd has let go of it.  (Not usable for sshd's own processes: setproctitle()
# overwrites the memory that /proc/PID/environ shows.)
_MARK_VARIABLE = "SIMXEN_SSHD"


class SimHostError(RuntimeError):
    pass


def wrapper_python() -> str:
    """The interpreter that runs the simulated xl and xentop (``$SIMXEN_PYTHON`` if set).

    The simulated toolstack only needs the standard library, so any CPython of our own
    major.minor version will do, and the distribution's ``/usr/bin/pythonX.Y`` starts faster
    than a self-built one: Debian's is statically linked and profile-optimised, while pyenv's
    (``--enable-shared``, no PGO) needs ~4 ms more CPU just to start, which every simulated
    call would pay.  Both read the same ``__pycache__`` (one magic number per minor version).
    """
    override = os.environ.get("SIMXEN_PYTHON")
    if override:
        return override
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if sys.implementation.name == "cpython" and os.access(system, os.X_OK):
        return system
    return sys.executable


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SimHostError(f"{shlex.join(argv)} failed: {proc.stderr.strip()}")


def _keygen(path: Path, kind: str, comment: str) -> None:
    if path.exists():
        return
    bits = ["-b", "2048"] if kind == "rsa" else []
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    for p in (tmp, tmp.with_name(tmp.name + ".pub")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    _run([SSH_KEYGEN, "-q", "-t", kind, *bits, "-N", "", "-C", comment, "-f", str(tmp)])
    os.replace(tmp.with_name(tmp.name + ".pub"), path.with_name(path.name + ".pub"))
    os.replace(tmp, path)


@contextlib.contextmanager
def _workdir_lock(workdir: Path) -> Iterator[None]:
    with open(workdir / ".simxen.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ADDRESS, 0))
        return int(s.getsockname()[1])


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _install(program: Path, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    shutil.copyfile(program, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


def _sshd_quote(value: str) -> str:
    if '"' in value or "\n" in value:
        raise SimHostError(f"cannot put {value!r} into sshd_config")
    return f'"{value}"' if any(c.isspace() for c in value) else value


def _descendants(root: int) -> list[int]:
    """Every process below ``root``, children before their parents' parents (leaves first)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    order: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            order.append(child)
            todo.append(child)
    return list(reversed(order))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"  # a zombie is dead, whoever reaps it


def _marked(mark: str) -> list[int]:
    """Every process whose environment (as it was exec'd with) holds ``SIMXEN_SSHD=mark``."""
    needle = f"{_MARK_VARIABLE}={mark}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(int(entry))
    return found


def _serving(address: str, port: int) -> list[int]:
    """Every sshd process holding a TCP socket whose local end is ``address:port``: the listener
    and the per-connection processes of the host on that port (sshd only: once the host's sshd
    is gone, another program may have the port)."""
    try:
        a, b, c, d = (int(x) for x in address.split("."))
    except ValueError:
        return []  # not an IPv4 address: nothing in /proc/net/tcp to go by
    local = f"{d:02X}{c:02X}{b:02X}{a:02X}:{port:04X}"  # /proc/net/tcp: little-endian address
    inodes = set()
    with contextlib.suppress(OSError), open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == local:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return []
    found = []
    sshd = os.path.realpath(SSHD)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.readlink(f"/proc/{entry}/exe") != sshd:
                continue
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                    found.append(int(entry))
                    break
            except OSError:
                continue
    return found


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _kill_tree(pid: int | None, timeout: float = 5.0, host: SimHost | None = None) -> None:
    """SIGTERM the listener and everything it started, SIGKILL what is left after ``timeout``.

    With ``host``, also the sshd processes serving its port and whatever carries its sessions'
    mark, with all they started: after ``restart_sshd()`` the sessions that an earlier listener
    accepted are no longer below the current one (sshd's per-connection processes outlive their
    listener and are re-parented), and a command can outlive its session.
    """
    roots = [] if pid is None else [pid]
    if host is not None:
        for p in [*_serving(host.address, host.port), *_marked(str(host.sshd_config_path))]:
            if p not in roots:
                roots.append(p)
    victims: list[int] = []
    for root in roots:
        for p in [*_descendants(root), root]:
            if p not in victims:
                victims.append(p)
    for p in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in victims:
        while time.monotonic() < deadline:
            if not _alive(p):
                break
            time.sleep(0.02)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)


@dataclass(eq=False)
class SimHost:
    """One simulated host.  ``start()`` it (or ``prepare()`` it for local use without sshd)."""

    name: str
    workdir: Path
    port: int = 0
    user: str = field(default_factory=lambda: pwd.getpwuid(os.getuid()).pw_name)
    address: str = ADDRESS
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: Any = field(default=None, repr=False)
    _served: bool = field(default=False, repr=False)  # this object's sshd has served its port
    _zygote: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _zygote_control: weakref.finalize[Any, Any] | None = field(default=None, repr=False)  # ends the server
    _zygote_env: dict[str, str] = field(default_factory=dict, repr=False)

    # ----- paths -----
    @property
    def host_dir(self) -> Path:
        return self.workdir / self.name

    @property
    def state_dir(self) -> Path:
        return self.host_dir / "state"

    @property
    def bin_dir(self) -> Path:
        return self.host_dir / "bin"

    @property
    def home_dir(self) -> Path:
        """HOME of the host's SSH sessions: empty, like a fresh oneadmin's on a Xen host.

        sshd would give sessions the real user's home, and bash sources its ~/.bashrc even for
        ``ssh host command`` (Debian's bash does, under sshd): a developer's dotfiles (e.g.
        ``pyenv init``, 150-300 ms) would then run before every simulated command.
        """
        return self.host_dir / "home"

    @property
    def xl_path(self) -> Path:
        return self.bin_dir / "xl"

    @property
    def xentop_path(self) -> Path:
        return self.bin_dir / "xentop"

    @property
    def sudo_path(self) -> Path:
        return self.bin_dir / "sudo"

    @property
    def key_path(self) -> Path:
        """The client's private key (shared by the hosts of this workdir)."""
        return self.workdir / "client_key"

    @property
    def known_hosts_path(self) -> Path:
        """known_hosts with only this host's keys."""
        return self.host_dir / "known_hosts"

    @property
    def cluster_known_hosts_path(self) -> Path:
        """known_hosts with the keys of every host started in this workdir."""
        return self.workdir / "known_hosts"

    @property
    def ssh_config_path(self) -> Path:
        return self.workdir / "ssh_config"

    @property
    def sshd_config_path(self) -> Path:
        return self.host_dir / "sshd_config"

    @property
    def sshd_log_path(self) -> Path:
        return self.host_dir / "sshd.log"

    @property
    def store(self) -> Store:
        return Store(self.state_dir)

    @property
    def sshd_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def zygote_pid(self) -> int | None:
        """The fork server that runs bin/xl's calls (see simxen.zygote), if this object started one."""
        return self._zygote.pid if self._zygote is not None and self._zygote.poll() is None else None

    @property
    def running(self) -> bool:
        return self.sshd_pid is not None

    # ----- life cycle -----
    @classmethod
    def prepare(cls, workdir: Path | str, name: str = "xen1", **facts: Any) -> SimHost:
        """Keys, state directory and bin/ wrappers, without starting sshd."""
        host = cls(name=name, workdir=Path(workdir).resolve())
        host._prepare(facts)
        return host

    @classmethod
    def start(
        cls,
        workdir: Path | str,
        name: str = "xen1",
        port: int = 0,
        *,
        ready_timeout: float = 15.0,
        **facts: Any,
    ) -> SimHost:
        """Prepare the host and run its sshd; returns once the SSH banner is served."""
        host = cls.prepare(workdir, name, **facts)
        host.port = port
        host._launch(ready_timeout)
        return host

    def _prepare(self, facts: dict[str, Any]) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise SimHostError(f"bad host name {self.name!r}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host_dir.mkdir(exist_ok=True)
        self.bin_dir.mkdir(exist_ok=True)
        self.home_dir.mkdir(exist_ok=True)
        self.store.initialise(HostFacts().updated(**{"hostname": self.name, **facts}))
        self._write_wrappers()
        self._start_zygote()

    def _start_zygote(self) -> None:
        """The host's fork server (see simxen.zygote), unless one already answers on bin/.

        Not waited for: until it listens, bin/xl runs the Python wrapper.  It ends with
        ``stop()``, or when this object is collected (its control pipe closes).
        """
        if self._zygote is not None and self._zygote.poll() is None:
            return
        if not (self.bin_dir / zygote.fallback_name("xl")).exists() or zygote.answering(self.bin_dir):
            return
        read_end, write_end = os.pipe()
        code = "import sys; sys.path.insert(0, sys.argv.pop(1)); from simxen.zygote import main; main()"
        argv = [wrapper_python(), "-I", "-S", "-c", code, str(PACKAGE_ROOT), str(self.bin_dir), str(read_end)]
        try:
            with open(self.host_dir / "zygote.log", "ab") as log:
                self._zygote = subprocess.Popen(
                    [*argv, *(f"{k}={v}" for k, v in self._zygote_env.items())],
                    # small, as an SSH session's: a call replaces it with the client's, by difference
                    env={k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "LC_CTYPE", "TZ")}
                    | {"PATH": BASE_PATH},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    pass_fds=(read_end,),
                    start_new_session=True,  # no terminal's ^C; stop() ends it and its children
                )
        except OSError:
            os.close(write_end)
            return
        finally:
            os.close(read_end)
        self._zygote_control = weakref.finalize(self, _close_quietly, write_end)

    def _stop_zygote(self) -> None:
        proc, self._zygote = self._zygote, None
        control, self._zygote_control = self._zygote_control, None
        if control is not None:
            control()  # closes the pipe (once: a finalizer runs at most once)
        if proc is not None:
            _kill_tree(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def _prepare_keys(self) -> None:
        """Client key (shared by the workdir), host keys, authorized_keys; kept across restarts."""
        with _workdir_lock(self.workdir):
            _keygen(self.key_path, "ed25519", f"simxen-client@{self.workdir.name}")
        _keygen(self.host_dir / "ssh_host_ed25519_key", "ed25519", f"simxen-{self.name}")
        _keygen(self.host_dir / "ssh_host_rsa_key", "rsa", f"simxen-{self.name}")
        _write(self.host_dir / "authorized_keys", (self.workdir / "client_key.pub").read_text(), 0o600)

    def _write_wrappers(self) -> None:
        try:
            shim = str(xlparse.build_shim())
        except xlparse.XlParserUnavailable:
            shim = ""  # create will report it; everything else works without the parser
        env = {"SIMXEN_STATE": str(self.state_dir), "SIMXEN_XLSHIM": shim}
        if os.environ.get(xlparse.ENV_REAL_XL):
            env[xlparse.ENV_REAL_XL] = os.environ[xlparse.ENV_REAL_XL]
        exports = (
            "".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()) + "export " + " ".join(env) + "\n"
        )
        python = shlex.quote(wrapper_python())
        try:
            client: Path | None = zygote.build_client()
        except (XlParserUnavailable, OSError):
            client = None  # no gcc: bin/xl is the Python wrapper itself, as it always worked
        self._zygote_env = env
        for tool, module in (("xl", "simxen.xl"), ("xentop", "simxen.xentop")):
            # -I -S: no site-packages, no PYTHON* variables: a fast start that only sees simxen
            code = f"import sys; sys.path.insert(0, sys.argv.pop(1)); from {module} import command; command()"
            script = (
                f"#!/bin/sh\n# simxen: simulated {tool} of host {self.name} (generated)\n{exports}"
                f"exec {python} -I -S -c {shlex.quote(code)} {shlex.quote(str(PACKAGE_ROOT))} "
                '"$@"\n'
            )
            if client is None:
                _write(self.bin_dir / tool, script, 0o755)
                continue
            # the fork server's client (see simxen.zygote), which runs the wrapper without a server
            _write(self.bin_dir / zygote.fallback_name(tool), script, 0o755)
            _install(client, self.bin_dir / tool)
        sudo = _SUDO_SCRIPT.replace("@BIN@", shlex.quote(str(self.bin_dir)))
        if client is None:
            _write(self.sudo_path, sudo, 0o755)
        else:
            # The client is sudo too: it does the script's usual `sudo -n xl ...` without a shell
            # and execs the script for anything else (see zygote_client.c).
            _write(self.bin_dir / zygote.SUDO_SCRIPT_NAME, sudo, 0o755)
            _install(client, self.sudo_path)
        for tool, real in (("ssh", SSH), ("scp", SCP)):
            _write(
                self.bin_dir / tool,
                f"#!/bin/sh\n# simxen: reach the other simulated hosts by name\n"
                f'exec {real} -F {shlex.quote(str(self.ssh_config_path))} "$@"\n',
                0o755,
            )

    def _write_sshd_config(self) -> None:
        path = f"{self.bin_dir}:{BASE_PATH}"
        lines = [
            f"# simxen: sshd of simulated host {self.name} (generated)",
            f"ListenAddress {self.address}",
            f"Port {self.port}",
            f"HostKey {_sshd_quote(str(self.host_dir / 'ssh_host_ed25519_key'))}",
            f"HostKey {_sshd_quote(str(self.host_dir / 'ssh_host_rsa_key'))}",
            f"PidFile {_sshd_quote(str(self.host_dir / 'sshd.pid'))}",
            f"AuthorizedKeysFile {_sshd_quote(str(self.host_dir / 'authorized_keys'))}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "StrictModes no",
            "UsePAM no",
            "PrintMotd no",
            "MaxSessions 16",
            "Subsystem sftp internal-sftp",
            "SetEnv "
            + " ".join(
                _sshd_quote(f"{k}={v}")
                for k, v in (
                    ("HOME", self.home_dir),
                    ("PATH", path),
                    ("SIMXEN_STATE", self.state_dir),
                    (_MARK_VARIABLE, self.sshd_config_path),
                )
            ),
        ]
        if os.getuid() == 0:
            lines.append("PermitRootLogin prohibit-password")
        _write(self.sshd_config_path, "\n".join(lines) + "\n", 0o600)

    def _register(self) -> None:
        """Record this host's port and keys, and rewrite the workdir's known_hosts and ssh_config."""
        keys = [
            " ".join((self.host_dir / f"ssh_host_{kind}_key.pub").read_text().split()[:2])
            for kind in ("ed25519", "rsa")
        ]
        entry = f"[{self.address}]:{self.port}"
        _write(self.known_hosts_path, "".join(f"{entry} {k}\n" for k in keys))
        _write(
            self.host_dir / "sshd.json", json.dumps({"name": self.name, "port": self.port, "user": self.user})
        )
        with _workdir_lock(self.workdir):
            known, config = [], []
            for reg in sorted(self.workdir.glob("*/sshd.json")):
                info = json.loads(reg.read_text())
                known.append((reg.parent / "known_hosts").read_text())
                config.append(f"Host {info['name']}\n    HostName {self.address}\n    Port {info['port']}\n")
            config.append(
                "Host *\n"
                f"    User {self.user}\n"
                f"    IdentityFile {self.key_path}\n"
                "    IdentitiesOnly yes\n"
                f"    UserKnownHostsFile {self.cluster_known_hosts_path}\n"
                "    StrictHostKeyChecking yes\n"
                "    BatchMode yes\n"
                "    LogLevel ERROR\n"
            )
            _write(self.cluster_known_hosts_path, "".join(known))
            _write(self.ssh_config_path, "".join(config))

    def _launch(self, ready_timeout: float) -> None:
        if not os.access(SSHD, os.X_OK):
            raise SimHostError(f"{SSHD} not found: apt-get install openssh-server")
        if os.getuid() == 0:
            # sshd running as root insists on its privilege-separation directory (made by
            # systemd's unit on a real host).
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self._prepare_keys()
        fixed_port = self.port != 0
        for _attempt in range(5):
            if not fixed_port:
                self.port = _free_port()
            self._write_sshd_config()
            self._spawn()
            outcome = self._wait_ready(ready_timeout)
            if outcome == "ready":
                self._served = True
                self._register()
                _running_hosts.add(self)
                return
            self._terminate(sweep=False)
            if outcome != "port-busy" or fixed_port:
                break
        log = self.sshd_log_path.read_text(errors="replace") if self.sshd_log_path.exists() else ""
        raise SimHostError(f"sshd for {self.name} did not start on port {self.port}:\n{log}")

    def _spawn(self) -> None:
        self._log = open(self.sshd_log_path, "ab")  # noqa: SIM115  (kept open while sshd runs)
        self._log.write(f"--- {_START_MARK} {time.strftime('%F %T')} port {self.port}\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.sshd_config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches all of it
        )

    def _wait_ready(self, timeout: float) -> str:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                log = self.sshd_log_path.read_text(errors="replace")
                return "port-busy" if "Address already in use" in log.split(_START_MARK)[-1] else "exited"
            try:
                with socket.create_connection((self.address, self.port), timeout=1.0) as s:
                    s.settimeout(2.0)
                    # ...and it must be our sshd answering, not whoever else got the port
                    if s.recv(64).startswith(b"SSH-2.0-") and self._proc.poll() is None:
                        return "ready"
            except OSError:
                pass
            time.sleep(0.05)
        return "timeout"

    def _terminate(self, sweep: bool = True) -> None:
        proc, self._proc = self._proc, None
        # Only a host object that has served its port sweeps by port and mark: another object for
        # the same host dir (a client's view of a host that `onexen-simxen up` serves) must not
        # stop it, nor may a launch that found the port taken kill whoever has it.
        _kill_tree(proc.pid if proc is not None else None, host=self if sweep and self._served else None)
        self._served = False  # the port is free for others now: a second stop() must not sweep it
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Stop sshd and every process it started (sessions, commands).  State is kept."""
        self._terminate()
        self._stop_zygote()
        _running_hosts.discard(self)

    def restart_sshd(self, ready_timeout: float = 15.0) -> None:
        """Restart the listener on the same port with the same keys; open sessions survive."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
        self._spawn()
        if self._wait_ready(ready_timeout) != "ready":
            self._terminate()
            raise SimHostError(f"sshd for {self.name} did not come back on port {self.port}")

    def __enter__(self) -> SimHost:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ----- using the host -----
    def describe(self) -> dict[str, Any]:
        """What ``onexen-simxen up`` prints: everything a client needs to connect."""
        return {
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "key": str(self.key_path),
            "known_hosts": str(self.known_hosts_path),
            "cluster_known_hosts": str(self.cluster_known_hosts_path),
            "ssh_config": str(self.ssh_config_path),
            "state_dir": str(self.state_dir),
            "bin_dir": str(self.bin_dir),
            "xl_path": str(self.xl_path),
            "xentop_path": str(self.xentop_path),
            "sshd_pid": self.sshd_pid,
        }

    def ssh_argv(self, *command: str) -> list[str]:
        """OpenSSH argv that runs ``command`` on this host with strict host-key checking."""
        return [
            SSH, "-F", "none", "-i", str(self.key_path), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts_path}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-p", str(self.port),
            f"{self.user}@{self.address}", *command,
        ]  # fmt: skip

    def run_xl(self, *args: str, timeout: float = 60.0, cwd: Path | str | None = None,
               input: bytes | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run this host's simulated xl locally (no SSH)."""
        return subprocess.run(
            [str(self.xl_path), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
            stdin=subprocess.DEVNULL if input is None else None,
        )  # fmt: skip

    def run_xentop(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.xentop_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    # ----- fault and event injection (see simxen.inject) -----
    def fail(self, verb: str, *, rc: int = 1, stderr: str = "", stdout: str = "", count: int | None = None,
             match: str | None = None) -> None:  # fmt: skip
        inject.fail(self.store, verb, rc=rc, stderr=stderr, stdout=stdout, count=count, match=match)

    def hang(self, verb: str, *, count: int | None = None, match: str | None = None) -> None:
        inject.hang(self.store, verb, count=count, match=match)

    def slow(self, verb: str, delay: float, *, count: int | None = None, match: str | None = None) -> None:
        inject.slow(self.store, verb, delay, count=count, match=match)

    def clear_faults(self, verb: str | None = None) -> None:
        inject.clear_faults(self.store, verb)

    def crash(self, dom: str | int, *, honour_on_crash: bool = False) -> None:
        inject.crash(self.store, dom, honour_on_crash=honour_on_crash)

    def guest_poweroff(self, dom: str | int) -> None:
        inject.guest_poweroff(self.store, dom)

    def guest_reboot(self, dom: str | int) -> None:
        inject.guest_reboot(self.store, dom)

    def pause_guest(self, dom: str | int) -> None:
        inject.pause(self.store, dom)

    def unpause_guest(self, dom: str | int) -> None:
        inject.unpause(self.store, dom)

    def ignore_acpi(self, dom: str | int, ignore: bool = True) -> None:
        inject.ignore_acpi(self.store, dom, ignore)

    def set_load(self, dom: str | int, load: float) -> None:
        inject.set_load(self.store, dom, load)

    def add_wild_domain(self, name: str, **kwargs: Any) -> int:
        return inject.add_wild_domain(self.store, name, **kwargs)

    def domains(self) -> list[dict[str, Any]]:
        return inject.domains(self.store)

    def calls(self) -> list[dict[str, Any]]:
        """Every simulated xl/xentop call so far: ``{"t", "argv", "rc", "pid"}``."""
        return self.store.calls()


_SUDO_SCRIPT = """#!/bin/sh
# simxen: sudo for the simulated toolstack.  Behaves like `sudo -n` for a user with NOPASSWD
# rights: options are accepted and ignored, xl and xentop (by name or by their real paths) run
# the simulated ones, anything else runs as it is.  PATH is kept so xl finds bin/ssh.
bin=@BIN@
while [ $# -gt 0 ]; do
    case "$1" in
        -n|--non-interactive|-E|--preserve-env|-H|--set-home|-S|--stdin|-k|--reset-timestamp) shift ;;
        -u|--user|-g|--group) shift 2 ;;
        -u*|-g*|--user=*|--group=*) shift ;;
        --) shift; break ;;
        -*) echo "sudo: invalid option -- '${1#-}'" >&2
            echo "usage: sudo -h | -K | -k | -V" >&2
            exit 1 ;;
        *) break ;;
    esac
done
if [ $# -eq 0 ]; then
    echo "usage: sudo -h | -K | -k | -V" >&2
    echo "usage: sudo -v [-ABkNnS] [-g group] [-h host] [-p prompt] [-u user]" >&2
    exit 1
fi
case "$1" in
    xl|/usr/sbin/xl|/usr/lib/xen-4.17/bin/xl) shift; exec "$bin/xl" "$@" ;;
    xentop|/usr/sbin/xentop|/usr/lib/xen-4.17/bin/xentop) shift; exec "$bin/xentop" "$@" ;;
esac
if ! command -v "$1" >/dev/null 2>&1; then
    echo "sudo: $1: command not found" >&2
    exit 1
fi
exec "$@"
"""


class _Registry:
    """Hosts still running when the interpreter exits are stopped (a failed test must not leak sshd)."""

    def __init__(self) -> None:
        self._hosts: set[SimHost] = set()
        atexit.register(self.stop_all)

    def add(self, host: SimHost) -> None:
        self._hosts.add(host)

    def discard(self, host: SimHost) -> None:
        self._hosts.discard(host)

    def stop_all(self) -> None:
        for host in list(self._hosts):
            with contextlib.suppress(Exception):
                host.stop()


_running_hosts = _Registry()
