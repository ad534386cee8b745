"""Building the candidate runtime image: a Debian base made locally, then our Dockerfile.

``build_runtime`` fetches the wheels on the host (pip, from its configured
indexes), assembles a build context (``harness/image/Dockerfile``, the wheels,
the worker's two files) and builds it with the engine. The context's
fingerprint is a label on the image: building again with nothing changed is a
no-op, and a change to the worker rebuilds only the last layers.

``bootstrap_base`` makes the base where no registry can be reached:
``debootstrap`` a minimal Debian with Python into a folder, then ``docker
import`` it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.cache import cache_dir
from harness.sandbox import SandboxUnavailable

BASE_TAG = "cvgrade/base:bookworm"
RUNTIME_TAG = "cvgrade/runtime:latest"
FINGERPRINT_LABEL = "org.cvgrade.fingerprint"
WORKER_FINGERPRINT_LABEL = "org.cvgrade.worker"
PINNED = ("torch==2.14.1", "torchvision==0.29.1", "numpy")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
_HARNESS = Path(__file__).resolve().parent
WORKER_FILES = (_HARNESS / "wire.py", _HARNESS / "worker" / "candidate_worker.py")
DOCKERFILE = _HARNESS / "image" / "Dockerfile"


def runtime_tag() -> str:
    """The runtime image to grade in and to build: ``CVGRADE_IMAGE``, else ``cvgrade/runtime:latest``.

    Two checkouts of cvgrade on one engine (a release and a branch under test) each
    keep their own image this way, since the image holds the worker of one version.
    """
    return os.environ.get("CVGRADE_IMAGE") or RUNTIME_TAG


def _docker_client() -> Any:
    import docker

    try:
        return docker.from_env()
    except docker.errors.DockerException as err:
        raise SandboxUnavailable(f"no Docker engine is reachable ({err}); start dockerd or set DOCKER_HOST") from err


def image_exists(client: Any, tag: str) -> bool:
    import docker

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def bootstrap_base(
    client: Any | None = None, *, tag: str = BASE_TAG, suite: str = "bookworm", mirror: str = DEBIAN_MIRROR,
    log: Callable[[str], None] = print,
) -> str:
    """debootstrap a minimal Debian with Python 3 and import it as ``tag``; reuse it if present."""
    client = client or _docker_client()
    if image_exists(client, tag):
        log(f"base image {tag} is already there")
        return tag
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise SandboxUnavailable("debootstrap is not installed (Debian: apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="cvgrade-rootfs-") as root:
        rootfs = Path(root) / "rootfs"
        log(f"debootstrap {suite} into {rootfs} (a few minutes)")
        subprocess.run(  # noqa: S603 - fixed arguments
            [debootstrap, "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
             suite, str(rootfs), mirror],
            check=True, stdout=subprocess.DEVNULL,
        )
        archive = Path(root) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)  # noqa: S603, S607
        repository, _, version = tag.partition(":")
        log(f"docker import as {tag}")
        client.api.import_image_from_file(str(archive), repository=repository, tag=version or "latest")
    return tag


def fetch_wheels(packages: Sequence[str], target: Path) -> None:
    """Download wheels for ``packages`` (and their dependencies) into ``target`` with pip."""
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(  # noqa: S603 - our interpreter, package names from our config
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "-d", str(target), *packages],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SandboxUnavailable(f"pip could not fetch wheels for {', '.join(packages)}:\n{done.stderr[-3000:]}")


def worker_fingerprint() -> str:
    """A hash of the worker files this grader would put in an image: a mismatch means a stale image."""
    digest = hashlib.sha256()
    for source in WORKER_FILES:
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def stale_worker(client: Any, tag: str) -> bool:
    """True when ``tag`` holds other worker files than this grader's (an image built by another version)."""
    return bool(client.images.get(tag).labels.get(WORKER_FINGERPRINT_LABEL) != worker_fingerprint())


def _fingerprint(base_id: str, packages: Sequence[str], wheels: Path) -> str:
    digest = hashlib.sha256()
    digest.update(base_id.encode())
    digest.update("\0".join(packages).encode())
    digest.update(DOCKERFILE.read_bytes())
    for source in WORKER_FILES:
        digest.update(source.read_bytes())
    for wheel in sorted(wheels.glob("*.whl")):
        digest.update(wheel.name.encode())
    return digest.hexdigest()[:16]


