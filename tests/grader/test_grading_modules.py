"""A passing validation is reused while the code a grading can run is unchanged: the grader's reports,
pages and review tools are not part of it, every module a real grading loads is.

The modules a grading can run are found by reading the code (``grader.grading_modules``). The last
test checks that reading against a real validation: the grader's process and a real judge (forked
from the warm server) list the modules they loaded, and each must be among those read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import grader
import harness
from grader.grading_modules import module_files, modules_a_grading_can_run
from grader.validation_cache import _tree_digest


def package(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, source in {"__init__.py": "", **files}.items():
        path = tmp_path / "grader" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return module_files(tmp_path / "grader")


def test_imports_inside_functions_names_in_strings_and_from_imports_all_count(tmp_path: Path) -> None:
    modules = package(tmp_path, {
        "validate.py": "import grader.scoring\nfrom grader import judgekit\n",
        "scoring.py": "def late():\n    from grader.judge.runner import main\n",
        "judgekit.py": "",
        "judge/__init__.py": "",
        "judge/runner.py": 'COMMAND = ["python", "-m", "grader.judge.plugin"]\n',
        "judge/plugin.py": "",
        "html_report.py": "import grader.scoring\n",  # imports the grading's code, but nothing imports it
        "check_targets.py": "",
    })
    found = modules_a_grading_can_run(modules, roots=("grader.validate",))
    assert found == {"grader", "grader.validate", "grader.scoring", "grader.judgekit", "grader.judge",
                     "grader.judge.runner", "grader.judge.plugin"}


def test_what_the_challenges_own_files_import_counts(tmp_path: Path) -> None:
    modules = package(tmp_path, {"validate.py": "", "judgekit.py": "import grader.paired\n", "paired.py": ""})
    hidden = tmp_path / "challenge" / "hidden"
    hidden.mkdir(parents=True)
    (hidden / "test_x.py").write_text("from grader.judgekit import expect_close\n")
    found = modules_a_grading_can_run(modules, tmp_path / "challenge", roots=("grader.validate",))
    assert {"grader.judgekit", "grader.paired"} <= found


def test_a_file_that_does_not_parse_counts_as_importing_everything(tmp_path: Path) -> None:
    modules = package(tmp_path, {"validate.py": "import grader.broken\n", "broken.py": "def (:\n",
                                 "html_report.py": ""})
    assert modules_a_grading_can_run(modules, roots=("grader.validate",)) == set(modules)


def test_the_digest_moves_with_the_grading_code_and_templates_but_not_with_a_report_module(tmp_path: Path) -> None:
    modules = package(tmp_path, {"validate.py": "import grader.scoring\n", "scoring.py": "X = 1\n",
                                 "html_report.py": "Y = 1\n", "templates/report.html": "<p>"})
    root = tmp_path / "grader"

    def digest() -> str:
        can_run = modules_a_grading_can_run(modules, roots=("grader.validate",))
        return _tree_digest(root, frozenset(path for name, path in modules.items() if name not in can_run))

    first = digest()
    (root / "html_report.py").write_text("Y = 2\n")
    assert digest() == first, "a change to a module no grading runs invalidated the validations"
    for changed in ("scoring.py", "templates/report.html"):
        (root / changed).write_text((root / changed).read_text() + "\n# changed\n")
        assert digest() != first, f"a change to {changed} kept the old validations"
        first = digest()


VALIDATE_AND_LIST = textwrap.dedent(
    """
    import json, sys
    from grader.challenge import load_challenge
    from grader.grading import GradeOptions
    from grader.validate import validate_challenge

    report = validate_challenge(load_challenge(sys.argv[1]), GradeOptions(backend="local"))
    print(json.dumps({"ok": report.ok, "lines": report.lines,
                      "modules": sorted(name for name in sys.modules if name.split(".")[0] in ("grader", "harness"))}))
    """
)


def test_every_module_a_real_validation_loads_is_one_the_reading_found(challenge_factory, tmp_path: Path) -> None:
    judge_modules = tmp_path / "judge-modules.json"
    check = textwrap.dedent(
        f"""
        import json, sys


        def test_add(candidate):
            names = sorted(name for name in sys.modules if name.split(".")[0] in ("grader", "harness"))
            with open({str(judge_modules)!r}, "w") as out:
                json.dump(names, out)
            assert candidate.add(2, 3) == 5
        """
    )
    root = challenge_factory({"test_add.py": check}, [{"name": "add", "test": "test_add.py::test_add", "points": 1}])
    done = subprocess.run([sys.executable, "-I", "-c", VALIDATE_AND_LIST, str(root)], capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer["ok"], "\n".join(answer["lines"])
    loaded = set(answer["modules"]) | set(json.loads(judge_modules.read_text()))
    assert "grader.judge.plugin" in loaded  # the judge's list is the judge's, not the grader's

    modules = {**module_files(Path(grader.__file__).resolve().parent),
               **module_files(Path(harness.__file__).resolve().parent)}
    can_run = modules_a_grading_can_run(modules, Path(root))
    assert loaded <= can_run, f"loaded by a real validation, not found by reading: {sorted(loaded - can_run)}"
    assert "grader.html_report" not in can_run and "grader.check_targets" not in can_run
