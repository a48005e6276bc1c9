"""The onexen-monitor process."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

from onexen.runtime.config import DEFAULT_PORTS, add_channel_options, load_config
from onexen.runtime.server import run
from services.monitor.servicer import add_to_server


def add_monitor_options(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    # The monitor probes hosts through the executor and asks the translator to
    # import wild VMs: --executor / --translator and their TLS settings. Accepted
    # now so compose can pass them; the channels open with the monitoring issue.
    add_channel_options(parser, environ, "executor", f"127.0.0.1:{DEFAULT_PORTS['executor']}")
    add_channel_options(parser, environ, "translator", f"127.0.0.1:{DEFAULT_PORTS['translator']}")


def main(argv: Sequence[str] | None = None) -> None:
    config, _ = load_config("monitor", argv, add_options=add_monitor_options)
    run(config, add_to_server)


if __name__ == "__main__":
    main()
