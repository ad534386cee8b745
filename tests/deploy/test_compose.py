"""The deployment's compose file is valid and says what docs/deploy.md promises.

Images cannot be pulled here, so the file is checked, not run: ``docker-compose
config`` (Debian's docker-compose) parses and resolves it, and the resolved
file is read back for the properties that matter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"


def resolved(**env: str) -> dict[str, Any]:
    tool = shutil.which("docker-compose")
    if tool is None:
        message = "docker-compose is needed to check deploy/compose.yaml (apt-get install docker-compose)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run([tool, "-f", str(COMPOSE), "config"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env}, check=False)
    assert done.returncode == 0, done.stderr
    import yaml

    return yaml.safe_load(done.stdout)  # type: ignore[no-any-return]


def test_the_compose_file_is_valid_and_wires_service_workers_database_and_broker() -> None:
    config = resolved(CVGRADE_DB_PASSWORD="example")
    services = config["services"]
    assert set(services) == {"postgres", "redis", "service", "worker"}
    assert services["service"]["environment"]["CVGRADE_BROKER_URL"] == "redis://redis:6379/0"
    assert services["service"]["environment"]["CVGRADE_DATABASE_URL"].startswith("postgresql://cvgrade:example@")
    assert "--appendonly" in services["redis"]["command"]


def test_workers_get_the_gpus_and_the_engine_and_the_service_gets_neither() -> None:
    services = resolved(CVGRADE_DB_PASSWORD="example")["services"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert [(d["driver"], d["capabilities"]) for d in devices] == [("nvidia", ["gpu"])]
    mounts = json.dumps(services["worker"]["volumes"])
    assert "/var/run/docker.sock" in mounts
    assert "docker.sock" not in json.dumps(services["service"].get("volumes", []))
    assert "deploy" not in services["service"]


def test_the_database_password_is_required_not_defaulted() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed")
    env = {key: value for key, value in os.environ.items() if key != "CVGRADE_DB_PASSWORD"}
    done = subprocess.run([tool, "-f", str(COMPOSE), "config"], capture_output=True, text=True, timeout=60,
                          env=env, check=False)
    assert done.returncode != 0 and "CVGRADE_DB_PASSWORD" in done.stderr
