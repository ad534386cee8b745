"""Similarity: copies disguised the ways people disguise them are flagged; independent sound solutions
to the same challenge are not; the starter everyone was given never counts; fingerprints are the same
in every process, so they can be stored."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
from pathlib import Path

import pytest

from grader.similarity import (
    FLAG_SHARE,
    fingerprint,
    kgram_hashes,
    normalised_tokens,
    overlap,
    pack,
    regions,
    shared_counts,
    unpack,
)
from grader.sources import read_sources
from tests.grader.similarity_samples import CHALLENGES, KNOWN_GOOD, REFERENCE, REFORMATTED, RENAMED, REORDERED


def starter_of(challenge: str) -> frozenset[int]:
    units: list[tuple[str, str]] = []
    for path in sorted((CHALLENGES / challenge / "starter").iterdir()):
        if path.suffix in (".py", ".ipynb"):
            units += read_sources(path.read_bytes(), path.name, path.suffix[1:]).code_units()
    return kgram_hashes(units)


def of(code: str, challenge: str = "iou") -> object:
    return fingerprint([("solution.py", code)], starter_of(challenge))


@pytest.mark.parametrize("copy", [RENAMED, REFORMATTED, REORDERED], ids=["renamed", "reformatted", "reordered"])
def test_a_disguised_copy_of_a_solution_is_flagged(copy: str) -> None:
    found = overlap(of(REFERENCE), of(copy))  # type: ignore[arg-type]
    assert found.flagged and found.share >= 0.8, found


def test_renaming_every_name_and_rewriting_comments_leaves_the_same_code() -> None:
    assert of(RENAMED).digest == of(REFERENCE).digest  # type: ignore[attr-defined]


INDEPENDENT = ["iou", "latency", "preprocess", "augment", "detection_map"]


@pytest.mark.parametrize("challenge", INDEPENDENT)
def test_independent_sound_solutions_of_one_challenge_are_not_flagged(challenge: str) -> None:
    # Each challenge's reference and known-good solutions, every pair of them: independent work, written
    # differently. finetune is not here: its known-good solution is the reference with two augmentations
    # removed (a copy, rightly flagged).
    folder = CHALLENGES / challenge
    files = [folder / "reference" / "solution.py", *sorted((folder / "known_good").glob("*.py"))]
    assert len(files) >= 2
    prints = {path.name if path.parent.name == "known_good" else "reference": of(path.read_text(), challenge)
              for path in files}
    for (one, a), (other, b) in itertools.combinations(prints.items(), 2):
        found = overlap(a, b)  # type: ignore[arg-type]
        assert not found.flagged and found.share < FLAG_SHARE / 2, (one, other, found)


def test_the_starter_everyone_was_given_never_counts() -> None:
    starter = (CHALLENGES / "iou" / "starter" / "solution.py").read_text(encoding="utf-8")
    assert len(of(starter)) == 0  # type: ignore[arg-type]
    # Two solutions that kept the starter's docstrings and signatures share only what they wrote.
    assert overlap(of(starter + "\n" + KNOWN_GOOD), of(starter + "\n" + REFERENCE)).flagged is False  # type: ignore[arg-type]


@pytest.mark.parametrize("code, expected", [
    ("x = torch.maximum(a, b)  # hi", "V = V . maximum ( V , V )"),
    ("def f(boxes):\n    '''doc'''\n    return len(boxes)", "def V ( V ) : return len ( V )"),
    ("s = f'{a}' 'b' \"c\"", "V = S"),  # one S per literal, an f-string and implicit joins included
    ("call(\n    a,\n    b,\n)", "V ( V , V )"),  # a formatter's trailing comma
    ("import numpy as np\nnp.zeros(3)", "import numpy as np V . zeros ( 3 )"),
])
def test_normalising_keeps_the_librarys_words_and_drops_the_candidates(code: str, expected: str) -> None:
    assert " ".join(token.text for token in normalised_tokens(code)) == expected


def test_fingerprints_are_the_same_in_another_process() -> None:
    here = sorted(of(REFERENCE).hashes)  # type: ignore[attr-defined]
    script = ("import sys; from tests.grader.test_similarity import of; from tests.grader.similarity_samples "
              "import REFERENCE; print(sorted(of(REFERENCE).hashes))")
    there = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parents[2], env={"PYTHONHASHSEED": "12345", "PATH": ""})
    assert str(here) == there.stdout.strip()
    assert unpack(pack(here)) == frozenset(here)


def test_reordered_functions_match_region_by_region() -> None:
    found = regions(of(REFERENCE), of(REORDERED))  # type: ignore[arg-type]
    assert len(found) >= 2
    # box_area is first in the reference (lines 8-10) and last in the copy (lines 31-32).
    assert any(region.a.first <= 10 and region.a.last >= 8 and region.b.first >= 30 for region in found)
    assert all(region.a.unit == 0 and region.b.unit == 0 for region in found)


def test_shared_fingerprints_are_counted_for_pairs_with_a_new_submission_across_candidates() -> None:
    rng = random.Random(7)
    items = [(rng.randrange(6), frozenset(rng.sample(range(400), rng.randrange(0, 60)))) for _ in range(40)]
    expected = {(i, j): len(items[i][1] & items[j][1]) for i in range(40) for j in range(i + 1, 40)
                if items[i][0] != items[j][0] and items[i][1] & items[j][1]}
    assert shared_counts(items) == expected
    assert shared_counts(items, new_from=30) == {pair: count for pair, count in expected.items() if pair[1] >= 30}
