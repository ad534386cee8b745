"""The runtime image: built once, reused when nothing changed, and it records what it holds."""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path

import pytest

from harness.containers import docker_client
from harness.images import BASE_TAG, PINNED, build_removing_stale_images, build_runtime, runtime_tag

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


def _context(tmp_path: Path, stage: str, final: str | None = None) -> Path:
    """A two-stage build from the base, as the runtime's is: its first stage writes ``stage``, its last is
    labelled ``final``. Tokens no earlier build used make stages no cache holds."""
    context = tmp_path / uuid.uuid4().hex
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {BASE_TAG} AS first\nRUN echo {stage} > /made\n"
        f"FROM {BASE_TAG}\nCOPY --from=first /made /made\nLABEL org.cvgrade.test={final or stage}\n"
    )
    return context


def _untagged() -> set[str]:
    return {image.id for image in docker_client().images.list(filters={"dangling": True})}


def _all() -> set[str]:
    return {image.id for image in docker_client().images.list(all=True)}


def test_a_build_keeps_its_stages_as_cache_and_removes_what_earlier_builds_left_but_no_one_elses(
    tmp_path: Path,
) -> None:
    client = docker_client()
    there_already = _untagged()
    records = tmp_path / "records"
    tag = f"cvgrade-test/leftovers:{uuid.uuid4().hex[:8]}"
    # Someone else's untagged image: built, then its tag taken by another build of theirs.
    others = f"cvgrade-test/others:{uuid.uuid4().hex[:8]}"
    theirs, _ = client.images.build(path=str(_context(tmp_path, f"theirs-{uuid.uuid4().hex}")), tag=others, rm=True)
    client.images.build(path=str(_context(tmp_path, f"theirs-{uuid.uuid4().hex}")), tag=others, rm=True)
    try:
        stage_a, stage_b = f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"
        before = _untagged()
        first = build_removing_stale_images(client, _context(tmp_path, stage_a, "one"), tag, records)
        kept = _untagged() - before
        assert len(kept) == 1, "the build's first stage is the next build's cache: it must be kept"
        # A change to the last stage only (the worker): the first stage comes from the cache and stays.
        second = build_removing_stale_images(client, _context(tmp_path, stage_a, "two"), tag, records)
        assert second != first and client.images.get(tag).id == second
        assert first not in _all(), "the image the rebuild replaced was left"
        assert kept <= _untagged(), "a stage the latest build used was removed"
        # A change to the first stage (the wheels): the old stage is removed, the new one kept.
        third = build_removing_stale_images(client, _context(tmp_path, stage_b, "three"), tag, records)
        assert second not in _all() and not kept & _all(), "what the earlier builds left was not removed"
        assert len(_untagged() - before) == 1 and client.images.get(tag).id == third
        assert theirs.id in _untagged(), "an untagged image no build of ours made was removed"
    finally:
        for name in (tag, others):
            with contextlib.suppress(Exception):
                client.images.remove(name)
        for image in _untagged() - there_already:  # the test's own builds' stages and "someone else's"
            with contextlib.suppress(Exception):
                client.images.remove(image)
