"""The executor serves its inventory: every named host, how it is reached, never key material."""

from pathlib import Path

import grpc

from onexen.runtime.config import ServiceConfig
from onexen.runtime.server import started_server
from onexen.v1 import executor_pb2, executor_pb2_grpc
from services.executor.inventory import load_inventory
from services.executor.servicer import servicers


async def test_list_hosts_serves_the_inventory_without_keys(tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(
        """
        [defaults]
        key = "/secret/id_ed25519"
        FORCE_DESTROY = true
        [hosts.xen2]
        address = "127.0.0.1"
        port = 2202
        [hosts.xen1]
        address = "127.0.0.1"
        port = 2201
        XM_PATH = "/opt/xen/bin/xl"
        """
    )
    config = ServiceConfig(service="executor", port=0, grace_seconds=0.1)
    async with (
        started_server(config, servicers(load_inventory(path))) as server,
        grpc.aio.insecure_channel(server.target) as channel,
    ):
        reply = await executor_pb2_grpc.ExecutorServiceStub(channel).ListHosts(
            executor_pb2.ListHostsRequest(), timeout=5
        )
    assert [(h.name, h.port, h.xl_path, h.force_destroy) for h in reply.hosts] == [
        ("xen1", 2201, "/opt/xen/bin/xl", True),
        ("xen2", 2202, "/usr/sbin/xl", True),
    ]
    assert "/secret" not in str(reply)
