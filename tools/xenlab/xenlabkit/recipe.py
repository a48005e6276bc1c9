"""What the lab is built from, where it is cached, and the hashes that say when to rebuild.

The recipe is the files under tools/xenlab/recipe/ plus the build code itself. The cache keeps
two stages, each stamped with the hash of what it depends on:
  base-<h>/       a pristine debootstrap of the package list (rebuilt only when that list changes)
  image-<h>/      dom0.img and the boot files (rebuilt when anything in the recipe or build code changes)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPE = HERE.parent / "recipe"
REPO = HERE.parent.parent.parent

SUITE = "bookworm"
DEFAULT_CACHE = Path("/var/cache/onexen-xenlab")
BASE_FORMAT = "1"  # bump to force a new debootstrap with an unchanged package list


def packages(name: str) -> list[str]:
    """A package list file: one name per line, '#' comments."""
    words = []
    for line in (RECIPE / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words.append(line)
    return words


def dom0_packages() -> list[str]:
    return packages("packages.txt")


def host_packages() -> list[str]:
    return packages("host-packages.txt")


def _tree_digest(digest: hashlib._Hash, root: Path) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        executable = os.access(path, os.X_OK)
        digest.update(f"{rel}\0{int(executable)}\0".encode())
        digest.update(path.read_bytes())
        digest.update(b"\0")


def base_hash() -> str:
    digest = hashlib.sha256(f"{BASE_FORMAT}\0{SUITE}\0".encode())
    digest.update("\n".join(dom0_packages()).encode())
    return digest.hexdigest()[:16]


def image_hash() -> str:
    digest = hashlib.sha256(base_hash().encode())
    _tree_digest(digest, RECIPE)
    for module in ("build.py", "recipe.py"):
        digest.update((HERE / module).read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Cache:
    """The build cache. It survives between runs and is shared by every checkout on the machine."""

    root: Path

    @classmethod
    def from_env(cls) -> Cache:
        return cls(Path(os.environ.get("XENLAB_CACHE") or DEFAULT_CACHE))

    @property
    def lock(self) -> Path:
        return self.root / "build.lock"

    @property
    def debs(self) -> Path:
        return self.root / "debs"

    @property
    def log(self) -> Path:
        return self.root / "build.log"

    @property
    def client_key(self) -> Path:
        """The lab's client key (ed25519): oneadmin and root in every dom0 accept it."""
        return self.root / "ssh" / "id_ed25519"

    def base(self, digest: str | None = None) -> Path:
        return self.root / f"base-{digest or base_hash()}"

    def image_dir(self, digest: str | None = None) -> Path:
        return self.root / f"image-{digest or image_hash()}"


@dataclass(frozen=True)
class Image:
    """The outputs of a build: what QEMU boots."""

    dir: Path

    @property
    def disk(self) -> Path:
        return self.dir / "dom0.img"

    @property
    def xen(self) -> Path:
        return self.dir / "xen"

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"

    @property
    def stamp(self) -> Path:
        return self.dir / "built.json"

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.disk, self.xen, self.kernel, self.initrd, self.stamp))
