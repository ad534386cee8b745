"""The runtime image: built once, reused when nothing changed, and it records what it holds."""

from __future__ import annotations

import json

import pytest

from harness.containers import docker_client
from harness.images import PINNED, build_runtime, runtime_tag

pytestmark = pytest.mark.usefixtures("docker")


def test_building_again_with_nothing_changed_reuses_the_image() -> None:
    lines: list[str] = []
    before = docker_client().images.get(runtime_tag()).id
    build_runtime(log=lines.append)
    assert any("is up to date" in line for line in lines), lines
    assert docker_client().images.get(runtime_tag()).id == before


def test_the_image_records_its_versions_and_holds_no_challenge_files() -> None:
    output = docker_client().containers.run(
        runtime_tag(), ["sh", "-c", "cat /opt/cvgrade/versions.json; ls /opt/cvgrade /opt/cvgrade/worker"],
        remove=True, network_mode="none",
    ).decode()
    versions = json.loads(output.splitlines()[0])
    assert versions["torch"].startswith(PINNED[0].split("==")[1])
    assert versions["torchvision"].startswith(PINNED[1].split("==")[1])
    listing = output.splitlines()[1:]
    assert "candidate_worker.py" in listing and "wire.py" in listing
    assert not any("hidden" in name or "challenge" in name or "reference" in name for name in listing)
