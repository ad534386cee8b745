"""How ``prepare_workspace`` lays out a submission, and every way it refuses a hostile one."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.errors import BadSubmission
from grader.workspace import MiB, Workspace, WorkspaceLimits, prepare_workspace
from harness.leftovers import owner_token

SOLUTION = b"def detect(image):\n    return []\n"


# ---------------------------------------------------------------- helpers


@pytest.fixture
def work_root(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    root.mkdir()
    return root


@pytest.fixture
def prepared(work_root: Path) -> Iterator[list[Workspace]]:
    """Workspaces made by a test, cleaned up after it."""
    made: list[Workspace] = []
    yield made
    for workspace in made:
        workspace.cleanup()


def prepare(submission: Path, work_root: Path, made: list[Workspace], **limits: int) -> Workspace:
    workspace = prepare_workspace(submission, work_root=work_root, limits=WorkspaceLimits(**limits))
    made.append(workspace)
    return workspace


def refuse(submission: Path, work_root: Path, **limits: int) -> str:
    """Prepare a submission that must be refused; check nothing was left; return the message."""
    with pytest.raises(BadSubmission) as refused:
        prepare_workspace(submission, work_root=work_root, limits=WorkspaceLimits(**limits))
    assert list(work_root.iterdir()) == [], "a refused submission left files behind"
    return str(refused.value)


def make_zip(path: Path, entries: dict[str, bytes], *, mode: int | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.external_attr = mode << 16
            archive.writestr(info, data)
    return path


def files_in(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def write_notebook(path: Path, *sources: str) -> Path:
    cells = [new_markdown_cell("# Solution")] + [new_code_cell(source) for source in sources]
    nbformat.write(new_notebook(cells=cells), path)
    return path


@pytest.fixture
def no_member_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any zip member is opened: refusals must come before extraction."""

    original_open = zipfile.ZipFile.open

    def checked_open(
        archive: zipfile.ZipFile, name: object, mode: str = "r", **kwargs: object
    ) -> object:
        if mode == "r":
            raise AssertionError("a member was read before the archive was validated")
        return original_open(archive, name, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "open", checked_open)


# ---------------------------------------------------------------- single files


def test_a_py_file_becomes_solution_py(
    tmp_path: Path, work_root: Path, prepared: list[Workspace]
) -> None:
    submission = tmp_path / "my_answer.py"
    submission.write_bytes(SOLUTION)

    workspace = prepare(submission, work_root, prepared)

    assert workspace.kind == "py"
    assert workspace.entry == "solution.py"
    assert workspace.cells is None
    assert files_in(workspace.path) == ["solution.py"]
    assert (workspace.path / "solution.py").read_bytes() == SOLUTION
    assert workspace.sha256 == hashlib.sha256(SOLUTION).hexdigest()
    assert workspace.size_bytes == len(SOLUTION)
    assert workspace.path.parent == work_root


def test_a_notebook_is_copied_as_solution_ipynb_with_its_code_cells(
    tmp_path: Path, work_root: Path, prepared: list[Workspace]
) -> None:
    submission = write_notebook(tmp_path / "analysis.ipynb", "%matplotlib inline\nx = 1", "y = 2")

    workspace = prepare(submission, work_root, prepared)

    assert workspace.kind == "ipynb"
    assert workspace.entry is None
    assert workspace.cells == [{"number": 2, "source": "\nx = 1"}, {"number": 3, "source": "y = 2"}]
    assert workspace.warnings == ["cell 2: skipped IPython magic `%matplotlib inline`"]
    assert (workspace.path / "solution.ipynb").read_bytes() == submission.read_bytes()
    assert workspace.sha256 == hashlib.sha256(submission.read_bytes()).hexdigest()


def test_a_broken_notebook_is_refused_and_nothing_is_left(tmp_path: Path, work_root: Path) -> None:
    submission = tmp_path / "solution.ipynb"
    submission.write_text("{not json")

    message = refuse(submission, work_root)

    assert message.startswith("solution.ipynb is not a valid Jupyter notebook")


