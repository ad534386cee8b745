"""Shared fixtures. Under CI=true a missing sandbox tool fails the run instead of skipping."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHALLENGES = REPO / "challenges"


def require_bwrap() -> None:
    if shutil.which("bwrap") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("bubblewrap is required under CI=true (apt-get install bubblewrap)")
        pytest.skip("bubblewrap is not installed")


@pytest.fixture
def bwrap() -> None:
    require_bwrap()


def require_docker() -> None:
    """A reachable engine and the runtime image; fail under CI=true, skip elsewhere."""
    from harness.containers import docker_client
    from harness.images import image_exists, runtime_tag
    from harness.sandbox import SandboxUnavailable

    try:
        ready = image_exists(docker_client(), runtime_tag())
        reason = f"the runtime image {runtime_tag()} is not built (cvgrade image build --bootstrap)"
    except SandboxUnavailable as err:
        ready, reason = False, str(err)
    if not ready:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Docker backend is required under CI=true: {reason}")
        pytest.skip(reason)


@pytest.fixture
def docker() -> None:
    require_docker()


@pytest.fixture(params=["local", "docker"])
def backend(request: pytest.FixtureRequest) -> str:
    """Both production backends: the local sandbox (bubblewrap) and Docker."""
    if request.param == "docker":
        require_docker()
    else:
        require_bwrap()
    return str(request.param)


@pytest.fixture(params=["bwrap", "process"])
def isolation(request: pytest.FixtureRequest) -> str:
    """Both local isolation levels; the bwrap one needs bubblewrap."""
    if request.param == "bwrap":
        require_bwrap()
    return str(request.param)


def _parent_and_command(pid: int) -> tuple[int, bytes] | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if "State:\tZ" in status:
        return None  # ended, waiting for its reaper
    parent = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
    return int(parent), command


def running(pid: int) -> bool:
    """Whether ``pid`` is running (a zombie waiting for its reaper has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def processes_with(marker: str) -> list[int]:
    """The pids of every process on this host whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def judges_of(grader_pid: int) -> list[int]:
    """The live judges a grader process started: cold ones (its children running ``grader.judge.runner``)
    and warm ones (forked by its fork server, a child running ``grader.judge.forkserver``)."""
    processes = {int(entry.name): found for entry in Path("/proc").iterdir()
                 if entry.name.isdigit() and (found := _parent_and_command(int(entry.name))) is not None}
    servers = {pid for pid, (parent, command) in processes.items()
               if parent == grader_pid and b"grader.judge.forkserver" in command}
    return [pid for pid, (parent, command) in processes.items()
            if (parent == grader_pid and b"grader.judge.runner" in command) or parent in servers]


class ChallengeFactory:
    """Writes small, valid challenges into a folder, for tests of the grading machinery."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(
        self,
        hidden: dict[str, str],
        checks: list[dict[str, object]],
        *,
        challenge_id: str = "tiny",
        functions: tuple[tuple[str, list[str]], ...] = (("add", ["a", "b"]),),
        limits: str = "",
        reference: str = "def add(a, b):\n    return a + b\n",
        starter: str = "def add(a, b):\n    raise NotImplementedError\n",
        public: dict[str, str] | None = None,
        pass_mark: float = 0.5,
        extra_toml: str = "",
        files: dict[str, str] | None = None,
    ) -> Path:
        folder = self.root / challenge_id
        for sub in ("starter", "reference", "hidden", "public"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        lines = [
            "[challenge]", f'id = "{challenge_id}"', 'title = "Tiny"', 'level = "junior"',
            'version = "1.0.0"', f"pass_mark = {pass_mark}", "",
        ]
        for name, parameters in functions:
            lines += ["[[functions]]", f'name = "{name}"', f"parameters = {parameters!r}".replace("'", '"'), ""]
        if limits:
            lines += ["[limits]", limits, ""]
        if extra_toml:
            lines += [extra_toml, ""]
        for check in checks:
            lines.append("[[checks]]")
            for key, value in check.items():
                literal = str(value).lower() if isinstance(value, bool) else repr(value).replace("'", '"')
                lines.append(f"{key} = {literal}")
            lines.append("")
        (folder / "challenge.toml").write_text("\n".join(lines))
        (folder / "README.md").write_text("# Tiny\n")
        (folder / "starter" / "solution.py").write_text(starter)
        (folder / "reference" / "solution.py").write_text(reference)
        for name, source in hidden.items():
            (folder / "hidden" / name).write_text(source)
        for name, source in (public or {}).items():
            (folder / "public" / name).write_text(source)
        for name, source in (files or {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(source)
        return folder


@pytest.fixture
def challenge_factory(tmp_path: Path) -> ChallengeFactory:
    return ChallengeFactory(tmp_path / "challenges")


@pytest.fixture
def submission_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "submissions"
    folder.mkdir()
    return folder


# --- The quick tier (./scripts/test --quick; docs/development.md) ---------------------------------
SLOW_TESTS = Path(__file__).with_name("slow_tests.txt")


def measured_slow_tests() -> set[str]:
    """Node ids of the tests that took more than 5 s in the last measured full run (scripts/measured-slow-tests)."""
    lines = SLOW_TESTS.read_text(encoding="utf-8").splitlines() if SLOW_TESTS.is_file() else []
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the measured slow tests ``slow``, and the Docker run of a two-backend test ``docker_twin``."""
    slow = measured_slow_tests()
    for item in items:
        if item.nodeid in slow:
            item.add_marker(pytest.mark.slow)
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend") == "docker":
            item.add_marker(pytest.mark.docker_twin)
