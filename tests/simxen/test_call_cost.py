"""What keeps a simulated xl/xentop call cheap: what it imports, what it writes, and the stand-ins
(simxen.records for dataclasses, simxen.fastjson for json) behaving like the real modules.

Timing is left to simxen/devtools/measure_call_cost.py: CPU figures depend on the machine, the
imports and the writes do not.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from simxen import fastjson, records, zygote
from simxen.host import PACKAGE_ROOT, SimHost, wrapper_python

# Each costs a simulated call milliseconds of CPU (dataclasses alone ~40 ms with inspect, ast and
# re); none of them is needed by the common verbs.
HEAVY = {
    "dataclasses", "typing", "json", "re", "contextlib", "importlib", "inspect", "enum", "collections",
    "random", "getopt", "gettext", "signal", "copy", "subprocess", "pathlib", "tempfile", "hashlib",
}  # fmt: skip

COMMON = [
    ["xl", "list"], ["xl", "list", "-l"], ["xl", "info"], ["xl", "sched-credit"], ["xl", "domid", "Domain-0"],
    ["xl", "block-list", "0"], ["xl", "network-list", "0"], ["xentop", "-b", "-i", "1"],
]  # fmt: skip

_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
tool, args = sys.argv[2], sys.argv[3:]
module = __import__("simxen." + tool, fromlist=["main"])
rc = module.main([tool, *args])
print(" ".join(sorted(sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", COMMON, ids=" ".join)
def test_common_verbs_import_nothing_heavy(tmp_path: Path, argv: list[str]) -> None:
    host = SimHost.prepare(tmp_path / "hosts", "xencost")
    proc = subprocess.run(
        [wrapper_python(), "-I", "-S", "-c", _PROBE, str(PACKAGE_ROOT), *argv],
        capture_output=True, text=True, timeout=60, env={**os.environ, "SIMXEN_STATE": str(host.state_dir)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    modules = set(proc.stderr.split("\n")[-2].split())
    assert "simxen.xl" in modules or "simxen.xentop" in modules
    assert modules & HEAVY == set()


def test_the_wrappers_start_an_isolated_interpreter_without_site(tmp_path: Path) -> None:
    host = SimHost.prepare(tmp_path / "hosts", "xencost")
    wrapper = host.bin_dir / zygote.fallback_name("xl")  # what bin/xl runs without its fork server
    text = (wrapper if wrapper.exists() else host.xl_path).read_text()
    assert f"exec {wrapper_python()} -I -S -c " in text and "from simxen.xl import command" in text


def _wait_for_server(host: SimHost) -> None:
    deadline = time.monotonic() + 15
    while not zygote.answering(host.bin_dir):
        assert time.monotonic() < deadline, "the fork server did not start"
        time.sleep(0.02)


def test_the_fork_server_runs_calls_as_the_wrapper_does(tmp_path: Path) -> None:
    host = SimHost.prepare(tmp_path / "hosts", "xencost")
    if not (host.bin_dir / zygote.fallback_name("xl")).exists():
        pytest.skip("no C compiler: bin/xl is the Python wrapper")
    host.add_wild_domain("guest1")
    _wait_for_server(host)
    wrapper = str(host.bin_dir / zygote.fallback_name("xl"))
    (tmp_path / "cwd").mkdir()
    env = {**os.environ, "TZ": "UTC"}
    # (list and info show running times, which move between two calls: compared without stdout)
    for args in (
        ["list"],
        ["info"],
        ["nosuch"],
        ["domid", "nosuch"],
        [],
        ["help", "list"],
        ["domid", "guest1"],
    ):
        via_server = subprocess.run(
            [str(host.xl_path), *args], capture_output=True, timeout=60, cwd=tmp_path / "cwd", env=env
        )
        direct = subprocess.run(
            [wrapper, *args], capture_output=True, timeout=60, cwd=tmp_path / "cwd", env=env
        )
        assert (via_server.returncode, via_server.stderr) == (direct.returncode, direct.stderr), args
        if args[:1] not in (["list"], ["info"]):
            assert via_server.stdout == direct.stdout, args
    server = host.zygote_pid
    assert server is not None
    calls = host.calls()
    served, direct = [c["pid"] for c in calls[0::2]], [c["pid"] for c in calls[1::2]]
    # One after another, the server's calls ran in one of its workers (no fork each); the
    # wrapper's each in a new interpreter.
    assert len(set(served)) == 1 and _parent(served[0]) == server
    assert len(set(direct)) == len(direct) and served[0] not in direct
    # stdin is the caller's too
    out = subprocess.run([str(host.xl_path), "domid", "guest1"], input=b"", capture_output=True, timeout=60)
    assert out.stdout.strip() == b"1"
    host.stop()
    assert host.zygote_pid is None and not zygote.answering(host.bin_dir)
    assert host.run_xl("domid", "guest1").stdout.strip() == "1"  # the Python wrapper takes over


def test_a_killed_client_ends_its_call(tmp_path: Path) -> None:
    host = SimHost.prepare(tmp_path / "hosts", "xencost")
    if not (host.bin_dir / zygote.fallback_name("xl")).exists():
        pytest.skip("no C compiler: bin/xl is the Python wrapper")
    _wait_for_server(host)
    host.hang("list")
    proc = subprocess.run(["timeout", "0.5", str(host.xl_path), "list"], capture_output=True, timeout=60)
    assert proc.returncode == 124
    server = host.zygote_pid
    assert server is not None
    deadline = time.monotonic() + 5
    while zygote.running_calls(server):
        assert time.monotonic() < deadline, "the hung call outlived its client"
        time.sleep(0.02)
    # ...and the next call is served (by another worker: the hung one was killed)
    host.clear_faults()
    assert host.run_xl("list").returncode == 0
    host.stop()


def test_a_worker_carries_nothing_into_the_next_call(tmp_path: Path) -> None:
    host = SimHost.prepare(tmp_path / "hosts", "xencost")
    if not (host.bin_dir / zygote.fallback_name("xl")).exists():
        pytest.skip("no C compiler: bin/xl is the Python wrapper")
    host.add_wild_domain("guest1")
    _wait_for_server(host)
    expected = host.run_xl("domid", "guest1")
    assert expected.stdout == "1\n"
    worker = host.calls()[-1]["pid"]
    # A call whose output could not be written (its reader went away) would hand what is left
    # in its buffers to the next call: its worker leaves instead.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [str(host.xl_path), "list", "-l"], stdout=write_end, stderr=subprocess.PIPE, timeout=60
        )
    finally:
        os.close(write_end)
    assert proc.returncode != 0
    assert host.run_xl("domid", "guest1").stdout == expected.stdout
    assert host.calls()[-1]["pid"] != worker
    # A call that started threads (the real parser's subprocess) is the last of its worker too.
    worker = host.calls()[-1]["pid"]
    (tmp_path / "g.cfg").write_text('name = "g2"\nmemory = 64\nkernel = "/boot/vmlinuz"\n')
    assert host.run_xl("-N", "create", "g.cfg", cwd=tmp_path).returncode == 0
    assert host.run_xl("domid", "guest1").stdout == expected.stdout
    assert host.calls()[-1]["pid"] != worker
    # The workers that left are gone and reaped: one idle worker is all the server has.
    server = host.zygote_pid
    assert server is not None
    deadline = time.monotonic() + 5
    while _zombies(server):
        assert time.monotonic() < deadline, "a worker that left was never reaped"
        time.sleep(0.02)
    assert [idle for _, idle in zygote.children(server)] == [True]
    host.stop()


def _zombies(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text() if entry.isdigit() else ""
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields and fields[0] == "Z" and int(fields[1]) == parent:
            found.append(int(entry))
    return found


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def test_a_read_only_command_does_not_rewrite_the_state(tmp_path: Path) -> None:
    host = SimHost.prepare(tmp_path / "hosts", "xencost")
    host.add_wild_domain("guest1")
    state = host.state_dir / "state.json"
    before = state.stat()
    first = host.run_xl("list", "guest1").stdout
    for args in (["list"], ["info"], ["domid", "guest1"], ["list", "-l"], ["sched-credit"]):
        assert host.run_xl(*args).returncode == 0
    assert host.run_xentop("-b", "-i", "1").returncode == 0
    after = state.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # ...while time still passes for the guests: the next reader advances the stored state
    assert float(host.run_xl("list", "guest1").stdout.split()[-1]) >= float(first.split()[-1])
    # and a command that changes something writes it
    assert host.run_xl("pause", "guest1").returncode == 0
    assert state.stat().st_ino != before.st_ino
    assert "--p---" in host.run_xl("list", "guest1").stdout


def test_concurrent_calls_share_the_state_safely(tmp_path: Path) -> None:
    host = SimHost.prepare(tmp_path / "hosts", "xencost")
    guests = [host.add_wild_domain(f"g{i}") for i in range(4)]
    host.fail("domid", rc=3, stderr="injected", count=5)
    jobs = [["domid", "Domain-0"]] * 16
    jobs += [["sched-credit", "-d", f"g{i}", "-w", str(100 + i)] for i in range(4)]
    jobs += [["list"], ["info"], ["list", "-l"], ["pause", "g0"]] * 2
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda args: host.run_xl(*args), jobs))
    domid_rcs = sorted(r.returncode for r, args in zip(results, jobs, strict=True) if args[0] == "domid")
    assert domid_rcs == [0] * 11 + [3] * 5  # a counted fault is used up exactly once per call
    assert all(r.returncode == 0 for r, args in zip(results, jobs, strict=True) if args[0] != "domid")
    out = host.run_xl("sched-credit").stdout
    for i, domid in enumerate(guests):
        assert f"g{i}".ljust(33) + f" {domid:4d} {100 + i:6d}    0" in out  # no update was lost
    assert "--p---" in host.run_xl("list", "g0").stdout


# ----------------------------------------------------------------------------- records


@records.dataclass
class _Rec:
    name: str
    count: int = 3
    tags: list[str] = records.field(default_factory=list)
    hidden: str = records.field(default="x", repr=False)


@dataclasses.dataclass
class _Real:
    name: str
    count: int = 3
    tags: list[str] = dataclasses.field(default_factory=list)
    hidden: str = dataclasses.field(default="x", repr=False)


@records.dataclass(frozen=True)
class _Frozen:
    a: int
    b: str = "b"


@records.dataclass
class _Child(_Rec):
    extra: float = 1.5
    count: int = 7  # redefined: keeps its place, new default


def test_records_behave_like_dataclasses() -> None:
    rec, real = _Rec("n", tags=["t"]), _Real("n", tags=["t"])
    assert repr(rec).replace("_Rec", "X") == repr(real).replace("_Real", "X")
    assert records.asdict(rec) == dataclasses.asdict(real)
    assert [f.name for f in records.fields(_Rec)] == [f.name for f in dataclasses.fields(_Real)]
    assert rec == _Rec("n", 3, ["t"]) and rec != _Rec("m", tags=["t"])
    assert _Rec("a").tags is not _Rec("a").tags  # a fresh default each time
    assert not hasattr(_Rec, "tags") and _Rec.count == 3  # as dataclasses leave the class
    assert records.replace(rec, count=5) == _Rec("n", 5, ["t"])
    with pytest.raises(TypeError):
        hash(rec)  # mutable and comparable: unhashable, as a dataclass
    for bad in ({}, {"name": "n", "nosuch": 1}, {"name": "n", "count": 1, "extra": 2}):
        with pytest.raises(TypeError):
            _Rec(**bad)
    with pytest.raises(TypeError):
        _Rec("n", 1, [], "h", "too many")
    with pytest.raises(TypeError):
        _Rec("n", name="again")  # type: ignore[misc]


def test_frozen_records_and_inheritance() -> None:
    f = _Frozen(1)
    with pytest.raises(records.FrozenInstanceError):
        f.a = 2  # type: ignore[misc]
    assert hash(f) == hash(_Frozen(1)) and f == _Frozen(1, "b") and {f, _Frozen(1)} == {f}
    child = _Child("c")
    assert [x.name for x in records.fields(child)] == ["name", "count", "tags", "hidden", "extra"]
    assert (child.count, child.extra) == (7, 1.5)


def test_records_run_post_init() -> None:
    from simxen.inject import Fault

    with pytest.raises(ValueError, match="fault mode"):
        Fault("list", mode="explode")
    assert records.asdict(Fault("list", count=2))["count"] == 2


# ----------------------------------------------------------------------------- fastjson

DOCS: list[Any] = [
    {"a": [1, 2.5, None, True, False, 'é\n"\\x\u0001'], "b": {}, "c": 1e300, "d": -0.0, "e": []},
    [{"nested": [[{}]]}],
    "text",
    12345678901234567890,
    {"inf": float("inf"), "nan": float("nan")},
]


@pytest.mark.parametrize("doc", DOCS)
def test_fastjson_writes_and_reads_as_json_does(doc: Any) -> None:
    text = fastjson.dumps(doc)
    assert text == json.dumps(doc)
    assert repr(fastjson.loads(text)) == repr(json.loads(text))
    assert repr(fastjson.loads(f" \n{text}\t ")) == repr(json.loads(text))


def test_fastjson_errors_are_jsons() -> None:
    for bad in ("", "{", "{} x", "nul", "[1,]"):
        with pytest.raises(json.JSONDecodeError) as got:
            fastjson.loads(bad)
        with pytest.raises(json.JSONDecodeError) as expected:
            json.loads(bad)
        assert str(got.value) == str(expected.value)
    with pytest.raises(TypeError, match="not JSON serializable"):
        fastjson.dumps({"x": object()})
    with pytest.raises(ValueError):
        loop: list[Any] = []
        loop.append(loop)
        fastjson.dumps(loop)
    assert fastjson.dumps([1]) == "[1]"  # the failed calls left no markers behind
