"""Build (idempotently) the cached dom0 image, the guest material inside it, and the lab's client key."""

from __future__ import annotations

import datetime
import fcntl
import json
import lzma
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import preflight
from .errors import LabError, Refused
from .recipe import RECIPE, SUITE, Cache, Image, base_hash, dom0_packages, host_packages, image_hash
from .util import log, run

IMAGE_SIZE = "4G"  # sparse; about 1.3 GB is used
ONEADMIN_UID = 9869  # OpenNebula's packages create oneadmin with this uid/gid
GUEST_DIR = "var/lib/xenlab/guest"
GUEST_MODULES = ("drivers/block/xen-blkfront.ko", "drivers/net/xen-netfront.ko")
# what dom0's own initramfs loads (with their dependencies) to mount its root filesystem
DOM0_INITRD_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")


def build(cache: Cache, *, force: bool = False) -> Image:
    """The current image, built first when the recipe changed or nothing is cached."""
    digest = image_hash()  # once: the recipe may be edited while a build runs
    image = Image(cache.image_dir(digest))
    if image.complete() and cache.client_key.is_file() and not force:
        return image
    preflight.check_machine(build_dir=cache.root, packages=host_packages())
    if os.geteuid() != 0:
        raise Refused("root", "building the lab needs root (debootstrap, chroot): run as root")
    ensure_host_packages()
    cache.root.mkdir(parents=True, exist_ok=True)
    with _locked(cache.lock):
        ensure_client_key(cache.client_key)
        if image.complete() and not force:  # another build finished while we waited
            return image
        t0 = time.monotonic()
        cache.log.write_text(f"xenlab build {datetime.datetime.now().isoformat(timespec='seconds')}\n")
        base = ensure_base(cache)
        make_image(cache, base, image, digest)
        prune(cache, keep={base, image.dir})
        log(f"build done in {time.monotonic() - t0:.0f}s: {image.dir}")
    return image


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another xenlab build ({path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_host_packages() -> None:
    missing = preflight.missing_packages(host_packages())
    if not missing:
        return
    log(f"installing host packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def ensure_client_key(key: Path) -> None:
    if key.is_file() and key.with_suffix(".pub").is_file():
        return
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "onexen-xenlab-client", "-f", key])
    log(f"generated the lab's client key {key}")


def mirror() -> str:
    """XENLAB_MIRROR, else the Debian mirror the machine's apt sources name for bookworm."""
    if os.environ.get("XENLAB_MIRROR"):
        return os.environ["XENLAB_MIRROR"]
    sources = Path("/etc/apt/sources.list.d")
    texts = [p.read_text() for p in sorted(sources.glob("*.sources"))] if sources.is_dir() else []
    for text in texts:
        for stanza in text.split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if SUITE in fields.get("Suites", "").split() and "deb" in fields.get("Types", "").split():
                return str(fields["URIs"].split()[0])
    listing = Path("/etc/apt/sources.list")
    if listing.is_file():
        match = re.search(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", listing.read_text(), re.M)
        if match:
            return match.group(1)
    raise LabError("no Debian bookworm mirror in the apt sources: set XENLAB_MIRROR")


def ensure_base(cache: Cache) -> Path:
    """The pristine debootstrap root filesystem (never modified once made)."""
    base = cache.base()
    if base.is_dir():
        log(f"base root filesystem: cached ({base.name})")
        return base
    tmp = base.with_name(base.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    cache.debs.mkdir(parents=True, exist_ok=True)
    source = mirror()
    log(f"base root filesystem: debootstrap {SUITE} from {source} (log: {cache.log})")
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--cache-dir={cache.debs}",
            f"--include={','.join(dom0_packages())}",
            SUITE,
            tmp,
            source,
        ],
        logfile=cache.log,
    )
    tmp.rename(base)
    return base


def kernel_version(rootfs: Path) -> str:
    versions = sorted((p.name for p in (rootfs / "lib/modules").iterdir()), key=_version_key)
    if not versions:
        raise LabError(f"no kernel in {rootfs}/lib/modules")
    return versions[-1]


def _version_key(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", text)]


def make_image(cache: Cache, base: Path, image: Image, digest: str) -> None:
    work = image.dir.with_name(image.dir.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rootfs = work / "rootfs"
    log("dom0: copying the base root filesystem")
    run(["cp", "-a", "--reflink=auto", base, rootfs])
    kver = kernel_version(rootfs)
    configure_dom0(cache, rootfs)
    make_guest_material(rootfs, kver, work)
    out = Image(work)
    xen = sorted((rootfs / "boot").glob("xen-4.17*-amd64.gz"))
    if not xen:
        raise LabError("no /boot/xen-4.17*-amd64.gz in dom0")
    # Xen's gzipped image uncompressed is a 32-bit multiboot ELF that QEMU's -kernel loads.
    run(["sh", "-c", 'zcat "$1" > "$2"', "sh", xen[-1], out.xen])
    shutil.copyfile(rootfs / f"boot/vmlinuz-{kver}", out.kernel)
    make_dom0_initrd(rootfs, kver, work / "dom0-initramfs", out.initrd)
    log(f"dom0: mkfs.ext4 -d -> {image.disk} ({IMAGE_SIZE} sparse)")
    run(["truncate", "-s", IMAGE_SIZE, out.disk])
    run(["mkfs.ext4", "-q", "-F", "-L", "xenroot", "-d", rootfs, out.disk], logfile=cache.log)
    shutil.rmtree(rootfs)
    stamp = {
        "recipe": digest,
        "base": base_hash(),
        "kernel": kver,
        "xen": xen[-1].name,
        "built_at": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    out.stamp.write_text(json.dumps(stamp, indent=2) + "\n")
    shutil.rmtree(image.dir, ignore_errors=True)
    work.rename(image.dir)


def chroot(rootfs: Path, *argv: str, cache: Cache) -> None:
    run(["chroot", rootfs, *argv], logfile=cache.log)


def configure_dom0(cache: Cache, rootfs: Path) -> None:
    log("dom0: configuring (busybox init, sshd, oneadmin, sudo, xen)")
    # Host keys made by openssh-server's postinst would be shared by every lab host: each host
    # gets its own from `xenlab up` instead, on the config drive.
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    shutil.copytree(RECIPE / "dom0", rootfs, dirs_exist_ok=True, symlinks=True)
    (rootfs / "etc/sudoers.d/onexen-xenlab").chmod(0o440)
    chroot(rootfs, "visudo", "-c", "-f", "/etc/sudoers.d/onexen-xenlab", cache=cache)
    init = rootfs / "sbin/init"
    init.unlink(missing_ok=True)
    init.symlink_to("/bin/busybox")
    (rootfs / "etc/fstab").write_text("# root is mounted by the initramfs; the rest by /etc/xenlab/rc.sh\n")
    uid = str(ONEADMIN_UID)
    chroot(rootfs, "groupadd", "--gid", uid, "oneadmin", cache=cache)
    chroot(
        rootfs,
        "useradd",
        "--uid",
        uid,
        "--gid",
        uid,
        "--home-dir",
        "/var/lib/one",
        "--create-home",
        "--shell",
        "/bin/bash",
        "oneadmin",
        cache=cache,
    )
    for path in ("var/lib/one/datastores/0", "var/tmp/one"):
        directory = rootfs / path
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        for owned in (directory, *directory.parents):
            if owned == rootfs / "var/lib/one" or owned == rootfs / "var/tmp":
                break
            os.chown(owned, ONEADMIN_UID, ONEADMIN_UID)


def make_guest_material(rootfs: Path, kver: str, work: Path) -> None:
    """/var/lib/xenlab/guest in dom0: kernel, busybox initramfs, xl configs, file-backed disks."""
    log(f"guest material: /{GUEST_DIR} (kernel {kver} + busybox initramfs)")
    guest = rootfs / GUEST_DIR
    guest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(rootfs / f"boot/vmlinuz-{kver}", guest / "vmlinuz")
    tree = work / "guest-initramfs"
    make_guest_tree(rootfs, kver, tree)
    pack_initramfs(tree, guest / "initrd.cpio.gz")
    shutil.rmtree(tree)
    for cfg in sorted((RECIPE / "guest/cfg").glob("*.cfg")):
        shutil.copyfile(cfg, guest / cfg.name)
    marker = work / "disk1-content"
    marker.mkdir()
    (marker / "XENLAB-DISK1").write_text("onexen xenlab test disk 1\n")
    run(["truncate", "-s", "64M", guest / "disk1.img"])
    run(["mkfs.ext4", "-q", "-F", "-L", "xenlab-disk1", "-d", marker, guest / "disk1.img"])
    shutil.rmtree(marker)
    run(["truncate", "-s", "32M", guest / "disk2.img"])
    for path in guest.iterdir():
        path.chmod(0o644)


def busybox_tree(rootfs: Path, tree: Path) -> None:
    """A root for an initramfs: the static busybox of dom0 and a link for each of its applets."""
    for sub in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "run",
                "mnt", "lib/modules"):  # fmt: skip
        (tree / sub).mkdir(parents=True, exist_ok=True)
    busybox = tree / "bin/busybox"
    shutil.copy2(rootfs / "bin/busybox", busybox)  # busybox-static: needs no libc
    for applet in run([busybox, "--list-full"]).split():
        link = tree / applet
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")


def pack_initramfs(tree: Path, out: Path) -> None:
    pack = 'cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible | gzip -9n > "$2"'
    run(["sh", "-c", pack, "sh", tree, out])


def copy_module(source: Path, target: Path) -> None:
    data = source.read_bytes()
    target.write_bytes(lzma.decompress(data) if source.suffix == ".xz" else data)


def module_load_order(rootfs: Path, kver: str, names: tuple[str, ...]) -> list[Path]:
    """The module files to insmod, dependencies first (modprobe --show-depends in dom0's root)."""
    order: list[Path] = []
    for name in names:
        shown = run(["chroot", rootfs, "modprobe", "--show-depends", "--set-version", kver, name])
        for path in re.findall(r"^insmod (\S+)", shown, re.M):
            if rootfs / path.lstrip("/") not in order:
                order.append(rootfs / path.lstrip("/"))
    return order


def make_dom0_initrd(rootfs: Path, kver: str, tree: Path, out: Path) -> None:
    busybox_tree(rootfs, tree)
    for i, module in enumerate(module_load_order(rootfs, kver, DOM0_INITRD_MODULES)):
        copy_module(module, tree / "lib/modules" / f"{i:02d}-{module.name.split('.ko')[0]}.ko")
    shutil.copy2(RECIPE / "dom0-initramfs/init", tree / "init")
    pack_initramfs(tree, out)
    shutil.rmtree(tree)


def make_guest_tree(rootfs: Path, kver: str, tree: Path) -> None:
    busybox_tree(rootfs, tree)
    (tree / "init").symlink_to("/bin/busybox")
    shutil.copytree(RECIPE / "guest/initramfs", tree, dirs_exist_ok=True)
    modules = rootfs / "lib/modules" / kver / "kernel"
    for module in GUEST_MODULES:
        found = sorted(modules.glob(f"{module}*"))
        if not found:
            raise LabError(f"guest module {module} not found under {modules}")
        copy_module(found[0], tree / "lib/modules" / Path(module).name)


def prune(cache: Cache, keep: set[Path]) -> None:
    """Remove the stages of older recipes."""
    for path in cache.root.glob("*-*"):
        if path.is_dir() and path.name.startswith(("base-", "image-")) and path not in keep:
            log(f"removing the outdated {path.name}")
            shutil.rmtree(path, ignore_errors=True)
