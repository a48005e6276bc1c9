"""A scripted oned and a scripted onemonitord: start the adapters exactly as OpenNebula does
and talk the line protocols to them. Used by tests/adapter and by `make demo`.

    from adapter.scripted import OnedVm, ScriptedMonitord, ScriptedOned, install_fake_remotes

    with ScriptedOned.start("-t 15 -r 0 xen --remotes /tmp/remotes", env=...) as oned:
        vm = OnedVm(7, "xen1", datastores=..., vms_dir=...)
        reply = oned.request("DEPLOY", vm.vm_id, vm.deploy())   # DEPLOY SUCCESS 7 one-7
        vm.commit()
        print(oned.logs(7))                                      # the LOG lines of VM 7

    with ScriptedMonitord.start("-r 3 -t 15 xen", env=...) as monitord:
        first = monitord.start_monitor(0, "xen1", periods={"STATE_VM": 1})
        first.messages["SYSTEM_HOST"]                            # decoded template text
        monitord.wait_message(lambda m: m.type == "STATE_VM" and "one-7" in m.data)

Each adapter runs as `<python> -m adapter.<vmm|im>.main "<ARGUMENTS>"`: ARGUMENTS as ONE argv
element, stdin and stdout pipes, stderr closed (oned closes fd 2 before exec). Every line
either way is kept in `transcript` (and given to `echo`, for the demo).
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from adapter.im.protocol import Message, decode_payload, encode_payload
from adapter.scripted_vm import OnedVm, install_fake_remotes

__all__ = [
    "AdapterProcess",
    "FirstReport",
    "Message",
    "OnedReply",
    "OnedVm",
    "ScriptError",
    "ScriptedMonitord",
    "ScriptedOned",
    "decode_monitor",
    "host_action",
    "install_fake_remotes",
    "keys",
    "monitor_configuration",
    "parse_message",
    "parse_reply",
    "parse_template",
    "vm_entries",
]

Echo = Callable[[str, str], None]  # (direction "<" or ">", line)


class ScriptError(AssertionError):
    """The adapter did not answer as expected (in time); the message shows what it said."""


class AdapterProcess:
    """One adapter process started as OpenNebula starts drivers, with a line reader."""

    def __init__(
        self,
        module: str,
        arguments: str,
        *,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        cwd: str | None = None,
        echo: Echo | None = None,
    ) -> None:
        # `exec 2>&-` closes stderr, then execs the driver: the state oned leaves it in.
        command = ["/bin/sh", "-c", 'exec 2>&- "$@"', module, python, "-m", module, arguments]
        self.echo = echo
        self.transcript: list[tuple[str, str]] = []
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"{module}-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._changed:
                self._lines.append(line)
                self.transcript.append(("<", line))
                self._changed.notify_all()
            if self.echo is not None:
                self.echo("<", line)
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    # ------------------------------------------------------------------ lines

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        with self._changed:
            self.transcript.append((">", line))
        if self.echo is not None:
            self.echo(">", line)
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    @property
    def lines(self) -> list[str]:
        with self._changed:
            return list(self._lines)

    def wait_line(self, matches: Callable[[str], bool], *, timeout: float, start: int = 0) -> tuple[int, str]:
        """The first line from index `start` on that `matches`, and its index."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(start, len(self._lines)):
                    if matches(self._lines[index]):
                        return index, self._lines[index]
                start = max(start, len(self._lines))
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise ScriptError(
                        f"no matching line within {timeout:g} s"
                        + (" (the adapter closed its output)" if self._eof else "")
                        + "; last lines:\n  "
                        + "\n  ".join(self._lines[-15:])
                    )
                self._changed.wait(min(left, 0.5))

    # ------------------------------------------------------------------ end

    def finalize(self, timeout: float = 30.0) -> int:
        """FINALIZE, close stdin, and wait for the exit status."""
        if self.process.poll() is None:
            try:
                self.send("FINALIZE")
                assert self.process.stdin is not None
                self.process.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finalize(timeout=10.0)
        self._reader.join(timeout=5.0)


# ---------------------------------------------------------------------------- oned


@dataclass(frozen=True)
class OnedReply:
    action: str
    result: str
    vm_id: int
    info: str

    @property
    def ok(self) -> bool:
        return self.result == "SUCCESS"

    def __str__(self) -> str:
        return f"{self.action} {self.result} {self.vm_id} {self.info}"


_REPLY = re.compile(r"(?P<action>[A-Z_]+) (?P<result>SUCCESS|FAILURE) (?P<id>-?\d+) ?(?P<info>.*)")
_LOG = re.compile(r"LOG (?P<sev>\S) (?P<id>\S+) (?P<text>.*)")


def parse_reply(line: str) -> OnedReply | None:
    match = _REPLY.fullmatch(line)
    if match is None or match["action"] == "LOG":
        return None
    return OnedReply(match["action"], match["result"], int(match["id"]), match["info"])


