"""schemathesis against the service's own OpenAPI schema (``/api/v1/openapi.json``): generated requests,
valid and not, to every operation of a real service on loopback, with a team's key or a candidate's
token as each route needs. Every answer must be no server error and match the schema: its status is
documented, its body and headers are what the schema says.

The number of examples per operation is bounded (``EXAMPLES``) so the whole run stays well under two
minutes; ``CVGRADE_SCHEMATHESIS_EXAMPLES`` raises it for a longer hunt.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from api.models import ApiKey, Invitation
from api.tokens import token_sha256
from tests.api.conftest import TINY_CHECKS, TINY_HIDDEN, FakeGrader, make_settings
from tests.conftest import ChallengeFactory

EXAMPLES = int(os.environ.get("CVGRADE_SCHEMATHESIS_EXAMPLES", "25"))
# Made here so schemathesis knows them when it loads the schema; the fixture stores their hashes.
TEAM_KEY = "cvgk_" + secrets.token_urlsafe(32)
CANDIDATE_TOKEN = "cvgi_" + secrets.token_urlsafe(32)


@dataclass
class Live:
    url: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The service on a free loopback port (no workers: uploads stay queued), a team and a candidate."""
    from api.app import create_app
    from api.teams import create_team

    root = tmp_path_factory.mktemp("schemathesis")
    ChallengeFactory(root / "challenges")(TINY_HIDDEN, TINY_CHECKS)
    app = create_app(make_settings(root, f"sqlite:///{root / 'cvgrade.db'}", root / "challenges"),
                     grade=FakeGrader(), workers=False)
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
        service, now = app.state.service, datetime.now(UTC)
        with service.db.write() as session:
            team, _, _ = create_team(session, "acme", now)
            session.add(ApiKey(team_id=team.id, token_sha256=token_sha256(TEAM_KEY), prefix=TEAM_KEY[:12],
                               label="schemathesis", created_at=now, revoked_at=None))
            _, _, other_key = create_team(session, "another team", now)
            session.commit()
        url = f"http://127.0.0.1:{port}"
        # The candidate is another team's, so the generated revocations (of ids 1, 2, ...) cannot end their token.
        invited = httpx.post(f"{url}/api/v1/invitations", headers={"Authorization": f"Bearer {other_key}"}, json={
            "challenge_id": "tiny", "candidate": "ada@example.com", "max_attempts": 100,
            "deadline": (now + timedelta(days=365)).isoformat()})
        assert invited.status_code == 201, invited.text
        with service.db.write() as session:
            session.get_one(Invitation, invited.json()["id"]).token_sha256 = token_sha256(CANDIDATE_TOKEN)
            session.commit()
        yield Live(url)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _openapi() -> dict[str, Any]:
    """The schema the service serves, built from its routes (no database, no server: collection time)."""
    from api.app import create_app
    from api.config import Settings

    with tempfile.TemporaryDirectory(prefix="cvgrade-openapi-") as folder:
        return create_app(Settings(data_dir=Path(folder), database_url=f"sqlite:///{folder}/unused.db")).openapi()


# A request the schema allows may still break a rule it cannot state: a deadline already past, a webhook
# URL with no host or on a private address. The service answers those with 400 and a sentence
# (docs/service.md), so 400 is an accepted answer to schema-valid data; everything else is as by default.
# Each operation gets the credential its security scheme names: the team's key or the candidate's token.
CONFIG = schemathesis.Config.from_dict({
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409"]}},
    "auth": {"openapi": {"ApiKey": {"bearer": TEAM_KEY}, "InvitationToken": {"bearer": CANDIDATE_TOKEN}},
             "auto-signup": False},
})
schema = schemathesis.openapi.from_dict(_openapi(), config=CONFIG)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_answers_within_its_schema(case: Any, live: Live) -> None:
    # Whether an upload is accepted depends on the file's content (a .png, a broken zip: 422 with the
    # grader's sentence; a CSV's rows), which no schema states; every other check applies to them.
    upload = (case.method, case.path) in CONTENT_CHECKED
    case.call_and_validate(base_url=live.url, excluded_checks=[positive_data_acceptance] if upload else [])


CONTENT_CHECKED = {("POST", "/api/v1/candidate/submissions"), ("POST", "/api/v1/bulk-invitations"),
                   ("POST", "/api/v1/challenges/{challenge_id}/known-solutions")}


def test_the_served_schema_is_the_one_tested(live: Live) -> None:
    served = httpx.get(f"{live.url}/api/v1/openapi.json").json()
    assert served == _openapi()
    assert "/api/v1/webhooks" in served["paths"] and "/api/v1/candidate/submissions" in served["paths"]
    assert not any(path.startswith("/dashboard") for path in served["paths"])  # pages are not in the API
