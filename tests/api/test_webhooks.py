"""Webhooks with a real HTTP receiver on loopback (``http.server`` in a thread): registering (the secret
shown once and never stored), a signed POST when a job finishes, verification of the signature,
retries with back-off against a receiver that fails first, giving up, a delivery log, retries that
survive a restart, and deliveries sent once by several senders."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.deliveries import WebhookSender, backoff_s
from api.models import Webhook, WebhookDelivery
from api.webhooks import verify_signature

if TYPE_CHECKING:
    from conftest import Api, ApiFactory, TeamClient  # tests/api/conftest.py


class Receiver:
    """A webhook receiver: records every POST, answers with ``statuses`` in turn (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/cvgrade"

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(statuses: list[int] | None = None) -> Receiver:
        receiver = Receiver(statuses)
        receiver.thread.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture
def hooked(api_factory: ApiFactory) -> Api:
    """A service whose webhooks may reach loopback (the receiver), with short back-off."""
    return api_factory(webhook_allow_private=True, webhook_backoff_s=1.0, webhook_max_attempts=3,
                       public_url="https://grader.example.com")


def wait_until(condition: Callable[[], Any], timeout_s: float = 15, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def register(team: TeamClient, url: str) -> dict[str, Any]:
    response = team.post("/webhooks", json={"url": url, "description": "our ATS"})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def deliveries(team: TeamClient, webhook_id: int) -> list[dict[str, Any]]:
    response = team.get(f"/webhooks/{webhook_id}/deliveries")
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


def test_the_secret_is_shown_once_and_never_stored(hooked: Api, receiver_factory: Callable[..., Receiver]) -> None:
    team = hooked.team()
    created = register(team, receiver_factory().url)
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    listed = team.get("/webhooks").json()
    assert [hook["url"] for hook in listed] == [created["url"]] and "secret" not in listed[0]
    assert created["secret"] not in team.get("/webhooks").text
    with hooked.service.db.read() as session:
        stored = json.dumps([[getattr(row, column) for column in ("url", "description", "secret_salt")]
                             for row in session.scalars(select(Webhook))])
    assert created["secret"] not in stored and created["secret"][6:] not in stored


@pytest.mark.parametrize("url, reason", [
    ("https:///no-host", "must start with http:// or https:// and name a host"),
    ("http://[not-an-address/hook", "must be a valid http:// or https:// URL"),
    ("https://user:pw@example.com/hook", "must not hold a user name or password"),
    ("http://127.0.0.1:9/hook", "loopback or private address"),
    ("http://localhost/hook", "loopback or private address"),
    ("http://169.254.169.254/latest/meta-data", "loopback or private address"),
    ("http://[::1]/hook", "loopback or private address"),
    ("http://exa mple.com/", "may not hold spaces"),  # accepted before: found by the hiring-round trial
    ("https://.", "is not a valid host name or address"),
    ("https://hooks..example.com/x", "is not a valid host name or address"),
    ("https://-hooks.example.com/x", "is not a valid host name or address"),
    ("https://hooks.example.com:99999/x", "must be a valid http:// or https:// URL"),
])
def test_urls_that_cannot_or_may_not_be_reached_are_refused(api: Api, url: str, reason: str) -> None:
    response = api.team().post("/webhooks", json={"url": url})
    assert response.status_code == 400 and reason in response.json()["error"], response.text


def test_a_url_of_another_scheme_does_not_fit_the_schema(api: Api) -> None:
    response = api.team().post("/webhooks", json={"url": "ftp://example.com/hook"})
    assert response.status_code == 422 and "url (body)" in response.json()["error"], response.text


def test_a_finished_job_is_posted_signed_and_the_signature_checks_out(
    hooked: Api, receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory()
    team = hooked.team()
    created = register(team, receiver.url)
    secret = created["secret"]
    candidate = team.invite("ada@example.com")
    submission = candidate.upload("pass:all", name="ada.py").json()["id"]
    hooked.wait_for_jobs()
    wait_until(lambda: receiver.requests, what="the delivery")

    headers, body = receiver.requests[0]
    assert headers["content-type"] == "application/json" and headers["x-cvgrade-event"] == "submission.finished"
    now = hooked.clock().timestamp()
    timestamp, signature = headers["x-cvgrade-timestamp"], headers["x-cvgrade-signature"]
    assert signature.startswith("sha256=") and int(timestamp) == int(now)
    assert verify_signature(secret, body, timestamp, signature, now=now)
    assert not verify_signature(secret, body.replace(b'"score":10.0', b'"score":0.0'), timestamp, signature, now=now)
    assert not verify_signature(secret + "x", body, timestamp, signature, now=now)
    assert not verify_signature(secret, body, str(int(timestamp) - 1), signature, now=now)  # the time is signed
    assert not verify_signature(secret, body, timestamp, signature, now=now + 301)  # too old: a replay

    event = json.loads(body)
    assert event["event"] == "submission.finished" and event["delivery_id"] == int(headers["x-cvgrade-delivery"])
    assert event["submission"] | {"id": submission, "candidate": "ada@example.com", "state": "done", "score": 10.0,
                                  "max_score": 10.0, "passed": True, "filename": "ada.py"} == event["submission"]
    assert event["links"] == {  # absolute, from the configured public URL: a receiver can follow them as they are
        "result": f"https://grader.example.com/api/v1/submissions/{submission}/result",
        "submission": f"https://grader.example.com/api/v1/submissions/{submission}"}
    [logged] = wait_until(lambda: [d for d in deliveries(team, created["id"]) if d["state"] == "delivered"],
                          what="the log")
    assert logged["attempts"] == 1 and [a["status_code"] for a in logged["log"]] == [200]


@pytest.mark.parametrize("source, state, charged", [
    ("REFUSE", "failed", True), ("INFRASTRUCTURE", "not_gradable", False), ("BUG", "not_gradable", False)])
def test_every_way_a_job_ends_is_posted(hooked: Api, receiver_factory: Callable[..., Receiver], source: str,
                                        state: str, charged: bool) -> None:
    receiver = receiver_factory()
    team = hooked.team()
    register(team, receiver.url)
    team.invite().upload(source)
    hooked.wait_for_jobs()
    [event] = wait_until(receiver.bodies, what="the delivery")
    assert (event["submission"]["state"], event["submission"]["charged"]) == (state, charged)
    assert event["submission"]["error"]


def test_a_receiver_that_fails_first_gets_the_event_again_with_back_off(
    hooked: Api, receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory([500, 503])
    team = hooked.team()
    webhook = register(team, receiver.url)["id"]
    team.invite().upload("pass:all")
    hooked.wait_for_jobs()
    for attempt, wait_s in ((1, 1.0), (2, 2.0)):
        wait_until(lambda n=attempt: len(receiver.requests) == n, what=f"attempt {attempt}")
        [row] = wait_until(lambda n=attempt: [d for d in deliveries(team, webhook) if d["attempts"] == n])
        assert row["state"] == "pending" and row["last_status_code"] == [500, 503][attempt - 1]
        due = _seconds(row["next_attempt_at"]) - _seconds(row["log"][-1]["started_at"])
        assert wait_s <= due <= wait_s * 1.1  # doubling, with up to 10% jitter
        time.sleep(0.3)
        assert len(receiver.requests) == attempt  # nothing is sent before it is due
        hooked.clock.advance(seconds=wait_s * 1.1)
    wait_until(lambda: len(receiver.requests) == 3, what="the third attempt")
    [row] = wait_until(lambda: [d for d in deliveries(team, webhook) if d["state"] == "delivered"])
    assert [a["status_code"] for a in row["log"]] == [500, 503, 200] and row["attempts"] == 3
    assert "503" in row["log"][1]["error"] and row["log"][2]["error"] is None
    bodies = receiver.bodies()
    assert bodies[0] == bodies[1] == bodies[2]  # the same event, the same delivery id
    headers = [headers for headers, _ in receiver.requests]
    assert len({h["x-cvgrade-delivery"] for h in headers}) == 1


def test_a_delivery_is_given_up_after_its_attempts_and_the_list_counts_it(
    hooked: Api, receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory([500] * 10)
    team = hooked.team()
    webhook = register(team, receiver.url)["id"]
    team.invite().upload("pass:all")
    hooked.wait_for_jobs()
    for attempt in (1, 2, 3):
        wait_until(lambda n=attempt: len(receiver.requests) == n, what=f"attempt {attempt}")
        wait_until(lambda n=attempt: deliveries(team, webhook)[0]["attempts"] == n)
        hooked.clock.advance(seconds=10)
    [row] = deliveries(team, webhook)
    assert row["state"] == "failed" and row["next_attempt_at"] is None and row["attempts"] == 3
    time.sleep(0.3)
    assert len(receiver.requests) == 3
    assert team.get("/webhooks").json()[0] | {"pending": 0, "delivered": 0, "failed": 1} == team.get(
        "/webhooks").json()[0]


def test_deleting_a_webhook_stops_its_deliveries(hooked: Api, receiver_factory: Callable[..., Receiver]) -> None:
    receiver = receiver_factory([500] * 10)
    team = hooked.team()
    webhook = register(team, receiver.url)["id"]
    team.invite().upload("pass:all")
    hooked.wait_for_jobs()
    wait_until(lambda: receiver.requests, what="the first attempt")
    response = hooked.client.delete(f"/api/v1/webhooks/{webhook}", headers=team.headers)
    assert response.status_code == 204 and response.content == b""
    hooked.clock.advance(seconds=60)
    time.sleep(0.4)
    assert len(receiver.requests) == 1 and team.get("/webhooks").json() == []
    assert team.get(f"/webhooks/{webhook}/deliveries").status_code == 404
    assert hooked.client.delete(f"/api/v1/webhooks/{webhook}", headers=team.headers).status_code == 404


def test_pending_retries_survive_a_restart(tmp_path: Path, database_url: str, challenges_dir: Path,
                                          receiver_factory: Callable[..., Receiver]) -> None:
    from api.app import create_app
    from tests.api.conftest import Api, FakeClock, FakeGrader, make_settings

    settings = make_settings(tmp_path, database_url, challenges_dir, webhook_allow_private=True,
                             webhook_backoff_s=1.0)
    receiver = receiver_factory([500])
    clock = FakeClock()

    def service() -> tuple[Api, contextlib.AbstractContextManager[TestClient]]:
        grader = FakeGrader()
        client = TestClient(create_app(settings, grade=grader, stop_gradings=grader.release, clock=clock))
        return Api(client, client.app.state.service, clock, grader), client  # type: ignore[attr-defined]

    first, client = service()
    with client:
        team = first.team()
        webhook = register(team, receiver.url)["id"]
        team.invite().upload("pass:all")
        first.wait_for_jobs()
        wait_until(lambda: deliveries(team, webhook)[0]["attempts"] == 1, what="the failed attempt")
    # the service is down; the delivery waits in the database
    clock.advance(seconds=5)
    second, client = service()
    with client:
        wait_until(lambda: len(receiver.requests) == 2, what="the retry by the restarted service")
        team.api = second
        wait_until(lambda: deliveries(team, webhook)[0]["state"] == "delivered", what="the log")


def test_several_senders_send_each_delivery_once(hooked: Api, receiver_factory: Callable[..., Receiver]) -> None:
    receiver = receiver_factory()
    team = hooked.team()
    register(team, receiver.url)
    candidate = team.invite(max_attempts=20)
    for number in range(12):
        candidate.upload(f"pass:all {number}")
    hooked.wait_for_jobs()
    senders = [WebhookSender(hooked.service) for _ in range(3)]  # beside the service's own
    for sender in senders:
        sender.start()
    try:
        wait_until(lambda: len(receiver.requests) >= 12, what="twelve deliveries")
        time.sleep(0.5)
    finally:
        for sender in senders:
            sender.stop()
    ids = [event["delivery_id"] for event in receiver.bodies()]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 12
    with hooked.service.db.read() as session:
        states = list(session.scalars(select(WebhookDelivery.state)))
    assert states == ["delivered"] * 12


def test_back_off_doubles_and_is_capped() -> None:
    waits = [backoff_s(10.0, attempts) for attempts in (1, 2, 3, 4, 20)]
    for wait, expected in zip(waits, (10, 20, 40, 80, 3600), strict=True):
        assert expected <= wait <= expected * 1.1


def _seconds(moment: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(moment).timestamp()
