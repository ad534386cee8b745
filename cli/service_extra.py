"""The service's commands need the ``service`` extra: without it they say what to install.

``pip install cvgrade`` is enough to practise and to grade; the hiring-team service and the
fleet (``serve``, ``admin``, ``worker``, ``fleet``) need ``cvgrade[service]``: FastAPI, uvicorn,
SQLAlchemy, Alembic, psycopg, Celery and the rest. ``cvgrade submit``, the candidate's client,
needs only httpx, which every install has.
"""

from __future__ import annotations

import importlib.util

from grader.errors import CvgradeError, ExitCode

SERVICE_COMMANDS = ("serve", "admin", "worker", "fleet")
# What the commands import, by import name (pyproject's `service` extra holds the distributions).
SERVICE_MODULES = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "multipart", "celery", "redis")
INSTALL_HINT = "pip install 'cvgrade[service]' (in a checkout: pip install -e '.[service]', or ./scripts/setup)"


class ServiceExtraMissing(CvgradeError):
    """A service command on an install without the ``service`` extra (exit code 3: the machine's set-up)."""

    exit_code = ExitCode.OUR_FAILURE


def missing_service_modules() -> list[str]:
    """The service's modules that cannot be imported here (none where the extra is installed)."""
    return [name for name in SERVICE_MODULES if not _importable(name)]


def require_service_extra(command: str) -> None:
    """Raise ``ServiceExtraMissing``, naming what to install, when ``command`` cannot run here."""
    missing = missing_service_modules()
    if missing:
        raise ServiceExtraMissing(f"`cvgrade {command}` needs the service's packages, and {', '.join(missing)} "
                                  f"cannot be imported here: {INSTALL_HINT}")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules (blocked)
        return False
