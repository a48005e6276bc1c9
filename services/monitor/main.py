"""The onexen-monitor process: probes hosts through the executor, imports wild VMs through the translator."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Mapping, Sequence

from onexen.runtime.config import (
    DEFAULT_PORTS,
    ServiceConfig,
    add_channel_options,
    add_option,
    channel_config,
    load_config,
)
from onexen.runtime.logging import configure_logging, get_logger
from onexen.runtime.server import StartupError, serve
from onexen.runtime.transport import open_channel
from services.monitor.engine import Monitor, Settings
from services.monitor.hub import DEFAULT_QUEUE_EVENTS
from services.monitor.probe_client import ExecutorProber, TranslatorImporter
from services.monitor.servicer import servicers

_DEFAULTS = Settings()


def _bounded(convert: Callable[[str], float], low: float, high: float, what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    parse.__name__ = what
    return parse


_positive_int = _bounded(int, 1, 1_000_000, "a whole number >= 1")
_seconds = _bounded(float, 0.001, 3600, "a number of seconds > 0")
_sample = _bounded(float, 0.001, 60, "a number of seconds in (0, 60]")
_mib = _bounded(int, 0, 1 << 30, "a number of MiB >= 0")


def add_monitor_options(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    add_channel_options(parser, environ, "executor", f"127.0.0.1:{DEFAULT_PORTS['executor']}")
    add_channel_options(parser, environ, "translator", f"127.0.0.1:{DEFAULT_PORTS['translator']}")
    add_option(
        parser,
        "--max-concurrent-probes",
        environ,
        default=_DEFAULTS.max_concurrent_probes,
        type=_positive_int,
        help="probes in flight at once, all hosts together (one per host at most)",
    )
    add_option(
        parser,
        "--probe-timeout",
        environ,
        default=_DEFAULTS.probe_timeout,
        type=_seconds,
        help="deadline of one Probe call; past it the host is in error",
    )
    add_option(
        parser,
        "--sample-seconds",
        environ,
        default=_DEFAULTS.sample_seconds,
        type=_sample,
        help="xentop sampling interval of routine probes (CPU%% comes from CPU-time deltas)",
    )
    add_option(
        parser,
        "--first-sample-seconds",
        environ,
        default=_DEFAULTS.first_sample_seconds,
        type=_sample,
        help="xentop sampling interval of a host's first probe, whose CPU%% is reported as is",
    )
    add_option(
        parser,
        "--import-timeout",
        environ,
        default=_DEFAULTS.import_timeout,
        type=_seconds,
        help="deadline of one TranslatorService/Import call for a wild VM",
    )
    add_option(
        parser,
        "--dom0-min-memory-mib",
        environ,
        default=_DEFAULTS.dom0_min_memory_mib,
        type=_mib,
        help="memory a ballooning Domain-0 keeps; what it holds above counts as FREEMEMORY",
    )
    add_option(
        parser,
        "--watch-queue-events",
        environ,
        default=DEFAULT_QUEUE_EVENTS,
        type=_positive_int,
        help="events queued for one Watch stream before it is dropped and resynced",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        max_concurrent_probes=args.max_concurrent_probes,
        probe_timeout=args.probe_timeout,
        sample_seconds=args.sample_seconds,
        first_sample_seconds=args.first_sample_seconds,
        import_timeout=args.import_timeout,
        dom0_min_memory_mib=args.dom0_min_memory_mib,
        watch_queue_events=args.watch_queue_events,
    )


async def serve_monitor(config: ServiceConfig, args: argparse.Namespace) -> None:
    """Serve until SIGTERM/SIGINT; then stop the probe loops and close the peer channels."""
    executor = open_channel(channel_config(args, "executor"))
    translator = open_channel(channel_config(args, "translator"))
    monitor = Monitor(ExecutorProber(executor), TranslatorImporter(translator), settings_from(args))
    try:
        await serve(config, servicers(monitor))
    finally:
        await monitor.close()
        await executor.close()
        await translator.close()


def main(argv: Sequence[str] | None = None) -> None:
    config, args = load_config("monitor", argv, add_options=add_monitor_options)
    configure_logging(config.log_level, config.log_format)
    try:
        asyncio.run(serve_monitor(config, args))
    except StartupError as exc:
        get_logger(__name__).error("startup_failed", service="monitor", error=str(exc))
        sys.exit(1)


if __name__ == "__main__":
    main()