def test_a_missing_path_is_refused_with_what_is_accepted(tmp_path: Path, work_root: Path) -> None:
    message = refuse(tmp_path / "nowhere.py", work_root)

    assert "no such file or folder" in message
    assert "a .py file, a .ipynb notebook, a folder, or a .zip" in message


def test_an_unsupported_suffix_is_refused_with_what_is_accepted(
    tmp_path: Path, work_root: Path
) -> None:
    submission = tmp_path / "solution.tar.gz"
    submission.write_bytes(b"\x1f\x8b")

    message = refuse(submission, work_root)

    assert "cannot grade a '.gz' file" in message
    assert ".zip of your solution folder" in message


def test_a_py_file_over_the_file_cap_is_refused(tmp_path: Path, work_root: Path) -> None:
    submission = tmp_path / "solution.py"
    submission.write_bytes(b"#" * 2000)

    assert "the limit for one file" in refuse(submission, work_root, max_file_bytes=1000)


def test_the_default_work_root_is_a_fresh_folder_in_this_users_private_folder(tmp_path: Path) -> None:
    submission = tmp_path / "solution.py"
    submission.write_bytes(SOLUTION)

    workspace = prepare_workspace(submission)
    try:
        private = workspace.path.parent
        assert private == Path(tempfile.gettempdir()) / f"cvgrade-{os.getuid()}"
        found = private.stat()
        assert (stat.S_IMODE(found.st_mode), found.st_uid) == (0o700, os.getuid()), "other users could read it"
        # named after the grader that made it, so that the janitor knows when it is left over
        assert workspace.path.name.startswith(f"ws-{owner_token()}-")
        assert stat.S_IMODE(workspace.path.stat().st_mode) == 0o755  # the sandbox's user reads it
    finally:
        workspace.cleanup()
    assert not workspace.path.exists()
    workspace.cleanup()  # idempotent


# ---------------------------------------------------------------- folders


