"""onexen-monitor: see servicer.py for the RPCs and main.py for the process."""
