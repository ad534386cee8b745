"""challenge.toml is validated on load; every error names the file, the field and the problem."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from grader.challenge import list_challenge_ids, load_challenge
from grader.errors import ChallengeError

VALID = textwrap.dedent(
    """
    [challenge]
    id = "demo"
    title = "Demo"
    level = "junior"
    version = "1.0.0"
    pass_mark = 0.5

    [[functions]]
    name = "add"
    parameters = ["a", "b"]

    [[checks]]
    name = "adds"
    test = "test_add.py::test_adds"
    points = 10
    gate = true

    [[known_bad]]
    file = "known_bad/sub.py"
    must_fail = ["adds"]
    """
)


def make_challenge(root: Path, toml: str = VALID, name: str = "demo") -> Path:
    folder = root / name
    for sub in ("starter", "reference", "hidden", "known_bad"):
        (folder / sub).mkdir(parents=True)
    (folder / "challenge.toml").write_text(toml)
    (folder / "README.md").write_text("# Demo\n")
    (folder / "starter" / "solution.py").write_text("def add(a, b):\n    raise NotImplementedError\n")
    (folder / "reference" / "solution.py").write_text("def add(a, b):\n    return a + b\n")
    (folder / "hidden" / "test_add.py").write_text("def test_adds(candidate):\n    assert candidate.add(1, 2) == 3\n")
    (folder / "known_bad" / "sub.py").write_text("def add(a, b):\n    return a - b\n")
    return folder


def error_for(tmp_path: Path, toml: str) -> str:
    make_challenge(tmp_path, toml)
    with pytest.raises(ChallengeError) as caught:
        load_challenge("demo", tmp_path)
    return str(caught.value)


def test_a_valid_challenge_loads_by_id_and_by_path(tmp_path: Path) -> None:
    folder = make_challenge(tmp_path)
    by_id = load_challenge("demo", tmp_path)
    by_path = load_challenge(folder)
    assert by_id.id == by_path.id == "demo"
    assert by_id.max_score == 10
    assert by_id.spec.limits.memory_mb == 2048  # defaults fill in
    assert list_challenge_ids(tmp_path) == ["demo"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('level = "junior"', 'level = "expert"'), "challenge.level: Input should be 'junior', 'mid' or 'senior'"),
        (("points = 10", "points = -1"), "checks[0].points: Input should be greater than 0"),
        (("gate = true", "gate = true\ncolour = 1"), "checks[0].colour: unknown field"),
        (('version = "1.0.0"', 'version = "one"'), "challenge.version: String should match pattern"),
        (('must_fail = ["adds"]', 'must_fail = ["nothing"]'), "must_fail names no check: 'nothing'"),
        (('must_fail = ["adds"]', 'must_fail = ["adds"]\nmust_pass = ["nothing"]'),
         "must_pass names no check: 'nothing'"),
        (('must_fail = ["adds"]', 'must_fail = ["adds"]\nmust_pass = ["adds"]'),
         "['adds'] cannot be both in must_fail and in must_pass"),
        (('must_fail = ["adds"]', 'must_fail = ["adds"]\n\n[[known_good]]\nfile = "known_good/other.py"'),
         "known_good 'known_good/other.py'.file: no such file"),
        (("pass_mark = 0.5", "pass_mark = 2"), "challenge.pass_mark: Input should be less than or equal to 1"),
        (('test = "test_add.py::test_adds"', 'test = "test_add.py"'), "checks[0].test: String should match pattern"),
    ],
)
def test_field_errors_name_file_field_and_problem(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    message = error_for(tmp_path, VALID.replace(*change))
    assert str(tmp_path / "demo" / "challenge.toml") in message
    assert expected in message


def test_duplicate_check_names_are_refused(tmp_path: Path) -> None:
    duplicate = VALID + '\n[[checks]]\nname = "adds"\ntest = "test_add.py::test_other"\npoints = 1\n'
    assert "two checks have the name 'adds'" in error_for(tmp_path, duplicate)


def test_invalid_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    message = error_for(tmp_path, "[challenge\n")
    assert "challenge.toml: not valid TOML" in message


def test_id_must_match_the_folder(tmp_path: Path) -> None:
    assert "but the folder is named 'demo'" in error_for(tmp_path, VALID.replace('id = "demo"', 'id = "other"'))


def test_a_check_must_name_an_existing_hidden_file(tmp_path: Path) -> None:
    message = error_for(tmp_path, VALID.replace("test_add.py::", "test_missing.py::"))
    assert "no file hidden/test_missing.py" in message


def test_unknown_challenge_lists_the_known_ones(tmp_path: Path) -> None:
    make_challenge(tmp_path)
    with pytest.raises(ChallengeError, match=r"no challenge 'nope'.*known: demo"):
        load_challenge("nope", tmp_path)


def test_the_shipped_challenges_load() -> None:
    ids = list_challenge_ids()
    assert "iou" in ids
    for challenge_id in ids:
        load_challenge(challenge_id)
