"""An install without the ``service`` extra: practising and grading work, and each service command
says exactly what to install, with exit code 3.

Each test runs the real ``cvgrade`` in a fresh interpreter where the service's packages cannot be
imported: a meta-path finder answers for them as pip would for packages that are not installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cli.service_extra import SERVICE_MODULES

# The distributions of pyproject's `service` extra, by import name: blocked all together.
NOT_INSTALLED = (*SERVICE_MODULES, "psycopg", "fastapi_offline", "uvloop", "httptools", "starlette", "kombu")

WITHOUT_THE_SERVICE = f"""
import sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {NOT_INSTALLED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
sys.argv = ["cvgrade", *sys.argv[1:]]
from cli.main import main
main()
"""


def cvgrade_without_the_service(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT_THE_SERVICE, *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                                          "CVGRADE_DATA": str(tmp_path / "data")})


@pytest.mark.parametrize("command", [
    ["serve", "--port", "1"],
    ["admin", "list-teams"],
    ["worker", "--broker", "redis://127.0.0.1:1/0"],
    ["fleet", "--broker", "redis://127.0.0.1:1/0"],
])
def test_a_service_command_says_what_to_install(tmp_path: Path, command: list[str]) -> None:
    done = cvgrade_without_the_service(tmp_path, *command)
    assert done.returncode == 3, done.stderr
    message = " ".join(done.stderr.split())
    assert f"error: `cvgrade {command[0]}` needs the service's packages" in message
    assert "pip install 'cvgrade[service]'" in message
    assert "fastapi" in message and "celery" in message  # what cannot be imported, by name
    assert "Traceback" not in done.stderr


def test_grading_commands_need_no_service_package(tmp_path: Path) -> None:
    listed = cvgrade_without_the_service(tmp_path, "challenges")
    assert listed.returncode == 0, listed.stderr
    assert "iou" in listed.stdout
    client = cvgrade_without_the_service(tmp_path, "submit", "--help")  # the candidate's client: httpx only
    assert client.returncode == 0, client.stderr
    assert "Upload a solution to a cvgrade service" in " ".join(client.stdout.split())


def test_the_service_commands_run_where_the_extra_is_installed(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "cli", "admin", "list-teams", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no teams" in done.stdout
