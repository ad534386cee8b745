"""The candidate's page in a real headless Chromium (Debian's ``chromium`` and ``chromedriver``, driven by
Selenium) against the service on a real loopback port: a candidate opens the link from their invitation,
lands on the clean address, reads the statement, downloads the starter kit, uploads by drag and drop and
through the file picker, and watches the grading turn into feedback without reloading; a time-boxed
invitation closes uploads when its time runs out. Screenshots go to /tmp/candidate-shots/."""

from __future__ import annotations

import base64
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from tests.api.conftest import Api, FakeClock, FakeGrader, make_settings
from tests.grader.test_html_report import chromium

SHOTS = Path("/tmp/candidate-shots")
HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(2)>"
STATEMENT = f"""# Add two numbers

Write `add(a, b)` in **one file** `solution.py` (or a notebook `solution.ipynb`). It returns the sum.

## Interface

```python
def add(a: int, b: int) -> int: ...
```

| input | output |
|---|---|
| `add(1, 2)` | `3` |
| `add(-1, 1)` | `0` |

- Integers only; no floats.
- [a link that must stay inert](javascript:alert(3))

{HOSTILE}
"""


@dataclass
class Live:
    api: Api
    url: str


@pytest.fixture
def live(tmp_path: Path, challenges_dir: Path) -> Iterator[Live]:
    """The service (workers and all) served by uvicorn on a free loopback port, links made for that port."""
    from api.app import create_app

    (challenges_dir / "tiny" / "README.md").write_text(STATEMENT)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'cvgrade.db'}", challenges_dir, public_url=url)
    grader, clock = FakeGrader(), FakeClock()
    app = create_app(settings, grade=grader, stop_gradings=grader.release, clock=clock)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)
    try:
        yield Live(Api(TestClient(app), app.state.service, clock, grader), url)
    finally:
        grader.release()
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def driver(downloads: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                 "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    chrome.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield chrome
    finally:
        chrome.quit()


def shoot(driver: Any, name: str) -> None:
    """A screenshot of the whole page (the window grown to its height) under /tmp/candidate-shots/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return Math.max(document.body.scrollHeight, 900)")
    metrics = {"width": 1400, "height": min(int(height), 4000), "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    (SHOTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def wait_for(driver: Any, condition: Any, timeout_s: float = 20) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(condition)


def drop_file(driver: Any, target_id: str, name: str, content: str) -> None:
    """Drag a file onto an element as a person would drop one from their desktop (a real drop event with a
    DataTransfer holding the file: what the browser makes of a drag from another program)."""
    driver.execute_script(
        """
        const [targetId, name, content] = arguments;
        const target = document.getElementById(targetId);
        const transfer = new DataTransfer();
        transfer.items.add(new File([content], name, {type: "text/x-python"}));
        for (const type of ["dragenter", "dragover", "drop"]) {
          target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
        }
        """, target_id, name, content)


def no_alert(driver: Any) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        driver.switch_to.alert  # noqa: B018  # raises when no script opened one
    except NoAlertPresentException:
        return True
    return False


def script_errors(driver: Any) -> list[str]:
    """Errors the page's console saw (a script error, a policy violation), other than the favicon's 404."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "favicon" not in entry["message"]]


def test_a_candidate_opens_the_link_reads_downloads_uploads_and_watches_the_result(
        live: Live, driver: Any, downloads: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    team = live.api.team("Vision team")
    ada = team.invite("ada@example.com", max_attempts=3)
    link = ada.invitation["candidate_url"]
    assert link == f"{live.url}/c/{ada.token}"

    driver.get(link)
    wait_for(driver, lambda d: d.current_url == f"{live.url}/candidate")  # the token is gone from the address
    assert ada.token not in driver.current_url and ada.token not in driver.page_source
    cookie = driver.get_cookie("cvgrade_candidate")
    assert cookie["httpOnly"] is True and cookie["path"] == "/candidate" and ada.token not in cookie["value"]
    assert driver.execute_script("return window.history.length") <= 2

    # The statement, rendered from Markdown, with hostile HTML left as text.
    assert driver.find_element(By.ID, "challenge-title").text == "Tiny"
    statement = driver.find_element(By.ID, "statement")
    assert statement.find_element(By.TAG_NAME, "h1").text == "Add two numbers"
    assert "def add(a: int, b: int) -> int: ..." in statement.find_element(By.TAG_NAME, "pre").text
    assert len(statement.find_elements(By.CSS_SELECTOR, "table tr")) == 3
    assert HOSTILE in statement.text and no_alert(driver)
    assert statement.find_elements(By.CSS_SELECTOR, "script, img, a[href^='javascript']") == []
    assert driver.find_element(By.ID, "attempts-left").text == "3"
    assert driver.find_element(By.ID, "deadline").text == "2030-01-08 12:00 UTC"
    assert driver.find_element(By.ID, "no-submissions").is_displayed()
    shoot(driver, "1-opened")

    # The starter kit.
    driver.find_element(By.ID, "starter-kit").click()
    kit = wait_for(driver, lambda d: next((p for p in downloads.glob("*.zip")), None))
    wait_for(driver, lambda d: not list(downloads.glob("*.crdownload")))
    assert kit.name == "tiny-starter.zip"
    assert sorted(zipfile.ZipFile(kit).namelist()) == ["tiny/.cvgrade.toml", "tiny/README.md", "tiny/solution.py"]

    # A wrong kind of file is refused in the page, before anything is sent.
    drop_file(driver, "drop-zone", "notes.txt", "hello")
    assert "not a .py, .ipynb or .zip file" in driver.find_element(By.ID, "upload-message").text
    assert not driver.find_element(By.ID, "upload-button").is_enabled()

    # Drag and drop a solution; it is graded while the candidate watches.
    drop_file(driver, "drop-zone", "dropped.py", "def add(a, b):\n    return a + b\n# pass:adds BLOCK\n")
    assert driver.find_element(By.ID, "chosen-file").text.startswith("dropped.py")
    driver.find_element(By.ID, "upload-button").click()
    first = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#submissions article.submission"))[0]
    submission_id = first.get_attribute("id").removeprefix("submission-")
    assert "Uploaded dropped.py as submission" in driver.find_element(By.ID, "upload-message").text
    wait_for(driver, lambda d: d.find_element(By.ID, f"submission-{submission_id}").get_attribute("data-state")
             == "running")
    assert "Being graded" in driver.find_element(By.ID, f"submission-{submission_id}-message").text
    shoot(driver, "2-grading")
    live.api.grader.release()
    summary = wait_for(driver, lambda d: d.find_elements(By.ID, f"summary-{submission_id}"))[0]
    assert summary.text == "1 of 3 checks passed."  # appeared without a reload
    rows = driver.find_elements(By.CSS_SELECTOR, f"#checks-{submission_id} tbody tr")
    assert [row.find_element(By.CLASS_NAME, "check-name").text for row in rows] == ["adds", "secret", "later"]
    assert "SECRET_EXPECTED" not in driver.page_source and "HIDDEN DESCRIPTION" not in driver.page_source
    assert driver.find_element(By.ID, "attempts-left").text == "2"
    shoot(driver, "3-feedback")

    # The file picker works too, and a second grading shows beside the first, newest first.
    picked = tmp_path / "picked.py"
    picked.write_text("def add(a, b):\n    return a + b\n# pass:all\n")
    driver.find_element(By.ID, "file-input").send_keys(str(picked))
    driver.find_element(By.ID, "upload-button").click()
    wait_for(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#submissions article.submission")) == 2)
    newest = driver.find_elements(By.CSS_SELECTOR, "#submissions article.submission")[0]
    assert "picked.py" in newest.text
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#submissions article.submission")[0]
             .get_attribute("data-state") == "done")
    assert driver.find_element(By.ID, "attempts-left").text == "1"
    assert script_errors(driver) == []
    shoot(driver, "4-second-upload")


def test_a_time_boxed_invitation_counts_from_the_first_visit_and_closes_uploads(live: Live, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    team = live.api.team()
    grace = team.invite("grace@example.com", time_limit_minutes=90)
    invitation = team.get(f"/invitations/{grace.invitation['id']}").json()
    assert invitation["started_at"] is None  # nobody opened it yet: the clock has not started

    live.api.clock.advance(hours=5)  # opening it later than it was sent costs nothing
    driver.get(grace.invitation["candidate_url"])
    wait_for(driver, lambda d: d.current_url == f"{live.url}/candidate")
    assert driver.find_element(By.ID, "time-box").text == (
        "1 h 30 min, counted from your first visit (2030-01-01 17:00 UTC)")
    assert driver.find_element(By.ID, "closes-at").text == "2030-01-01 18:30 UTC"
    countdown = driver.find_element(By.ID, "time-left").text
    assert countdown.startswith(("1 h 30 min", "1 h 29 min")), countdown
    started = team.get(f"/invitations/{grace.invitation['id']}").json()
    assert started["started_at"].startswith("2030-01-01T17:00:00")
    assert started["uploads_close_at"].startswith("2030-01-01T18:30:00")
    shoot(driver, "5-time-box")

    live.api.clock.advance(minutes=91)
    driver.refresh()
    closed = driver.find_element(By.ID, "uploads-closed").text
    assert closed.startswith("Your time for this challenge (1 h 30 min from when you first opened it) ran out at "
                             "2030-01-01 18:30:00 UTC; uploads are closed")
    assert not driver.find_element(By.ID, "upload-button").is_enabled()
    assert driver.find_elements(By.ID, "time-left") == []
    shoot(driver, "6-time-box-over")
    refused = grace.upload("pass:all")  # the API refuses as well: the page is not the only gate
    assert refused.status_code == 403 and "your time for this challenge" in refused.json()["error"]


def test_the_page_without_its_link_explains_how_to_get_in(live: Live, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{live.url}/candidate")
    assert "opens from the link in your invitation" in driver.find_element(By.ID, "error").text
    driver.get(f"{live.url}/c/cvgi_not-a-real-token")
    assert driver.find_element(By.ID, "error").text == "This link is not known; check that it was copied whole."
    shoot(driver, "7-bad-link")


def test_the_api_docs_render_offline_from_our_own_files(live: Live, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{live.url}/docs")
    paths = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    assert "/api/v1/invitations" in {path.text.replace("\u200b", "") for path in paths}
    requested = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert requested and all(url.startswith(live.url) for url in requested), requested  # nothing from a CDN
    assert script_errors(driver) == []  # nothing the page's policy had to block
    shoot(driver, "8-api-docs")