class ScriptedOned(AdapterProcess):
    """oned's side of one_vmm_grpc."""

    def __init__(
        self,
        module: str,
        arguments: str,
        *,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        cwd: str | None = None,
        echo: Echo | None = None,
    ) -> None:
        super().__init__(module, arguments, env=env, python=python, cwd=cwd, echo=echo)
        self._taken: set[int] = set()  # indices of the replies wait_reply returned

    @classmethod
    def start(
        cls,
        arguments: str = "-t 15 -r 0 xen",
        *,
        env: Mapping[str, str] | None = None,
        echo: Echo | None = None,
        init_timeout: float = 10.0,
    ) -> ScriptedOned:
        oned = cls("adapter.vmm.main", arguments, env=env, echo=echo)
        try:
            oned.send("INIT")
            _, line = oned.wait_line(lambda text: text.startswith("INIT "), timeout=init_timeout)
            if line.split()[:2] != ["INIT", "SUCCESS"]:
                raise ScriptError(f"the driver did not load: {line}")
        except BaseException:
            oned.kill()
            raise
        return oned

    def send_action(self, action: str, vm_id: int, message: str, *, two_spaces: bool = False) -> None:
        """`ACTION VMID BASE64` (4.x/5.x), or with the empty status field of 6.x (two spaces)."""
        payload = base64.b64encode(message.encode()).decode()
        self.send(f"{action}{'  ' if two_spaces else ' '}{vm_id} {payload}")

    def wait_reply(self, action: str, vm_id: int, *, timeout: float = 60.0) -> OnedReply:
        """The next reply to `action` for `vm_id` not returned before."""

        def matches(line: str) -> bool:
            reply = parse_reply(line)
            return reply is not None and reply.action == action and reply.vm_id == vm_id

        start = 0
        while True:
            index, line = self.wait_line(matches, timeout=timeout, start=start)
            if index not in self._taken:
                self._taken.add(index)
                reply = parse_reply(line)
                assert reply is not None
                return reply
            start = index + 1

    def request(
        self, action: str, vm_id: int, message: str, *, timeout: float = 60.0, two_spaces: bool = False
    ) -> OnedReply:
        self.send_action(action, vm_id, message, two_spaces=two_spaces)
        return self.wait_reply(action, vm_id, timeout=timeout)

    def replies(self, vm_id: int | None = None) -> list[OnedReply]:
        found = [r for r in map(parse_reply, self.lines) if r is not None]
        return [r for r in found if vm_id is None or r.vm_id == vm_id]

    def logs(self, vm_id: int | None = None) -> list[tuple[str, str]]:
        """(severity, text) of each LOG line, for one VM (None: those without a VM id)."""
        out = []
        for line in self.lines:
            match = _LOG.fullmatch(line)
            if match is None:
                continue
            owner = int(match["id"]) if match["id"].lstrip("-").isdigit() else None
            if owner == vm_id:
                out.append((match["sev"], match["text"]))
        return out

    def cancel(self, vm_id: int) -> None:
        self.send(f"DRIVER_CANCEL {vm_id}")


# ---------------------------------------------------------------------------- onemonitord


def monitor_configuration(
    periods: Mapping[str, int] | None = None,
    *,
    port: int = 4124,
    monitor_address: str = "auto",
    pubkey: str = "",
) -> str:
    """monitord.conf as onemonitord hands it to the driver (`<MONITOR_CONFIGURATION>`)."""
    probes = {
        "BEACON_HOST": 30,
        "SYSTEM_HOST": 600,
        "MONITOR_HOST": 120,
        "STATE_VM": 5,
        "MONITOR_VM": 30,
        "SYNC_STATE_VM": 180,
        **(periods or {}),
    }
    period_xml = "".join(f"<{k}>{v}</{k}>" for k, v in probes.items())
    return (
        "<MONITOR_CONFIGURATION><MANAGER_TIMER>15</MANAGER_TIMER>"
        "<MONITORING_INTERVAL_HOST>180</MONITORING_INTERVAL_HOST>"
        f"<NETWORK><ADDRESS>0.0.0.0</ADDRESS><MONITOR_ADDRESS>{monitor_address}</MONITOR_ADDRESS>"
        f"<PORT>{port}</PORT><THREADS>8</THREADS><PUBKEY>{pubkey}</PUBKEY><PRIKEY/></NETWORK>"
        f"<PROBES_PERIOD>{period_xml}</PROBES_PERIOD></MONITOR_CONFIGURATION>"
    )


def host_action(host_id: int, host_name: str, configuration: str) -> str:
    """START_MONITOR / STOP_MONITOR's payload: the host's XML and monitord's configuration."""
    return (
        f"<MONITOR_DRIVER_ACTION><HOST><ID>{host_id}</ID><NAME>{host_name}</NAME><STATE>0</STATE>"
        "<PREV_STATE>0</PREV_STATE><IM_MAD>xen</IM_MAD><VM_MAD>xen</VM_MAD><CLUSTER_ID>0</CLUSTER_ID>"
        f"<CLUSTER>default</CLUSTER></HOST>{configuration}</MONITOR_DRIVER_ACTION>"
    )


def parse_message(line: str) -> Message | None:
    tokens = line.split()
    if len(tokens) < 4 or not tokens[2].lstrip("-").isdigit() or not tokens[3].isdigit():
        return None
    try:
        data = decode_payload(tokens[4]) if len(tokens) > 4 else ""
    except ValueError:
        data = ""
    return Message(tokens[0], tokens[1], int(tokens[2]), int(tokens[3]), data)


