"""The OpenNebula adapter: the VM_MAD and IM_MAD executables oned and onemonitord launch.

`one_vmm_grpc` (adapter.vmm) and `one_im_grpc` (adapter.im) speak OpenNebula's line
protocols on stdin/stdout and are gRPC clients of the translator, executor and monitor.
adapter.common holds what both share; adapter.scripted plays oned and onemonitord for
tests and the demo.
"""

import os as _os


def _plug_stderr() -> None:
    # oned and onemonitord close fd 2 before exec. Left free, the next descriptor any
    # library opens (gRPC's core opens several on import) would become "stderr" and get
    # its messages, or a socket would. /dev/null takes the place first; with an open
    # fd 2 (every other case) nothing happens.
    try:
        _os.fstat(2)
    except OSError:
        fd = _os.open(_os.devnull, _os.O_RDWR)
        if fd != 2:
            _os.dup2(fd, 2)
            _os.close(fd)


_plug_stderr()
