"""``cvgrade serve`` and ``cvgrade admin ...``: run the hiring-team service and operate it.

Registered on the main ``cvgrade`` app by ``cli/main.py``. This module stays
light to import (typer only): FastAPI, SQLAlchemy and uvicorn are imported
inside the commands, so ``cvgrade grade`` does not pay for them.

Every command takes ``--data-dir`` and ``--database-url`` (or ``CVGRADE_DATA``
and ``CVGRADE_DATABASE_URL``), and brings the database schema up to date first:
a fresh machine needs no other set-up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from grader.errors import CvgradeError, ExitCode

if TYPE_CHECKING:
    from api.config import Settings
    from api.db import Database

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

admin_app = typer.Typer(help="Operate the hiring-team service: teams, API keys, migrations.", no_args_is_help=True)

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data folder (default: $CVGRADE_DATA or ~/.local/share/cvgrade).")
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option("--database-url", help="postgresql://user:password@host/db (default: $CVGRADE_DATABASE_URL, "
                                        "else SQLite in the data folder)."),
]


def add_service_commands(app: typer.Typer) -> None:
    """Add ``serve``, the ``admin`` group and ``submit`` to the main ``cvgrade`` app."""
    from api.submit import submit

    app.command("serve")(serve)
    app.add_typer(admin_app, name="admin")
    app.command("submit")(submit)  # the candidate's side: upload, follow the grading, print the feedback


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="Gradings at once (default: $CVGRADE_JOBS or 1).")
                    ] = None,
    backend: Annotated[str | None, typer.Option(
        "--backend", help="Sandbox backend: auto (Docker where ready, else local), docker or local.")] = None,
    isolation: Annotated[str | None, typer.Option(
        "--isolation", help="Local sandbox isolation: auto, bwrap, or process (practice only).")] = None,
    max_upload_mb: Annotated[int | None, typer.Option("--max-upload-mb", min=1, help="Largest upload (default 50).")
                             ] = None,
    challenges_dir: Annotated[Path | None, typer.Option("--challenges-dir", help="Folder of challenges.")] = None,
    broker: Annotated[str | None, typer.Option(
        "--broker", help="Hand gradings to `cvgrade worker` hosts through this broker (redis://HOST:6379/0); "
                         "default: $CVGRADE_BROKER_URL, else grade in this process.")] = None,
    public_url: Annotated[str | None, typer.Option(
        "--public-url", help="The address candidates and webhooks reach the service at, for links "
                             "(default: $CVGRADE_PUBLIC_URL, else http://HOST:PORT).")] = None,
) -> None:
    """Run the hiring-team service: the API under /api/v1 (docs at /docs) and the grading workers."""
    import uvicorn

    from api.app import create_app
    from api.backend_check import probe
    from api.config import resolve_settings
    from harness.janitor import clean_up_after_crashed_graders

    with _reported_errors():
        settings = resolve_settings(data_dir=data_dir, database_url=database_url, jobs=jobs, backend=backend,
                                    isolation=isolation, max_upload_mb=max_upload_mb, challenges_dir=challenges_dir,
                                    broker_url=broker, public_url=public_url)
        if settings.public_url is None:
            settings = dataclasses.replace(settings, public_url=_listening_url(host, port))
        database = _database(settings)
        teams = _count_teams(database)
        database.dispose()
    logging.basicConfig(level=logging.INFO, format="%(levelname)-9s %(name)s: %(message)s")
    grading = probe(settings)  # a service that cannot grade would take uploads and fail every one of them
    if not grading.ready:
        logging.getLogger("cvgrade.api").error("grading backend unavailable: %s", grading.detail)
        errors.print(f"[bold red]error:[/bold red] {grading.problem}")
        errors.print(f"detail: {grading.detail}")
        errors.print("start the Docker engine (or build the runtime image: `cvgrade image build`), "
                     "or serve with --backend local")
        raise typer.Exit(ExitCode.OUR_FAILURE)
    for note in clean_up_after_crashed_graders(containers=settings.backend != "local").notes():  # a grader died
        errors.print(note)
    chosen = f" (auto chose {grading.chosen})" if settings.backend == "auto" else ""
    console.print(f"cvgrade service on http://{host}:{port}/api/v1 (docs: /docs), public at {settings.public_url}; "
                  f"database {database.describe()}; data in {settings.data_dir}; "
                  + (f"gradings go to the fleet through {_hide_password(settings.broker_url)}" if settings.broker_url
                     else f"{settings.jobs} grading worker(s), {settings.backend} backend{chosen}"))
    if teams == 0:
        console.print("no team yet: create one with `cvgrade admin create-team NAME` (it prints an API key)")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", timeout_graceful_shutdown=30)


@admin_app.command("migrate")
def migrate_command(database_url: DatabaseUrlOption = None, data_dir: DataDirOption = None) -> None:
    """Bring the database schema up to date (`serve` does this itself at start)."""
    from api.db import current_revision

    with _reported_errors():
        database = _database(_settings(data_dir, database_url))
        console.print(f"{database.describe()}: schema at revision {current_revision(database)} (the newest)")


@admin_app.command("create-team")
def create_team_command(
    name: Annotated[str, typer.Argument(help="The team's name, unique.")],
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a team and print its first API key (shown once: only its hash is stored)."""
    from api.service import utc_now
    from api.teams import create_team

    with _reported_errors():
        database = _database(_settings(data_dir, database_url))
        with database.write() as session:
            team, key, token = create_team(session, name, utc_now())
            session.commit()
        console.print(f"team {team.id} {team.name!r} created; its API key {key.id} (shown once, keep it safe):")
        console.print(token)


