"""simxen: a simulated Xen 4.17 host for onexen's tests and demo.

A simulated host is a real OpenSSH ``sshd`` on 127.0.0.1 whose ``xl``, ``xentop`` and
``sudo`` are the simulated toolstack of this package (see ``simxen.host``).

This module must stay import-light: the simulated ``xl`` imports ``simxen`` on every call.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
