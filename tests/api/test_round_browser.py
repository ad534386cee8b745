"""A hiring round played end to end in a real headless Chromium (Debian's ``chromium`` and
``chromedriver``, driven by Selenium), against the service on a real loopback port, on the real ``iou``
challenge: the team invites two candidates (one through the form, one from a CSV), both open the link the
team sent them and upload on their own page (Bob's is Ada's with every variable renamed), the team reads
both sources, sees the pair flagged and opens it
side by side, writes a note, decides on each candidate, and exports the comparison as CSV. The
comparison must fit a 1,400 px window. Each page is saved as a PNG under ``/tmp/review-shots/`` (or
``CVGRADE_SHOTS``) for a person to look at.

Grading is the conftest's fake grader (the boundary between the service and the grader; the real
grader is tested on its own): ``# pass:all`` in a file makes every check pass, and ``SHARED`` makes
the result say its timed checks ran beside another grading.
"""

from __future__ import annotations

import csv
import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from grader.challenge import Challenge
from grader.grading import GradeOptions
from grader.results import GradeResult
from tests.api.conftest import Api, FakeClock, FakeGrader, make_settings
from tests.api.test_dashboard_browser import click_and_wait, log_in, no_alert
from tests.conftest import CHALLENGES
from tests.grader.similarity_samples import KNOWN_GOOD, KNOWN_GOOD_RENAMED, REFERENCE
from tests.grader.test_html_report import chromium

SHOTS = Path(os.environ.get("CVGRADE_SHOTS", "/tmp/review-shots"))
WINDOW_WIDTH = 1400
ADA = "# pass:all SHARED\n" + KNOWN_GOOD  # Ada's own solution (the challenge's known-good one)
BOB = KNOWN_GOOD_RENAMED.replace('"""IoU + NMS, my version."""', '"""IoU + NMS, my version."""\n# pass:all')


class RoundGrader(FakeGrader):
    """The fake grader, plus: ``SHARED`` says the timed checks ran while another grading did."""

    def __call__(self, submission: Path, challenge: Challenge, options: GradeOptions) -> GradeResult:
        result = super().__call__(submission, challenge, options)
        if "SHARED" in submission.read_text(encoding="utf-8", errors="replace"):
            result.metrics["timed_alongside_other_gradings"] = 1
            result.metrics["box_iou_speed_ratio"] = 0.73
        return result


@dataclass
class Live:
    api: Api
    url: str


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    from api.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'cvgrade.db'}", CHALLENGES,
                             public_url=f"http://127.0.0.1:{port}")  # the links the team sends
    grader, clock = RoundGrader(), FakeClock()
    app = create_app(settings, grade=grader, stop_gradings=grader.release, clock=clock)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)
    try:
        yield Live(Api(TestClient(app), app.state.service, clock, grader), f"http://127.0.0.1:{port}")
    finally:
        grader.release()
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={WINDOW_WIDTH},1000",
                 "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads"),
                                              "download.prompt_for_download": False})
    chrome = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    chrome.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow",
                                                           "downloadPath": str(tmp_path / "downloads")})
    try:
        yield chrome
    finally:
        chrome.quit()


def shoot(driver: Any, name: str) -> Path:
    """The whole page as a PNG (the window grown to the page's height, then put back)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WINDOW_WIDTH, min(max(height + 140, 600), 12000))
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(WINDOW_WIDTH, 1000)
    return path


def open_panel(driver: Any, panel_id: str) -> None:
    """Open a folded form (a <details>) unless it is open already."""
    from selenium.webdriver.common.by import By

    panel = driver.find_element(By.ID, panel_id)
    if panel.get_attribute("open") is None:
        panel.find_element(By.TAG_NAME, "summary").click()


def fits_the_window(driver: Any) -> bool:
    return bool(driver.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"))


def candidate_uploads(driver: Any, link: str, path: Path) -> int:
    """A candidate opens the link the team sent, picks their file and uploads it on their page; returns the
    submission's id once it is graded."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(link)
    WebDriverWait(driver, 15).until(lambda d: d.current_url.endswith("/candidate"))  # the token left the address
    driver.find_element(By.ID, "file-input").send_keys(str(path))
    driver.find_element(By.ID, "upload-button").click()
    def graded(d: Any) -> str | None:  # the page redraws its list while it follows the grading
        articles = d.find_elements(By.CSS_SELECTOR, "#submissions article.submission")
        return articles[0].get_attribute("id") if articles and articles[0].get_attribute("data-state") == "done" \
            else None

    return int(WebDriverWait(driver, 30, ignored_exceptions=[StaleElementReferenceException]).until(graded)
               .removeprefix("submission-"))