def make_folder(root: Path) -> Path:
    (root / "helpers").mkdir(parents=True)
    (root / "solution.py").write_bytes(b"from helpers.geometry import area\n")
    (root / "helpers" / "geometry.py").write_bytes(b"def area(box):\n    return 0\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "solution.cpython-311.pyc").write_bytes(b"\0")
    (root / "helpers" / "stale.pyc").write_bytes(b"\0")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return root


def test_a_folder_is_copied_with_its_helper_modules_and_without_caches(
    tmp_path: Path, work_root: Path, prepared: list[Workspace]
) -> None:
    submission = make_folder(tmp_path / "alice")

    workspace = prepare(submission, work_root, prepared)

    assert workspace.kind == "folder"
    assert workspace.entry == "solution.py"
    assert files_in(workspace.path) == ["helpers/geometry.py", "solution.py"]


def test_a_folder_hash_depends_on_paths_and_contents_only(
    tmp_path: Path, work_root: Path, prepared: list[Workspace]
) -> None:
    first = prepare(make_folder(tmp_path / "a"), work_root, prepared)
    second_folder = make_folder(tmp_path / "b")
    os.utime(second_folder / "solution.py", (0, 0))
    second = prepare(second_folder, work_root, prepared)
    (second_folder / "helpers" / "geometry.py").write_bytes(b"changed\n")
    third = prepare(second_folder, work_root, prepared)

    assert first.sha256 == second.sha256
    assert third.sha256 != first.sha256
    assert first.size_bytes == len(b"from helpers.geometry import area\n") + len(
        b"def area(box):\n    return 0\n"
    )


def test_a_folder_with_a_symlink_to_a_host_file_is_refused(tmp_path: Path, work_root: Path) -> None:
    submission = make_folder(tmp_path / "mallory")
    (submission / "helpers" / "data.txt").symlink_to("/etc/passwd")

    message = refuse(submission, work_root)

    assert "'helpers/data.txt' is a symbolic link" in message
    assert "replace it with the file itself" in message


def test_a_folder_with_a_symlinked_folder_is_refused(tmp_path: Path, work_root: Path) -> None:
    submission = make_folder(tmp_path / "mallory")
    (submission / "etc").symlink_to("/etc", target_is_directory=True)

    assert "'etc' is a symbolic link" in refuse(submission, work_root)


def test_a_folder_with_a_fifo_is_refused(tmp_path: Path, work_root: Path) -> None:
    submission = make_folder(tmp_path / "mallory")
    os.mkfifo(submission / "pipe")

    assert "'pipe' is not a regular file" in refuse(submission, work_root)


def test_a_folder_with_only_a_notebook_is_graded_as_that_notebook(
    tmp_path: Path, work_root: Path, prepared: list[Workspace]
) -> None:
    submission = tmp_path / "bob"
    submission.mkdir()
    write_notebook(submission / "Untitled.ipynb", "!nvidia-smi", "import numpy as np")

    workspace = prepare(submission, work_root, prepared)

    assert workspace.kind == "folder"
    assert workspace.entry is None
    assert workspace.cells == [{"number": 3, "source": "import numpy as np"}]
    assert workspace.warnings == ["cell 2: skipped shell command `!nvidia-smi`"]
    assert files_in(workspace.path) == ["Untitled.ipynb", "solution.ipynb"]


def test_solution_py_wins_over_notebooks(
    tmp_path: Path, work_root: Path, prepared: list[Workspace]
) -> None:
    submission = tmp_path / "carol"
    submission.mkdir()
    (submission / "solution.py").write_bytes(SOLUTION)
    write_notebook(submission / "a.ipynb", "x = 1")
    write_notebook(submission / "b.ipynb", "x = 2")

    assert prepare(submission, work_root, prepared).entry == "solution.py"


def test_a_folder_with_several_notebooks_and_no_solution_is_refused(
    tmp_path: Path, work_root: Path
) -> None:
    submission = tmp_path / "dave"
    submission.mkdir()
    write_notebook(submission / "a.ipynb", "x = 1")
    write_notebook(submission / "b.ipynb", "x = 2")

    message = refuse(submission, work_root)

    assert "several notebooks (a.ipynb, b.ipynb)" in message
    assert "name the one to grade solution.ipynb" in message


def test_a_folder_without_a_solution_says_what_is_expected(tmp_path: Path, work_root: Path) -> None:
    submission = tmp_path / "erin"
    (submission / "src").mkdir(parents=True)
    (submission / "src" / "solution.py").write_bytes(SOLUTION)
    (submission / "README.md").write_text("hi")

    message = refuse(submission, work_root)

    assert "no solution.py or solution.ipynb at its top level (found: README.md)" in message


def test_a_folder_over_the_file_count_cap_is_refused(tmp_path: Path, work_root: Path) -> None:
    submission = make_folder(tmp_path / "many")
    for index in range(5):
        (submission / f"data_{index}.txt").write_text("x")

    assert "more than 4 files" in refuse(submission, work_root, max_files=4)


def test_a_folder_over_the_total_size_cap_is_refused(tmp_path: Path, work_root: Path) -> None:
    submission = make_folder(tmp_path / "heavy")
    (submission / "weights.bin").write_bytes(b"\0" * 5000)

    assert "more than 4096 bytes in all" in refuse(submission, work_root, max_total_bytes=4096)


def test_a_folder_nested_too_deep_is_refused(tmp_path: Path, work_root: Path) -> None:
    submission = make_folder(tmp_path / "deep")
    deep = submission.joinpath(*["d"] * 5)
    deep.mkdir(parents=True)
    (deep / "x.py").write_text("")

    assert "more than the 4 allowed" in refuse(submission, work_root, max_depth=4)


def test_workspace_files_are_world_readable_whatever_the_umask(
    tmp_path: Path, work_root: Path, prepared: list[Workspace]
) -> None:
    submission = make_folder(tmp_path / "private")
    (submission / "helpers").chmod(0o700)
    (submission / "solution.py").chmod(0o600)
    (submission / "run.sh").write_text("#!/bin/sh\n")
    (submission / "run.sh").chmod(0o4755)
    previous_umask = os.umask(0o077)
    try:
        workspace = prepare(submission, work_root, prepared)
    finally:
        os.umask(previous_umask)

    modes = {
        str(path.relative_to(workspace.path)): stat.S_IMODE(path.stat().st_mode)
        for path in workspace.path.rglob("*")
    }
    assert stat.S_IMODE(workspace.path.stat().st_mode) == 0o755
    assert modes == {
        "helpers": 0o755,
        "helpers/geometry.py": 0o644,
        "run.sh": 0o644,
        "solution.py": 0o644,
    }


# ---------------------------------------------------------------- zip archives


def test_a_zip_with_one_top_folder_is_graded_from_inside_it(
    tmp_path: Path, work_root: Path, prepared: list[Workspace]
) -> None:
    submission = make_zip(
        tmp_path / "submission.zip",
        {
            "alice/": b"",
            "alice/solution.py": SOLUTION,
            "alice/helpers/geometry.py": b"def area(box):\n    return 0\n",
            "alice/helpers/models.zip": b"PK\x05\x06" + b"\0" * 18,
            "alice/__pycache__/solution.cpython-311.pyc": b"\0",
            "__MACOSX/alice/._solution.py": b"\0",
        },
        mode=stat.S_IFREG | 0o777,
    )

    workspace = prepare(submission, work_root, prepared)

    assert workspace.kind == "zip"
    assert workspace.entry == "solution.py"
    assert files_in(workspace.path) == ["helpers/geometry.py", "helpers/models.zip", "solution.py"]
    assert (workspace.path / "solution.py").read_bytes() == SOLUTION
    assert workspace.sha256 == hashlib.sha256(submission.read_bytes()).hexdigest()
    assert workspace.size_bytes == submission.stat().st_size
    assert stat.S_IMODE((workspace.path / "solution.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((workspace.path / "helpers").stat().st_mode) == 0o755


def test_a_zip_of_files_at_its_top_level_is_used_as_is(
    tmp_path: Path, work_root: Path, prepared: list[Workspace]
) -> None:
    submission = make_zip(
        tmp_path / "flat.zip", {"solution.py": SOLUTION, "helpers/geometry.py": b"x = 1\n"}
    )

    workspace = prepare(submission, work_root, prepared)

    assert files_in(workspace.path) == ["helpers/geometry.py", "solution.py"]


def test_a_zip_holding_only_a_notebook_is_graded_as_that_notebook(
    tmp_path: Path, work_root: Path, prepared: list[Workspace]
) -> None:
    notebook = write_notebook(tmp_path / "answer.ipynb", "x = 1")
    submission = make_zip(tmp_path / "nb.zip", {"answer/answer.ipynb": notebook.read_bytes()})

    workspace = prepare(submission, work_root, prepared)

    assert workspace.entry is None
    assert workspace.cells == [{"number": 2, "source": "x = 1"}]


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("../evil.py", "points outside the archive"),
        ("alice/../../evil.py", "points outside the archive"),
        ("/abs.py", "has an absolute path"),
        ("C:/Windows/evil.py", "has an absolute path"),
        ("alice\\evil.py", "uses backslashes"),
        ("evil\x1b[2J.py", "control character"),
    ],
)
def test_a_zip_entry_with_an_unsafe_name_is_refused_and_nothing_is_extracted(
    tmp_path: Path, work_root: Path, no_member_is_read: None, name: str, complaint: str
) -> None:
    submission = make_zip(tmp_path / "submission.zip", {"solution.py": SOLUTION, name: b"x = 1\n"})

    message = refuse(submission, work_root)

    assert message.startswith("submission.zip: entry '")
    assert complaint in message
    assert not (tmp_path / "evil.py").exists()


def test_a_zip_entry_with_parent_path_tells_the_user_how_to_fix_it(
    tmp_path: Path, work_root: Path
) -> None:
    submission = make_zip(tmp_path / "submission.zip", {"../evil.py": b""})

    assert refuse(submission, work_root) == (
        "submission.zip: entry '../evil.py' points outside the archive; "
        "zip your solution folder without '..' or absolute paths"
    )


def test_a_zip_entry_with_a_nul_in_its_name_is_refused(tmp_path: Path, work_root: Path) -> None:
    submission = make_zip(tmp_path / "submission.zip", {"solution.py": SOLUTION, "evilX.py": b""})
    submission.write_bytes(submission.read_bytes().replace(b"evilX.py", b"evil\0.py"))

    assert "NUL or control character" in refuse(submission, work_root)


def test_a_zip_symlink_entry_is_refused_and_nothing_is_extracted(
    tmp_path: Path, work_root: Path, no_member_is_read: None
) -> None:
    submission = tmp_path / "submission.zip"
    with zipfile.ZipFile(submission, "w") as archive:
        archive.writestr("solution.py", SOLUTION)
        link = zipfile.ZipInfo("passwd")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")

    message = refuse(submission, work_root)

    assert "entry 'passwd' is a symbolic link" in message


@pytest.mark.parametrize("file_type", [stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK])
def test_a_zip_entry_for_a_special_file_is_refused(
    tmp_path: Path, work_root: Path, no_member_is_read: None, file_type: int
) -> None:
    submission = make_zip(tmp_path / "submission.zip", {"solution.py": SOLUTION})
    with zipfile.ZipFile(submission, "a") as archive:
        special = zipfile.ZipInfo("dev")
        special.external_attr = (file_type | 0o666) << 16
        archive.writestr(special, b"")

    assert "entry 'dev' is not a regular file" in refuse(submission, work_root)


def patch_declared_size(archive: Path, size: int, *, local_header_too: bool) -> None:
    """Rewrite the uncompressed size of the archive's first entry."""
    data = bytearray(archive.read_bytes())
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, size)
    if local_header_too:
        struct.pack_into("<I", data, data.index(b"PK\x03\x04") + 22, size)
    archive.write_bytes(bytes(data))


