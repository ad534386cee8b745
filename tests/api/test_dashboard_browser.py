"""The dashboard in a real headless Chromium (Debian's ``chromium`` and ``chromedriver``, driven by
Selenium) against the service on a real loopback port: logging in through the form, following links
from the invitations to a submission's report, the report's charts drawn (counted in a screenshot),
hostile strings shown as text, logging out, and another team's page refused."""

from __future__ import annotations

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

from tests.api.conftest import Api, FakeClock, FakeGrader, make_settings
from tests.grader.test_html_report import chromium, green_pixels

HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(2)>"


@dataclass
class Live:
    api: Api
    url: str


@pytest.fixture
def live(tmp_path: Path, challenges_dir: Path) -> Iterator[Live]:
    """The service (workers and all) served by uvicorn on a free loopback port."""
    from api.app import create_app

    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'cvgrade.db'}", challenges_dir)
    grader, clock = FakeGrader(), FakeClock()
    app = create_app(settings, grade=grader, stop_gradings=grader.release, clock=clock)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
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
def driver() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,2600",
                 "--disable-dev-shm-usage"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def log_in(driver: Any, live: Live, key: str, start: str = "/dashboard") -> None:
    from selenium.webdriver.common.by import By

    driver.get(live.url + start)
    assert "/dashboard/login" in driver.current_url  # no session yet: sent to the form
    driver.find_element(By.ID, "api_key").send_keys(key)
    click_and_wait(driver, By.ID, "login")


def click_and_wait(driver: Any, by: str, value: str) -> None:
    """Click a link or button and wait until the next page has replaced this one."""
    from selenium.webdriver.support.ui import WebDriverWait

    before = driver.current_url
    driver.find_element(by, value).click()
    WebDriverWait(driver, 15).until(lambda d: d.current_url != before)  # every click here leads elsewhere
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def no_alert(driver: Any) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        driver.switch_to.alert  # noqa: B018  # raises when no script opened one
    except NoAlertPresentException:
        return True
    return False


def test_a_team_logs_in_follows_links_to_a_report_and_sees_its_charts(live: Live, driver: Any,
                                                                       tmp_path: Path) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By

    team = live.api.team("Vision team")
    ada = team.invite("ada@example.com")
    ada.upload("pass:all CHARTS", name="ada_solution.py")
    live.api.wait_for_jobs()

    log_in(driver, live, team.key)
    assert driver.current_url == f"{live.url}/dashboard"
    assert driver.find_element(By.ID, "team-name").text == "Vision team"
    cookie = driver.get_cookie("cvgrade_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and team.key not in cookie["value"]

    click_and_wait(driver, By.LINK_TEXT, "ada@example.com")
    assert "1 of 3 attempts used" in driver.find_element(By.ID, "invitation").text
    click_and_wait(driver, By.LINK_TEXT, "ada_solution.py")
    assert driver.find_element(By.ID, "verdict").text.startswith("Passed: 10 / 10 points")
    assert [row.text.split()[1] for row in driver.find_elements(By.CSS_SELECTOR, "#checks tbody tr")] == [
        "adds", "secret", "later"]

    histogram = driver.find_element(By.CSS_SELECTOR, "figure.chart-distribution svg")
    assert histogram.size["width"] > 300 and histogram.size["height"] > 100
    histogram.screenshot(str(tmp_path / "histogram.png"))
    assert green_pixels(Image.open(tmp_path / "histogram.png")) > 500, "the latency histogram drew no bars"
    gauge = driver.find_elements(By.CSS_SELECTOR, "figure.chart-gauge svg")[0]
    gauge.screenshot(str(tmp_path / "gauge.png"))
    assert green_pixels(Image.open(tmp_path / "gauge.png")) > 500, "the accuracy gauge drew no bar"

    click_and_wait(driver, By.LINK_TEXT, "comparison")
    scores = driver.find_element(By.CSS_SELECTOR, "#scores svg")
    scores.screenshot(str(tmp_path / "scores.png"))
    assert green_pixels(Image.open(tmp_path / "scores.png")) > 500, "the comparison drew no score bar"
    assert "ada@example.com" in driver.find_element(By.ID, "comparison").text

    click_and_wait(driver, By.ID, "logout")
    assert "/dashboard/login" in driver.current_url
    driver.get(f"{live.url}/dashboard")
    assert "/dashboard/login" in driver.current_url  # the session is gone


def test_hostile_strings_are_shown_as_text_and_another_teams_pages_are_not_found(live: Live, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    a, b = live.api.team("team-a"), live.api.team("team-b")
    candidate = a.invite(HOSTILE)
    submission = candidate.upload(f"ECHO {HOSTILE}", name="solution.py").json()["id"]
    live.api.wait_for_jobs()

    log_in(driver, live, a.key, start=f"/dashboard/submissions/{submission}")
    assert driver.current_url == f"{live.url}/dashboard/submissions/{submission}"  # back where it started
    assert no_alert(driver)
    assert HOSTILE in driver.find_element(By.ID, "submission").text
    assert f"ECHO {HOSTILE}" in driver.find_element(By.ID, "checks").text
    assert driver.find_elements(By.CSS_SELECTOR, "#checks script, #checks img, #submission img") == []
    driver.get(f"{live.url}/dashboard")
    assert no_alert(driver) and HOSTILE in driver.find_element(By.ID, "invitations").text

    click_and_wait(driver, By.ID, "logout")
    log_in(driver, live, b.key, start=f"/dashboard/submissions/{submission}")
    assert "your team has no submission" in driver.find_element(By.ID, "error").text.lower()
    assert HOSTILE not in driver.page_source and "solution.py" not in driver.page_source