@admin_app.command("create-key")
def create_key_command(
    team: Annotated[str, typer.Argument(help="The team's name or id.")],
    label: Annotated[str, typer.Option("--label", help="What the key is for.")] = "",
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Add an API key to a team and print it (shown once)."""
    from api.service import utc_now
    from api.teams import create_key, find_team

    with _reported_errors():
        database = _database(_settings(data_dir, database_url))
        with database.write() as session:
            row = find_team(session, team)
            key, token = create_key(session, row, utc_now(), label=label)
            session.commit()
        console.print(f"API key {key.id} for team {row.name!r} (shown once, keep it safe):")
        console.print(token)


@admin_app.command("revoke-key")
def revoke_key_command(
    key_id: Annotated[int, typer.Argument(help="The key's id (`cvgrade admin list-teams --keys`).")],
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Revoke an API key: it stops working at once."""
    from api.service import utc_now
    from api.teams import revoke_key

    with _reported_errors():
        database = _database(_settings(data_dir, database_url))
        with database.write() as session:
            key = revoke_key(session, key_id, utc_now())
            session.commit()
        console.print(f"API key {key.id} ({key.prefix}...) revoked")


@admin_app.command("list-teams")
def list_teams_command(
    keys: Annotated[bool, typer.Option("--keys", help="Also list each team's API keys.")] = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """List the teams (and with --keys their API keys, by id and first characters)."""
    from api.teams import list_teams

    with _reported_errors():
        database = _database(_settings(data_dir, database_url))
        with database.read() as session:
            rows = list_teams(session)
        if not rows:
            console.print("no teams; create one with `cvgrade admin create-team NAME`")
        for team, invitations, team_keys in rows:
            active = sum(1 for key in team_keys if key.revoked_at is None)
            console.print(f"team {team.id} {team.name!r}: {invitations} invitation(s), {active} active API key(s), "
                          f"candidates {'see' if team.candidates_see_scores else 'do not see'} scores")
            if keys:
                for key in team_keys:
                    state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
                    console.print(f"  key {key.id} {key.prefix}... {state} {key.label}")


def _settings(data_dir: Path | None, database_url: str | None) -> Settings:
    from api.config import resolve_settings

    return resolve_settings(data_dir=data_dir, database_url=database_url)


def _database(settings: Settings) -> Database:
    from api.db import Database, migrate

    database = Database(settings.database_url)
    migrate(database)
    return database


def _count_teams(database: Database) -> int:
    from sqlalchemy import func, select

    from api.models import Team

    with database.read() as session:
        return int(session.scalar(select(func.count()).select_from(Team)) or 0)


@contextlib.contextmanager
def _reported_errors() -> Iterator[None]:
    """Our errors and an unreachable database become one line on stderr and an exit code."""
    from sqlalchemy.exc import OperationalError

    from api.errors import ApiError

    try:
        yield
    except ApiError as err:
        errors.print(f"[bold red]error:[/bold red] {err.message}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except CvgradeError as err:
        errors.print(f"[bold red]error:[/bold red] {err}")
        raise typer.Exit(err.exit_code) from None
    except OperationalError as err:
        errors.print(f"[bold red]error:[/bold red] the database cannot be used: {str(err.orig).strip()}")
        raise typer.Exit(ExitCode.OUR_FAILURE) from None


def _listening_url(host: str, port: int) -> str:
    """Where links point when no public URL is configured: the address served, a name for 0.0.0.0."""
    import socket

    shown = socket.getfqdn() if host in ("0.0.0.0", "::", "") else host  # noqa: S104  # a comparison, not a bind
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def _hide_password(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@") if parts.password else url