def test_a_team_runs_a_round_reads_code_sees_a_copy_notes_decides_and_exports(
        live: Live, driver: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    team = live.api.team("Vision team")
    log_in(driver, live, team.key)  # type: ignore[arg-type]  # the same shape as that test's Live

    # Ada through the form.
    open_panel(driver, "invite-one")
    driver.find_element(By.ID, "candidate").send_keys("ada@example.com")
    Select(driver.find_element(By.ID, "challenge_id")).select_by_value("iou")
    driver.execute_script("document.getElementById('deadline').value = '2030-02-01T17:00'")
    shoot(driver, "01-invitations-empty")
    click_and_wait(driver, By.ID, "invite")
    ada_link = driver.find_element(By.CSS_SELECTOR, "#created .candidate-url").text
    assert ada_link.startswith(f"{live.url}/c/cvgi_")
    assert "ada@example.com" in driver.find_element(By.ID, "created").text
    shoot(driver, "02-invited-ada")

    # Bob from a CSV pasted into the bulk form.
    driver.get(f"{live.url}/dashboard")
    open_panel(driver, "invite-many")
    driver.find_element(By.ID, "csv").send_keys("candidate,max_attempts\nBob@Example.com,2\n")
    Select(driver.find_element(By.ID, "bulk-challenge")).select_by_value("iou")
    driver.execute_script("document.getElementById('bulk-deadline').value = '2030-02-01T17:00'")
    click_and_wait(driver, By.ID, "invite-csv")
    bob_link = driver.find_element(By.CSS_SELECTOR, "#created .candidate-url").text
    assert bob_link.startswith(f"{live.url}/c/cvgi_") and bob_link != ada_link

    # Each candidate opens their link and uploads on their page; Bob's is Ada's with the names changed.
    (tmp_path / "ada").mkdir()
    (tmp_path / "bob").mkdir()
    (tmp_path / "ada" / "solution.py").write_text(ADA)
    (tmp_path / "bob" / "solution.py").write_text(BOB)
    ada_submission = candidate_uploads(driver, ada_link, tmp_path / "ada" / "solution.py")
    shoot(driver, "02b-ada-uploaded")
    bob_submission = candidate_uploads(driver, bob_link, tmp_path / "bob" / "solution.py")
    assert bob_submission != ada_submission
    live.api.wait_for_jobs()

    # The team reads both sources.
    driver.get(f"{live.url}/dashboard")
    assert no_alert(driver)
    shoot(driver, "03-invitations")
    click_and_wait(driver, By.LINK_TEXT, "ada@example.com")
    click_and_wait(driver, By.LINK_TEXT, "code")
    assert driver.current_url.endswith(f"/dashboard/submissions/{ada_submission}/code")
    code = driver.find_element(By.CSS_SELECTOR, "#f0 table.code").text
    assert "def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:" in code and "suppressed |= " in code
    assert driver.find_elements(By.CSS_SELECTOR, "#f0 td.src span.k"), "the code is not highlighted"
    shoot(driver, "04-code-ada")

    driver.get(f"{live.url}/dashboard/submissions/{bob_submission}")
    shoot(driver, "05-submission-bob")
    assert "ada@example.com" in driver.find_element(By.ID, "similar").text  # flagged on Bob's report
    click_and_wait(driver, By.ID, "read-code")
    assert "dropped |= clash[i].cpu()" in driver.find_element(By.CSS_SELECTOR, "#f0 table.code").text
    shoot(driver, "06-code-bob")

    # The comparison flags the pair, ranks, fits the window; the pair side by side.
    driver.get(f"{live.url}/dashboard/challenges/iou/comparison")
    assert fits_the_window(driver), "the comparison is wider than a 1,400 px window"
    table = driver.find_element(By.ID, "comparison")
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    similar = {row.find_element(By.CSS_SELECTOR, "td:nth-child(2) a").text: row.find_element(
        By.CSS_SELECTOR, "td:nth-child(6)").text for row in rows}
    assert similar == {"ada@example.com": "same code as Bob@Example.com",
                       "Bob@Example.com": "same code as ada@example.com"}
    assert "timed while 1 other grading(s) shared the machine" in rows[0].text  # Ada's timed check had company
    assert "Box IoU speed ratio" in driver.find_element(By.ID, "metrics").text  # a metric in plain words
    shoot(driver, "07-comparison")
    click_and_wait(driver, By.PARTIAL_LINK_TEXT, "same code as")
    assert "/dashboard/similarity/" in driver.current_url
    assert len(driver.find_elements(By.CSS_SELECTOR, "#regions li")) >= 1
    assert driver.find_elements(By.CSS_SELECTOR, "#left tr.matched") and driver.find_elements(
        By.CSS_SELECTOR, "#right tr.matched")
    assert fits_the_window(driver)
    shoot(driver, "08-pair")

    # A note on Bob's submission, then the decisions.
    driver.get(f"{live.url}/dashboard/submissions/{bob_submission}")
    driver.find_element(By.ID, "note-body").send_keys("Same code as Ada's, names changed. <b>ask</b> in the call.")
    click_and_wait(driver, By.ID, "save-note")
    assert driver.find_element(By.ID, "done").text == "Your note is saved."
    assert "<b>ask</b>" in driver.find_element(By.ID, "notes").text  # shown as typed, never as markup
    shoot(driver, "09-note")
    click_and_wait(driver, By.LINK_TEXT, "Bob@Example.com")
    driver.find_element(By.ID, "decision-reject").click()
    driver.find_element(By.ID, "reason").send_keys("copied Ada's solution")
    click_and_wait(driver, By.ID, "save-decision")
    assert driver.find_element(By.ID, "current-decision").text == "reject"
    shoot(driver, "10-decision-bob")
    ada_invitation = driver.current_url.rsplit("/", 1)[-1].split("?")[0]
    driver.get(f"{live.url}/dashboard/invitations/{int(ada_invitation) - 1}")
    driver.find_element(By.ID, "decision-advance").click()
    click_and_wait(driver, By.ID, "save-decision")
    assert driver.find_element(By.ID, "current-decision").text == "advance"

    # Export the comparison.
    driver.get(f"{live.url}/dashboard/challenges/iou/comparison")
    shoot(driver, "11-comparison-decided")
    driver.find_element(By.ID, "export-csv").click()
    downloaded = tmp_path / "downloads" / "iou-comparison.csv"
    deadline = time.monotonic() + 15
    while not downloaded.is_file():
        assert time.monotonic() < deadline, "the CSV was not downloaded"
        time.sleep(0.1)
    rows_csv = list(csv.DictReader(io.StringIO(downloaded.read_text(encoding="utf-8-sig"))))
    by_candidate = {row["candidate"]: row for row in rows_csv}
    assert by_candidate["ada@example.com"]["decision"] == "advance"
    assert by_candidate["Bob@Example.com"]["decision"] == "reject"
    assert "ada@example.com" in by_candidate["Bob@Example.com"]["similar_to"]
    assert by_candidate["ada@example.com"]["timed_while_other_gradings_ran"] == "1"

    driver.get(f"{live.url}/dashboard/challenges/iou/similarity")
    assert "Bob@Example.com" in driver.find_element(By.ID, "pairs").text
    shoot(driver, "12-copies")


def test_a_notebook_is_read_cell_by_cell_and_its_html_output_never_runs(live: Live, driver: Any) -> None:
    import base64
    import io as _io
    import json

    from PIL import Image
    from selenium.webdriver.common.by import By

    team = live.api.team("Vision team")
    candidate = team.invite("nb@example.com", challenge_id="iou")
    png = _io.BytesIO()
    Image.new("RGB", (60, 40), (47, 158, 85)).save(png, format="PNG")
    hostile = "<script>alert('x')</script><img src=x onerror=alert(2)><b id=injected>bold</b>"
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "id": "m", "metadata": {}, "source": "# My *solution*\n" + hostile},
        {"cell_type": "code", "id": "c", "execution_count": 3, "metadata": {}, "source": REFERENCE, "outputs": [
            {"output_type": "stream", "name": "stdout", "text": "ready\n"},
            {"output_type": "display_data", "metadata": {}, "data": {"text/html": hostile}},
            {"output_type": "display_data", "metadata": {},
             "data": {"image/png": base64.b64encode(png.getvalue()).decode(), "text/plain": "<Figure>"}}]}]}
    submission = candidate.upload(json.dumps(notebook), name="solution.ipynb").json()["id"]
    log_in(driver, live, team.key, start=f"/dashboard/submissions/{submission}/code")  # type: ignore[arg-type]
    assert no_alert(driver)
    assert driver.find_elements(By.ID, "injected") == [] and driver.find_elements(By.CSS_SELECTOR, "main script") == []
    assert "text/html output, shown as text (never rendered)" in driver.find_element(By.ID, "f0").text
    assert hostile in driver.find_element(By.ID, "f0").text  # the markup, as text
    assert "In [3]:" in driver.find_element(By.ID, "f0-c2").text and "ready" in driver.find_element(By.ID, "f0-c2").text
    image = driver.find_element(By.CSS_SELECTOR, "#f0-c2 .output img")
    assert driver.execute_script("return arguments[0].naturalWidth", image) == 60  # the checked PNG is drawn
    shoot(driver, "13-notebook")
