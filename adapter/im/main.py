"""one_im_grpc: the IM_MAD executable onemonitord starts (`python -m adapter.im.main "<ARGUMENTS>"`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from adapter.common.channels import adapter_channel
from adapter.common.clients import Peer
from adapter.common.lineio import LineWriter, Stdio, read_lines
from adapter.common.startup import launch
from adapter.im.config import ImOptions, parse_options
from adapter.im.driver import ImDriver, ImSettings
from adapter.im.protocol import Network
from adapter.im.push import NetworkSink, Sink, load_public_key
from adapter.im.services import GrpcMonitor
from onexen.runtime.logging import get_logger


def network_sink(options: ImOptions) -> Callable[[Network], Sink]:
    def make(network: Network) -> Sink:
        address = options.monitord_address or network.monitor_address
        if address in ("", "auto"):
            # The agent used $SSH_CLIENT (the front-end as a host sees it); here monitord is local.
            address = "127.0.0.1"
        return NetworkSink(address, network.port, load_public_key(network.pubkey))

    return make


async def run(options: ImOptions, stdio: Stdio) -> None:
    get_logger("adapter.im").info(
        "started",
        threads=options.threads,
        retries=options.retries,
        messages=options.messages,
        monitor=options.monitor.target,
        datastore_location=options.datastore_location,
    )
    async with adapter_channel(options.monitor) as channel:
        settings = ImSettings(
            concurrency=options.threads,
            retries=options.retries,
            timeout=options.timeout,
            datastore_location=options.datastore_location,
        )
        driver = ImDriver(
            GrpcMonitor(channel, Peer("monitor", options.monitor.target)),
            LineWriter(stdio.output_fd),
            settings,
            network_sink=network_sink(options) if options.messages == "network" else None,
        )
        await driver.serve(read_lines(stdio.input_fd))


def main(argv: Sequence[str] | None = None) -> None:
    launch(argv, parse_options, run)


if __name__ == "__main__":
    main()
