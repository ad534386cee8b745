"""The standalone HTML report: what a hiring team opens after a grading.

Charts come from the checks themselves (``record.distribution`` and
``record.gauge``), through a real grading. The page is checked as text (it
escapes everything the candidate controls) and in a real headless Chromium
(it draws its charts).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grader.challenge import load_challenge
from grader.grading import GradeOptions, grade_submission
from grader.html_report import render_report, write_report
from grader.results import GradeResult

CHECKS = textwrap.dedent(
    """
    def test_latency(candidate, record):
        samples = [candidate.timed("add", 1, 2)[1] * 1000 for _ in range(60)]
        record.distribution("latency per call", samples, unit="ms", target=50.0,
                            baseline=[s * 2 for s in samples], baseline_label="original model")
        assert candidate.add(1, 2) == 3, "add(1, 2) is wrong"

    def test_accuracy(candidate, record):
        record.gauge("top-1 accuracy", 0.91, threshold=0.8, maximum=1.0)
        record.gauge("training time", 42.0, threshold=60.0, unit="s", higher_is_better=False)
        candidate.add(-1, -1)
    """
)
LISTED = [
    {"name": "latency", "test": "test_report.py::test_latency", "points": 5},
    {"name": "accuracy", "test": "test_report.py::test_accuracy", "points": 5, "visibility": "hidden"},
]
HOSTILE = (
    "def add(a, b):\n"
    "    if a < 0:\n"
    "        raise ValueError('<script>alert(1)</script><img src=x onerror=alert(2)>')\n"
    "    return a + b\n"
)


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> GradeResult:
    from tests.conftest import ChallengeFactory

    root = tmp_path_factory.mktemp("report")
    challenge = ChallengeFactory(root / "challenges")({"test_report.py": CHECKS}, LISTED, pass_mark=0.4)
    submission = root / "solution.py"
    submission.write_text(HOSTILE)
    return grade_submission(submission, load_challenge(challenge), GradeOptions(backend="local"))


def test_checks_record_charts_that_reach_the_result(graded: GradeResult) -> None:
    kinds = [(chart["check"], chart["kind"], chart["title"]) for chart in graded.charts]
    assert kinds == [
        ("latency", "distribution", "latency per call"),
        ("accuracy", "gauge", "top-1 accuracy"),
        ("accuracy", "gauge", "training time"),
    ]
    assert len(graded.charts[0]["values"]) == 60


def test_the_page_shows_verdict_checks_and_every_chart(graded: GradeResult) -> None:
    page = render_report(graded)
    assert "Passed: 5 / 10 points" in page
    assert page.count("<figure class=\"chart") == 4  # three recorded, plus grading time against the limit
    assert "latency per call" in page and "top-1 accuracy" in page and "training time" in page
    assert "original model" in page


def test_what_the_candidate_wrote_is_escaped_never_run(graded: GradeResult) -> None:
    page = render_report(graded)
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_candidates_copy_has_only_visible_checks_and_no_charts(graded: GradeResult) -> None:
    page = render_report(graded, audience="candidate")
    assert "latency" in page
    assert "accuracy" not in page and "top-1 accuracy" not in page
    assert page.count("<figure class=\"chart") == 1  # only the grading time


def test_cvgrade_grade_writes_the_report_with_html(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "reports" / "iou.html"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cvgrade"), "grade", str(repo / "challenges/iou/reference/solution.py"),
         "-c", "iou", "--backend", "local", "--html", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"report: {out}" in done.stderr
    page = out.read_text()
    assert "Passed: 100 / 100 points" in page and "box_iou_speed" in page


def chromium() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        message = "Debian's chromium and chromium-driver are needed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return browser, driver


def green_pixels(image: object) -> int:
    """Pixels of the report's green (#2f9e55, as drawn): bars of passing figures."""
    import numpy as np

    rgb = np.asarray(image.convert("RGB")).astype(int)  # type: ignore[attr-defined]
    return int(((rgb[..., 1] > 130) & (rgb[..., 0] < 90) & (rgb[..., 2] < 120)).sum())


def test_chromium_draws_the_charts(graded: GradeResult, tmp_path: Path) -> None:
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    browser, driver_path = chromium()
    page = tmp_path / "report.html"
    write_report(graded, page)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=900,2400",
                 "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.get(page.as_uri())
        assert driver.find_element(By.ID, "verdict").text.startswith("Passed")
        histogram = driver.find_element(By.CSS_SELECTOR, "figure.chart-distribution svg")
        assert histogram.size["width"] > 300 and histogram.size["height"] > 100
        shot = tmp_path / "histogram.png"
        histogram.screenshot(str(shot))
        assert green_pixels(Image.open(shot)) > 500, "the latency histogram drew no bars"
        gauge = driver.find_element(By.CSS_SELECTOR, "figure.chart-gauge svg")
        gauge.screenshot(str(tmp_path / "gauge.png"))
        assert green_pixels(Image.open(tmp_path / "gauge.png")) > 500, "the accuracy gauge drew no bar"
    finally:
        driver.quit()
