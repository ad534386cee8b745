"""The runtime image: built once, reused when nothing changed, and it records what it holds."""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path

import pytest

from harness.containers import docker_client
from harness.images import BASE_TAG, PINNED, build_leaving_nothing_behind, build_runtime, runtime_tag

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


def _context(tmp_path: Path, token: str) -> Path:
    """A two-stage build from the base, as the runtime's is, that no earlier build can have cached."""
    context = tmp_path / token
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {BASE_TAG} AS first\nRUN echo {token} > /made\n"
        f"FROM {BASE_TAG}\nCOPY --from=first /made /made\nLABEL org.cvgrade.test={token}\n"
    )
    return context


def _untagged() -> set[str]:
    return {image.id for image in docker_client().images.list(filters={"dangling": True})}


def test_a_build_removes_the_stages_and_the_old_image_it_left_untagged_but_no_one_elses(tmp_path: Path) -> None:
    client = docker_client()
    there_already = _untagged()
    tag = f"cvgrade-test/leftovers:{uuid.uuid4().hex[:8]}"
    # Someone else's untagged image: built, then its tag taken by another build of theirs.
    others = f"cvgrade-test/others:{uuid.uuid4().hex[:8]}"
    theirs, _ = client.images.build(path=str(_context(tmp_path, f"theirs-{uuid.uuid4().hex}")), tag=others, rm=True)
    client.images.build(path=str(_context(tmp_path, f"theirs-{uuid.uuid4().hex}")), tag=others, rm=True)
    try:
        assert theirs.id in _untagged()
        before = _untagged()
        first = build_leaving_nothing_behind(client, _context(tmp_path, f"one-{uuid.uuid4().hex}"), tag)
        assert _untagged() <= before, "the first stage of the build was left behind"
        second = build_leaving_nothing_behind(client, _context(tmp_path, f"two-{uuid.uuid4().hex}"), tag)
        assert second != first and client.images.get(tag).id == second
        assert first not in {image.id for image in client.images.list(all=True)}, "the replaced image was left"
        assert _untagged() <= before
        assert theirs.id in _untagged(), "an untagged image this build did not make was removed"
    finally:
        for name in (tag, others):
            with contextlib.suppress(Exception):
                client.images.remove(name)
        for image in _untagged() - there_already:  # the test's own "someone else" builds
            with contextlib.suppress(Exception):
                client.images.remove(image)
