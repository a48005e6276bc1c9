"""Exit codes and the two ways the lab stops: a refusal (this machine cannot run it) or a failure."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the lab could not be built or did not come up (the serial log tail is printed)
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3  # `xenlab status`: no lab is running
EXIT_REFUSED = 77  # this machine cannot run the lab (one line says why); 77 is the usual "skip" code


class LabError(Exception):
    """The lab failed: a build step, QEMU, or a host that never answered."""


class Refused(Exception):
    """This machine cannot run the lab. `reason` is a short key, the message one line."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
