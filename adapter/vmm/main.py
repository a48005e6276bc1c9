"""one_vmm_grpc: the VM_MAD executable (`python -m adapter.vmm.main "<ARGUMENTS>"`)."""

from __future__ import annotations

from collections.abc import Sequence

from adapter.common.channels import adapter_channel
from adapter.common.clients import Peer
from adapter.common.lineio import LineWriter, Stdio, read_lines
from adapter.common.startup import launch
from adapter.vmm.actions import Ports, Settings, read_defaults
from adapter.vmm.config import VmmOptions, parse_options
from adapter.vmm.driver import VmmDriver
from adapter.vmm.services import GrpcExecutor, GrpcTranslator
from adapter.vmm.tm import LocalTransferManager
from onexen.runtime.logging import get_logger


async def run(options: VmmOptions, stdio: Stdio) -> None:
    log = get_logger("adapter.vmm")
    defaults = read_defaults(options.defaults)
    log.info(
        "started",
        threads=options.threads,
        retries=options.retries,
        parallel_per_host=options.parallel_per_host,
        timeout=options.timeout,
        type=options.deploy_type,
        defaults=str(options.defaults) if defaults else None,
        remotes=str(options.remotes),
        executor=options.executor.target,
        translator=options.translator.target,
    )
    async with (
        adapter_channel(options.executor) as executor,
        adapter_channel(options.translator) as translator,
    ):
        ports = Ports(
            executor=GrpcExecutor(executor, Peer("executor", options.executor.target)),
            translator=GrpcTranslator(translator, Peer("translator", options.translator.target)),
            tm=LocalTransferManager(options.remotes),
        )
        settings = Settings(
            timeout=options.timeout,
            retries=options.retries,
            deploy_type=options.deploy_type,
            defaults=defaults,
            shutdown_timeout=options.shutdown_timeout,
        )
        driver = VmmDriver(
            ports,
            settings,
            LineWriter(stdio.output_fd),
            concurrency=options.threads,
            parallel_per_host=options.parallel_per_host,
        )
        await driver.serve(read_lines(stdio.input_fd))


def main(argv: Sequence[str] | None = None) -> None:
    launch(argv, parse_options, run)


if __name__ == "__main__":
    main()
