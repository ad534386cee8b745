"""The API's routes, one module per side: ``team`` (API key), ``submissions`` (the team's view of
results), ``candidate`` (invitation token) and ``meta`` (no authentication)."""

from __future__ import annotations

from typing import Any

from api.schemas import ErrorBody


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route may answer, all with ``{"error": ...}``."""
    return {status: {"model": ErrorBody} for status in statuses}
