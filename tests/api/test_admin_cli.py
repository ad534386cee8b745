"""``cvgrade admin``: what an operator runs. Invoked through the real ``cvgrade`` app, against SQLite
and PostgreSQL; exit codes and output are the specification."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from api.db import Database, current_revision, newest_revision
from cli.main import app

runner = CliRunner()


def admin(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["admin", *args, "--database-url", database_url, "--data-dir", str(tmp_path)])
    return result.exit_code, result.output


def test_create_team_prints_a_first_key_once_and_list_teams_shows_it(database_url: str, tmp_path: Path) -> None:
    code, output = admin(database_url, tmp_path, "create-team", "Vision Team")
    assert code == 0, output
    key = output.strip().splitlines()[-1]
    assert key.startswith("cvgk_") and "shown once" in output
    code, output = admin(database_url, tmp_path, "list-teams", "--keys")
    assert code == 0 and "team 1 'Vision Team': 0 invitation(s), 1 active API key(s)" in output
    assert key[:12] in output and key not in output  # only the first characters are ever shown again


def test_create_key_and_revoke_key(database_url: str, tmp_path: Path) -> None:
    admin(database_url, tmp_path, "create-team", "acme")
    code, output = admin(database_url, tmp_path, "create-key", "acme", "--label", "ci")
    assert code == 0 and "API key 2 for team 'acme'" in output
    code, output = admin(database_url, tmp_path, "revoke-key", "2")
    assert code == 0 and output.startswith("API key 2 (cvgk_") and "revoked" in output
    code, output = admin(database_url, tmp_path, "list-teams", "--keys")
    assert "1 active API key(s)" in output and "key 2" in output and "revoked" in output


def test_mistakes_get_a_sentence_and_exit_code_2(database_url: str, tmp_path: Path) -> None:
    admin(database_url, tmp_path, "create-team", "acme")
    assert admin(database_url, tmp_path, "create-team", "acme") == (2, "error: there is already a team named 'acme'\n")
    code, output = admin(database_url, tmp_path, "create-key", "nobody")
    assert code == 2 and "there is no team 'nobody'" in output
    code, output = admin(database_url, tmp_path, "revoke-key", "99")
    assert code == 2 and "there is no API key 99" in output


def test_migrate_reports_the_revision(database_url: str, tmp_path: Path) -> None:
    code, output = admin(database_url, tmp_path, "migrate")
    assert code == 0 and f"schema at revision {newest_revision()} (the newest)" in output
    database = Database(database_url)
    assert current_revision(database) == newest_revision()
    database.dispose()


def test_a_fresh_data_folder_needs_no_set_up(tmp_path: Path) -> None:
    folder = tmp_path / "fresh" / "cvgrade"
    result = runner.invoke(app, ["admin", "create-team", "acme", "--data-dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert (folder / "cvgrade.db").is_file()


def test_an_unreachable_database_is_one_line_and_exit_code_3(tmp_path: Path) -> None:
    result = runner.invoke(app, ["admin", "list-teams", "--database-url",
                                 "postgresql://nobody@127.0.0.1:1/nothing?connect_timeout=2"])
    assert result.exit_code == 3 and result.output.startswith("error: the database cannot be used:")
    result = runner.invoke(app, ["admin", "list-teams", "--database-url", "mysql://x@y/z"])
    assert result.exit_code == 2 and "SQLite or PostgreSQL" in result.output


def test_the_key_works_against_the_service(database_url: str, tmp_path: Path, api_factory) -> None:
    api = api_factory(workers=False)
    _, output = admin(database_url, tmp_path, "create-team", "acme")
    key = output.strip().splitlines()[-1]
    response = api.client.get("/api/v1/team", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200 and response.json()["name"] == "acme"
