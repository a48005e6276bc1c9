"""onexen's Xen lab: real Xen 4.17 hosts (Debian 12 dom0) under QEMU TCG, for the real-Xen test tier.

Standard library only, so `tools/xenlab/xenlab` runs with the system python3 before any virtualenv.
"""
