"""docker-compose.yml is checked against the compose specification (no Docker engine runs here)
and against what the deployment promises: one container per service from one image, health checks
that ask grpc.health.v1, and the executor's SSH material as secrets."""

import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


def load() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(COMPOSE.read_text())
    return data


def test_compose_file_matches_the_compose_specification() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_service_is_its_own_container_with_a_grpc_health_check() -> None:
    services = load()["services"]
    assert set(services) == {"translator", "executor", "monitor"}
    for name, service in services.items():
        assert service["build"] == "."
        test = service["healthcheck"]["test"]
        assert test[:4] == ["CMD", "python", "-m", "onexen.healthcheck"], name
        assert test[-1] == f"onexen.v1.{name.capitalize()}Service"
        port = test[-2].rsplit(":", 1)[1]
        assert port in service["command"], f"{name}: health check port {port} is not the one it serves"


def test_only_the_executor_gets_ssh_secrets() -> None:
    data = load()
    executor = data["services"]["executor"]
    assert {s["source"] for s in executor["secrets"]} == {"ssh_key", "known_hosts"}
    assert all("secrets" not in s for n, s in data["services"].items() if n != "executor")
    for secret in data["secrets"].values():
        assert secret["file"].startswith("./deploy/secrets/")


def test_the_healthcheck_module_the_containers_run_exists() -> None:
    import onexen.healthcheck

    assert callable(onexen.healthcheck.main)
