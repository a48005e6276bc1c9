"""The real libxl config parser as a Python API: ``xl -N`` under the project's LD_PRELOAD shim.

``dry_run()`` runs ``/usr/lib/xen-4.17/bin/xl -N create`` on a config and returns xl's exit
code, the JSON it printed and its stderr, exactly as a Xen 4.17 host would give them.  The
translator's tests use it as the proof oracle for generated configs; the simulated ``xl`` uses
it so that ``create``, ``block-attach`` and ``network-attach`` refuse what real xl refuses.

Each call is independent: its own temporary directory (config copy, xenstored socket), no
shared state, so calls may run concurrently from threads or processes.  The shim is compiled
once per source version into ``$XDG_CACHE_HOME/onexen`` (default ``~/.cache/onexen``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simxen.errors import XlParserUnavailable

__all__ = [
    "Result", "XlParserUnavailable", "available", "build_shim", "cache_dir", "dry_run", "dry_run_file",
    "parse_disk", "parse_nic", "real_xl", "run_real_xl",
]  # fmt: skip

REAL_XL = "/usr/lib/xen-4.17/bin/xl"
ENV_REAL_XL = "SIMXEN_REAL_XL"
ENV_SHIM = "SIMXEN_XLSHIM"
SHIM_SOURCE = Path(__file__).resolve().parent / "shim" / "xlshim.c"


@dataclass(frozen=True)
class Result:
    returncode: int
    json: Any | None  # the parsed JSON document (dict) when xl printed one
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def messages(self) -> list[str]:
        """stderr lines other than the "Parsing config from ..." banner."""
        return [ln for ln in self.stderr.splitlines() if ln and not ln.startswith("Parsing config from ")]

    @property
    def warnings(self) -> list[str]:
        """Messages of an accepted config (a bad MAC, ``memory="abc"``): xl exits 0 anyway."""
        return self.messages if self.ok else []


def real_xl() -> Path:
    return Path(os.environ.get(ENV_REAL_XL) or REAL_XL)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "onexen"


def _shim_name(source: bytes) -> str:
    return f"xlshim-{hashlib.sha256(source).hexdigest()[:16]}.so"


def build_shim(*, directory: Path | None = None) -> Path:
    """Compile the shim unless this version is already built; safe to race.

    The file name carries a hash of the source, so an edited shim gets a new file, and the build
    goes to a temporary name first: concurrent builders each rename a complete library into place.
    """
    override = os.environ.get(ENV_SHIM)
    if override:
        return Path(override)
    source = SHIM_SOURCE.read_bytes()
    target_dir = directory or cache_dir()
    target = target_dir / _shim_name(source)
    if target.exists():
        return target
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise XlParserUnavailable("no C compiler to build the xl shim: apt-get install gcc")
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".xlshim-", suffix=".so", dir=target_dir)
    os.close(fd)
    try:
        proc = subprocess.run(
            [gcc, "-shared", "-fPIC", "-O2", "-Wall", "-o", tmp, str(SHIM_SOURCE), "-ldl", "-lpthread"],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise XlParserUnavailable(f"building the xl shim failed:\n{proc.stderr}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return target


def available() -> bool:
    """True when the real parser can run here (xl installed, shim built or buildable)."""
    if not os.access(real_xl(), os.X_OK):
        return False
    try:
        build_shim()
    except (XlParserUnavailable, OSError):
        return False
    return True


def run_real_xl(
    args: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
    nr_cpus: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real xl with ``args`` (which should include ``-N``) under the shim."""
    xl = real_xl()
    if not os.access(xl, os.X_OK):
        raise XlParserUnavailable(f"{xl} not found: apt-get install xen-utils-4.17")
    shim = build_shim()
    with tempfile.TemporaryDirectory(prefix="xlshim-") as sockdir:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LD_PRELOAD": str(shim),
            "XLSHIM_SOCKDIR": sockdir,
            "LANG": "C",
        }
        if nr_cpus is not None:
            env["XLSHIM_NR_CPUS"] = str(nr_cpus)
        try:
            return subprocess.run(
                [str(xl), *args],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(
                e.cmd, 124, stdout="", stderr=f"simxen: xl parser timed out after {timeout:g} s\n"
            )


def _json_after(prefix: str, stdout: str) -> Any | None:
    text = stdout[len(prefix) :] if stdout.startswith(prefix) else stdout
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def dry_run(
    config: str | os.PathLike[str],
    *,
    extra: Sequence[str] = (),
    name: str = "domain.cfg",
    timeout: float = 30.0,
) -> Result:
    """``xl -N create`` on a config: a ``str`` is config *text*, a path-like is a file to read.

    ``extra`` are ``key=value`` overrides appended as on xl's command line.  For text, the file
    is written as ``name`` so messages read like ``domain.cfg:4: warning: ...``.
    """
    if isinstance(config, str):
        with tempfile.TemporaryDirectory(prefix="xlparse-") as tmp:
            Path(tmp, name).write_text(config)
            proc = run_real_xl(["-N", "create", name, *extra], cwd=tmp, timeout=timeout)
    else:
        proc = run_real_xl(["-N", "create", os.fspath(config), *extra], timeout=timeout)
    doc = _json_after("", proc.stdout) if proc.returncode == 0 else None
    return Result(proc.returncode, doc, proc.stdout, proc.stderr)


def dry_run_file(path: str | os.PathLike[str], *, extra: Sequence[str] = (), timeout: float = 30.0) -> Result:
    return dry_run(Path(path), extra=extra, timeout=timeout)


def parse_disk(words: Sequence[str], *, timeout: float = 30.0) -> Result:
    """A disk spec as ``xl block-attach`` reads it (positional ``file:/img,xvdb,w`` or key=value)."""
    proc = run_real_xl(["-N", "block-attach", "0", *words], timeout=timeout)
    doc = _json_after("disk: ", proc.stdout) if proc.returncode == 0 else None
    return Result(proc.returncode, doc, proc.stdout, proc.stderr)


def parse_nic(words: Sequence[str], *, timeout: float = 30.0) -> Result:
    """A vif spec as ``xl network-attach`` reads it (space-separated ``key=value`` words)."""
    proc = run_real_xl(["-N", "network-attach", "0", *words], timeout=timeout)
    doc = _json_after("vif: ", proc.stdout) if proc.returncode == 0 else None
    return Result(proc.returncode, doc, proc.stdout, proc.stderr)