def test_a_zip_entry_declaring_a_huge_size_is_refused_before_extraction(
    tmp_path: Path, work_root: Path, no_member_is_read: None
) -> None:
    submission = make_zip(tmp_path / "submission.zip", {"solution.py": SOLUTION})
    patch_declared_size(submission, 4_000_000_000, local_header_too=True)

    assert "entry 'solution.py' is larger than 50 MiB" in refuse(submission, work_root)


def test_a_zip_whose_declared_total_is_over_the_cap_is_refused(
    tmp_path: Path, work_root: Path, no_member_is_read: None
) -> None:
    entries = {"solution.py": SOLUTION} | {f"data/{index}.bin": b"\1" * 600 for index in range(4)}
    submission = make_zip(tmp_path / "submission.zip", entries)

    assert "more than 2048 bytes in all" in refuse(submission, work_root, max_total_bytes=2048)


def test_a_zip_bomb_is_refused_without_writing_it(
    tmp_path: Path, work_root: Path, no_member_is_read: None
) -> None:
    submission = tmp_path / "bomb.zip"
    with zipfile.ZipFile(submission, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("solution.py", SOLUTION)
        with archive.open("zeros.npy", "w") as zeros:
            for _ in range(60):
                zeros.write(bytes(MiB))
    assert submission.stat().st_size < MiB

    message = refuse(submission, work_root, max_file_bytes=100 * MiB)

    assert "entry 'zeros.npy' expands" in message
    assert "looks like a zip bomb" in message


def test_a_zip_whose_stream_is_longer_than_declared_is_refused(
    tmp_path: Path, work_root: Path
) -> None:
    submission = make_zip(tmp_path / "submission.zip", {"solution.py": b"x = 1\n" * 1000})
    patch_declared_size(submission, 10, local_header_too=True)

    message = refuse(submission, work_root)

    assert "entry 'solution.py'" in message
    assert "zip your solution folder again" in message


def test_a_file_named_zip_that_is_not_a_zip_is_refused(tmp_path: Path, work_root: Path) -> None:
    submission = tmp_path / "submission.zip"
    submission.write_bytes(b"#!/bin/sh\nrm -rf /\n")

    assert refuse(submission, work_root).startswith("submission.zip is not a valid zip archive")


def test_a_zip_over_the_entry_count_cap_is_refused(
    tmp_path: Path, work_root: Path, no_member_is_read: None
) -> None:
    entries = {"solution.py": SOLUTION} | {f"f{index}.py": b"" for index in range(5)}
    submission = make_zip(tmp_path / "submission.zip", entries)

    assert "more than 5 files" in refuse(submission, work_root, max_files=5)


def test_a_zip_whose_directory_lists_too_many_entries_is_refused_before_parsing_it(
    tmp_path: Path, work_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = {f"{'x' * 100}_{index}.py": b"" for index in range(1000)}
    submission = make_zip(tmp_path / "submission.zip", {"solution.py": SOLUTION} | entries)

    def parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the central directory was parsed")

    monkeypatch.setattr(zipfile, "ZipFile", parse)

    assert "more than 5 files" in refuse(submission, work_root, max_files=5)


def test_a_zip_with_a_duplicate_name_is_refused(
    tmp_path: Path, work_root: Path, no_member_is_read: None
) -> None:
    submission = tmp_path / "submission.zip"
    with zipfile.ZipFile(submission, "w") as archive, pytest.warns(UserWarning, match="Duplicate"):
        archive.writestr("solution.py", b"x = 1\n")
        archive.writestr("solution.py", b"import os\n")

    assert "entry 'solution.py' appears twice" in refuse(submission, work_root)


def test_a_zip_with_a_name_that_is_both_file_and_folder_is_refused(
    tmp_path: Path, work_root: Path, no_member_is_read: None
) -> None:
    submission = make_zip(
        tmp_path / "submission.zip", {"solution.py": SOLUTION, "lib": b"", "lib/x.py": b""}
    )

    assert "'lib' is both a file and a folder" in refuse(submission, work_root)


def test_a_password_protected_zip_entry_is_refused(
    tmp_path: Path, work_root: Path, no_member_is_read: None
) -> None:
    submission = make_zip(tmp_path / "submission.zip", {"solution.py": SOLUTION})
    data = bytearray(submission.read_bytes())
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<H", data, central + 8, 0x1)
    submission.write_bytes(bytes(data))

    assert "is password-protected" in refuse(submission, work_root)


def test_a_zip_without_a_solution_says_what_is_expected(tmp_path: Path, work_root: Path) -> None:
    submission = make_zip(tmp_path / "submission.zip", {"alice/notes.txt": b"hi"})

    message = refuse(submission, work_root)

    assert "no solution.py or solution.ipynb at its top level (found: notes.txt)" in message


def test_a_zip_nested_too_deep_is_refused(tmp_path: Path, work_root: Path) -> None:
    deep = "/".join(["d"] * 5) + "/x.py"
    submission = make_zip(tmp_path / "submission.zip", {"solution.py": SOLUTION, deep: b""})

    assert "nested 6 levels deep" in refuse(submission, work_root, max_depth=5)


def test_a_zip_with_a_broken_notebook_leaves_nothing_behind(
    tmp_path: Path, work_root: Path
) -> None:
    submission = make_zip(tmp_path / "submission.zip", {"alice/solution.ipynb": b"{"})

    assert "solution.ipynb is not a valid Jupyter notebook" in refuse(submission, work_root)