@dataclass
class FirstReport:
    """The START_MONITOR reply: status, and the decoded `<MONITOR_MESSAGES>` parts by type."""

    status: str
    host_id: int
    timestamp: int
    text: str
    messages: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "SUCCESS"


_PART = re.compile(r"<(SYSTEM_HOST|MONITOR_HOST|STATE_VM|MONITOR_VM|BEACON_HOST)>([^<]*)</\1>")


class ScriptedMonitord(AdapterProcess):
    """onemonitord's side of one_im_grpc."""

    @classmethod
    def start(
        cls,
        arguments: str = "-r 3 -t 15 -w 90 xen",
        *,
        env: Mapping[str, str] | None = None,
        echo: Echo | None = None,
        init_timeout: float = 10.0,
    ) -> ScriptedMonitord:
        monitord = cls("adapter.im.main", arguments, env=env, echo=echo)
        try:
            monitord.send("INIT")
            _, line = monitord.wait_line(lambda text: text.startswith("INIT "), timeout=init_timeout)
            if line.split()[:2] != ["INIT", "SUCCESS"]:
                raise ScriptError(f"the driver did not load: {line}")
        except BaseException:
            monitord.kill()
            raise
        return monitord

    def start_monitor(
        self,
        host_id: int,
        host_name: str,
        *,
        periods: Mapping[str, int] | None = None,
        configuration: str | None = None,
        timeout: float = 90.0,
    ) -> FirstReport:
        config = configuration if configuration is not None else monitor_configuration(periods)
        mark = len(self.lines)
        self.send(f"START_MONITOR - {host_id} 0 {encode_payload(host_action(host_id, host_name, config))}")
        _, line = self.wait_line(
            lambda text: text.startswith("START_MONITOR ") and text.split()[2:3] == [str(host_id)],
            timeout=timeout,
            start=mark,
        )
        message = parse_message(line)
        assert message is not None
        parts = {kind: base64.b64decode(data).decode() for kind, data in _PART.findall(message.data)}
        return FirstReport(message.status, message.oid, message.timestamp, message.data, parts)

    def stop_monitor(self, host_id: int, host_name: str, *, timeout: float = 30.0) -> Message:
        mark = len(self.lines)
        payload = encode_payload(host_action(host_id, host_name, monitor_configuration()))
        self.send(f"STOP_MONITOR - {host_id} 0 {payload}")
        _, line = self.wait_line(
            lambda text: text.startswith("STOP_MONITOR ") and text.split()[2:3] == [str(host_id)],
            timeout=timeout,
            start=mark,
        )
        message = parse_message(line)
        assert message is not None
        return message

    def messages(self, kind: str | None = None, host_id: int | None = None) -> list[Message]:
        found = [m for m in map(parse_message, self.lines) if m is not None]
        return [
            m
            for m in found
            if (kind is None or m.type == kind)
            and (host_id is None or m.oid == host_id)
            and m.type not in ("START_MONITOR", "STOP_MONITOR", "LOG")
        ]

    def wait_message(
        self, matches: Callable[[Message], bool], *, timeout: float = 30.0, start: int = 0
    ) -> Message:
        def line_matches(line: str) -> bool:
            message = parse_message(line)
            return message is not None and matches(message)

        _, line = self.wait_line(line_matches, timeout=timeout, start=start)
        message = parse_message(line)
        assert message is not None
        return message


# ---------------------------------------------------------------------------- template payloads

_PAIR = re.compile(r'\s*([A-Z_][A-Z0-9_]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\]\s]*)\s*,?')


def _unquote(value: str) -> str:
    if value.startswith('"') and value.endswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_template(text: str) -> list[tuple[str, str | dict[str, str]]]:
    """`KEY=value` and `KEY = [ A="x", B="y" ]` lines of a monitoring payload, in order."""
    out: list[tuple[str, str | dict[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        key, _, rest = line.partition("=")
        rest = rest.strip()
        if rest.startswith("[") and rest.endswith("]"):
            out.append((key.strip(), {k: _unquote(v) for k, v in _PAIR.findall(rest[1:-1])}))
        else:
            out.append((key.strip(), _unquote(rest)))
    return out


def vm_entries(text: str) -> Iterator[dict[str, str]]:
    """The `VM = [...]` vectors of a STATE_VM, MONITOR_VM or SYSTEM_HOST payload."""
    for key, value in parse_template(text):
        if key == "VM" and isinstance(value, dict):
            yield value


def decode_monitor(entry: Mapping[str, str]) -> dict[str, str]:
    """A MONITOR_VM entry's figures (its base64 MONITOR template) as a dict."""
    figures = base64.b64decode(entry.get("MONITOR", "")).decode()
    return {k: v for k, v in parse_template(figures) if isinstance(v, str)}


def keys(text: str) -> dict[str, str]:
    """The single-valued keys of a payload (HYPERVISOR, TOTALCPU, ...)."""
    return {k: v for k, v in parse_template(text) if isinstance(v, str)}