def build_runtime(
    client: Any | None = None, *, base: str = BASE_TAG, tag: str | None = None,
    extra_packages: Sequence[str] = (), log: Callable[[str], None] = print,
) -> str:
    """Build the runtime image from ``base``; a no-op when nothing changed since the last build."""
    client = client or _docker_client()
    tag = tag or runtime_tag()
    if not image_exists(client, base):
        raise SandboxUnavailable(f"base image {base} is missing: run `cvgrade image build --bootstrap`")
    packages = [*PINNED, *extra_packages]
    wheels = cache_dir() / "wheels"
    log(f"fetching wheels for {', '.join(packages)} into {wheels}")
    fetch_wheels(packages, wheels)
    fingerprint = _fingerprint(client.images.get(base).id, packages, wheels)
    if image_exists(client, tag) and client.images.get(tag).labels.get(FINGERPRINT_LABEL) == fingerprint:
        log(f"{tag} is up to date ({fingerprint})")
        return tag
    with tempfile.TemporaryDirectory(prefix="cvgrade-context-") as context_dir:
        context = Path(context_dir)
        shutil.copyfile(DOCKERFILE, context / "Dockerfile")
        (context / "worker").mkdir()
        for source in WORKER_FILES:
            shutil.copyfile(source, context / "worker" / source.name)
        (context / "wheels").mkdir()
        for wheel in wheels.glob("*.whl"):
            try:
                os.link(wheel, context / "wheels" / wheel.name)
            except OSError:  # another file system: copy instead
                shutil.copyfile(wheel, context / "wheels" / wheel.name)
        log(f"building {tag} from {base} (the first build takes several minutes)")
        build_removing_stale_images(
            client, context, tag, buildargs={"BASE": base, "EXTRA_PACKAGES": " ".join(extra_packages)},
            labels={FINGERPRINT_LABEL: fingerprint, WORKER_FINGERPRINT_LABEL: worker_fingerprint()},
        )
    return tag


_STEP_RESULT = re.compile(r"^ ---> ([0-9a-f]{12,64})\s*$")


def build_removing_stale_images(client: Any, context: Path, tag: str, records: Path | None = None,
                                 **options: Any) -> str:
    """Build ``context`` as ``tag`` and return the image's id; then remove what earlier builds left untagged.

    A multi-stage build leaves each earlier stage's image without a name (the runtime's
    ``install`` stage: about 9 GB). The latest build's are kept: they are the cache that
    makes the next build after a change to the worker take seconds, not minutes. Once a
    build no longer uses them (the wheels changed), they are removed, with the image that
    held ``tag`` before. So only images an earlier build of ``tag`` made are removed (their
    ids, read from that build's log, are kept in ``records``: ``$CVGRADE_CACHE/image-builds``),
    never anyone else's, and none a container still uses (a grading under way on the old
    runtime).
    """
    import docker

    record = (records or cache_dir() / "image-builds") / (hashlib.sha256(tag.encode()).hexdigest()[:16] + ".json")
    try:
        earlier = {str(short) for short in json.loads(record.read_text(encoding="utf-8"))["made"]}
    except (OSError, ValueError, KeyError, TypeError):
        earlier = set()
    previous = client.images.get(tag).id if image_exists(client, tag) else None
    image, log = client.images.build(path=str(context), tag=tag, rm=True, forcerm=True, **options)
    made = {match[1] for entry in log if isinstance(entry, dict)
            for line in str(entry.get("stream", "")).splitlines() if (match := _STEP_RESULT.match(line))}
    stale = earlier - made

    def _is_stale(found: str) -> bool:
        return found == previous or any(found.removeprefix("sha256:").startswith(short) for short in stale)

    for leftover in {found.id for found in client.images.list(filters={"dangling": True})} - {image.id}:
        if _is_stale(leftover):
            with contextlib.suppress(docker.errors.APIError):  # in use by a container, or removed meanwhile
                client.images.remove(leftover)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"tag": tag, "made": sorted(made)}), encoding="utf-8")
    return str(image.id)


_VERSIONS_BY_IMAGE: dict[str, dict[str, str]] = {}
VERSIONS_FILE = "/opt/cvgrade/versions.json"


def image_versions(client: Any, image: str) -> dict[str, str]:
    """What the runtime image ``image`` holds (Python, torch, ...), read by the engine from the image itself.

    ``/opt/cvgrade/versions.json`` is written when the image is built; the engine copies it out of a
    container that is created and never started, so no code runs and no worker has a say in it.
    Cached per image id. Empty when the image has no such file.
    """
    import docker

    from harness.containers import LABEL, OWNER_LABEL, owner_id  # the janitor's labels, should we die meanwhile

    image_id = str(client.images.get(image).id)
    if image_id not in _VERSIONS_BY_IMAGE:
        container = client.containers.create(image_id, command=["true"], network_disabled=True,
                                             labels={LABEL: "1", OWNER_LABEL: owner_id()})
        try:
            stream, _ = container.get_archive(VERSIONS_FILE)
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
                member = archive.extractfile(archive.getmembers()[0])
                data = json.loads(member.read(64 * 1024)) if member is not None else {}
        except (docker.errors.NotFound, tarfile.TarError, ValueError, IndexError):
            data = {}
        finally:
            container.remove(force=True)
        _VERSIONS_BY_IMAGE[image_id] = {str(k)[:40]: str(v)[:64] for k, v in dict(data).items()}
    return dict(_VERSIONS_BY_IMAGE[image_id])
